"""What a server process serves: the ``module:attribute`` target, imported and checked.

Every way this can fail is a ``StartupError`` with one line naming the cause (the CLI prints it
and exits with status 3): the module is missing or raises while importing, the attribute is
missing, ``--factory`` names something that is not callable or raises, or the object is not
something cyserve serves.

What is served (``--interface``): a cyserve ``App`` as it is; an ASGI 3 application wrapped in
``cyserve.asgi.ASGIHost``.  ``auto`` tells them apart as uvicorn does, by shape, never by
calling the app: an ``App``; a coroutine function, or an object whose ``__call__`` is one
(a Starlette or FastAPI instance, ASGI middleware), or a class that is awaitable (an ASGI 3 app
written as a class) is ASGI 3.  ``asgi3`` serves any callable as ASGI 3.  ASGI 2 (a callable
that takes the scope alone and returns the app instance) and WSGI are refused, with a line that
says which it looks like and what to do.
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys
import traceback
from typing import Any

from cyserve.config import RunConfig
from cyserve.errors import StartupError

__all__ = ["load", "import_from_string", "describe_failure", "check", "looks_like_asgi3"]


def import_from_string(target: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the attribute (uvicorn's format)."""
    module_name, sep, attrs = target.partition(":")
    if not sep or not module_name or not attrs:
        raise StartupError(f'import string "{target}" must be in format "<module>:<attribute>"')
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name and not module_name.startswith(f"{exc.name}."):
            # The target exists but imports something missing: name what is missing and where.
            raise StartupError(f'could not import "{module_name}": {describe_failure(exc)}') from exc
        raise StartupError(f'could not import module "{module_name}"') from exc
    except BaseException as exc:  # noqa: BLE001 - any failure while importing user code
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise StartupError(f'could not import "{module_name}": {describe_failure(exc)}') from exc
    obj: Any = module
    for name in attrs.split("."):
        try:
            obj = getattr(obj, name)
        except AttributeError as exc:
            raise StartupError(f'attribute "{attrs}" not found in module "{module_name}"') from exc
    return obj


def describe_failure(exc: BaseException) -> str:
    """One line for an exception raised by user code: its type, message and where it was raised
    (the innermost frame, or the file and line of a SyntaxError)."""
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else "?"
        return f"SyntaxError: {exc.msg} ({where})"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message}{where}" if message else f"{type(exc).__name__}{where}"


def load(config: RunConfig) -> Any:
    """Import ``config.app`` (after putting ``config.app_dir`` first on ``sys.path``), call it
    when ``config.factory``, and return the app to serve."""
    if config.app is None:
        raise StartupError("no app to serve: give a target such as main:app")
    app_dir = os.path.abspath(config.app_dir) if config.app_dir else os.getcwd()
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    obj = import_from_string(config.app)
    if config.factory:
        if not callable(obj):
            raise StartupError(f'--factory: "{config.app}" is not callable')
        try:
            obj = obj()
        except Exception as exc:  # noqa: BLE001 - the user's factory failed
            raise StartupError(f'--factory: "{config.app}" raised {describe_failure(exc)}') from exc
    return check(obj, config)


def check(obj: Any, config: RunConfig) -> Any:
    """What cyserve serves for ``obj``: the ``App`` itself, or an ASGI 3 app in an ``ASGIHost``;
    else a ``StartupError`` saying what it is instead (the module docstring)."""
    from cyserve.app import App
    interface = config.interface
    if interface in ("asgi2", "wsgi"):
        raise StartupError(f"--interface {interface}: cyserve serves cyserve Apps and ASGI 3 "
                           f"applications, not {'ASGI 2' if interface == 'asgi2' else 'WSGI'} "
                           "ones" + (" (asgiref.compatibility.guarantee_single_callable makes an "
                                     "ASGI 3 app of one)" if interface == "asgi2" else ""))
    if isinstance(obj, App):
        if interface not in ("auto", "cyserve"):
            raise StartupError(f"--interface {interface}: {config.app} is a cyserve App; "
                               "use --interface auto")
        return obj
    from cyserve.asgi.host import ASGIHost
    if isinstance(obj, ASGIHost):
        return obj
    if inspect.ismodule(obj):
        raise StartupError(f'"{config.app}" is a module, not an app: name the attribute, '
                           "as in main:app")
    if not callable(obj):
        raise StartupError(f'"{config.app}" is a {type(obj).__name__}, not a cyserve App or an '
                           "ASGI application")
    if interface == "cyserve":
        raise StartupError(f'--interface cyserve: "{config.app}" is not a cyserve App')
    if interface == "asgi3" or looks_like_asgi3(obj):
        return ASGIHost(obj)
    if not config.factory and _looks_like_factory(obj):
        raise StartupError(f'"{config.app}" looks like an app factory: add --factory to call it')
    if _positional_count(obj) == 2:
        raise StartupError(f'"{config.app}" looks like a WSGI application (environ, '
                           "start_response): cyserve serves cyserve Apps and ASGI 3 applications")
    raise StartupError(f'"{config.app}" looks like an ASGI 2 application (a callable taking the '
                       "scope alone): cyserve serves ASGI 3 (asgiref.compatibility."
                       "guarantee_single_callable makes one of it; --interface asgi3 forces it)")


def looks_like_asgi3(obj: Any) -> bool:
    """``obj`` has the shape of an ASGI 3 application (uvicorn's test, without calling it): a
    coroutine function; an object whose ``__call__`` is one; an awaitable class (an ASGI 3 app
    written as a class whose instances are awaited)."""
    if inspect.isclass(obj):
        return hasattr(obj, "__await__")
    return _is_coroutine_function(obj) or _is_coroutine_function(getattr(obj, "__call__", None))


def _is_coroutine_function(fn: Any) -> bool:
    # Cython's ``async def`` functions are not Python functions: they carry asyncio's marker.
    return inspect.iscoroutinefunction(fn) or bool(getattr(fn, "_is_coroutine", False))


def _positional_count(obj: Any) -> int:
    """How many positional parameters calling ``obj`` takes (-1 when it cannot be told)."""
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return -1
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return -1
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _looks_like_factory(obj: Any) -> bool:
    """A callable taking no required argument is a factory, not an ASGI app (which takes three)."""
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return False
    return not any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                   for p in params)
