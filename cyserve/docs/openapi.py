"""Dev-mode API docs: an OpenAPI 3.1 document built from the routes, and a browser UI for it.

``App(docs=True)`` (or ``debug=True``) serves:
- ``GET /openapi.json``: paths, methods, path parameters typed by their converter (``int`` ->
  integer, ``float`` -> number, ``uuid`` -> string/uuid; an annotation-implied one too), the
  query, header and cookie parameters and the JSON body a handler declares (``cyserve.binding``:
  where, required, schema), the success status (``status_code=``, else 200) with the returned
  model's schema, 422 with FastAPI's ``HTTPValidationError`` where parameters are bound, and the
  models under ``components/schemas`` (pydantic's ``model_json_schema()``, dataclasses from their
  field types).  From each handler's docstring: the summary (first line), the description (the
  rest) and parameter descriptions from a Google-style ``Args:`` section (``name (type): text``).
  Static mounts (``app.static``) are files, not API: left out.  Built once, on first request.
- ``GET /docs``: Swagger UI when a package ships its files (``pip install 'cyserve[docs]'``,
  i.e. swagger-ui-py; swagger-ui-bundle 5.x works too), otherwise a small viewer bundled with
  cyserve.  Every asset is served by the app itself: no CDN, nothing loaded from elsewhere.
"""
from __future__ import annotations

import enum
import importlib.util
import inspect
import re
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cyserve._json import dumps
from cyserve._models import json_schema
from cyserve.binding import Bound, Plan
from cyserve.errors import NotFound
from cyserve.response import Response
from cyserve._trie import TEMPLATE_PARAM, CONVERTERS

if TYPE_CHECKING:
    from cyserve.app import App
    from cyserve.request import Request

__all__ = ["build_spec", "mount_docs", "swagger_ui_dir"]

_OWN_ASSETS = Path(__file__).resolve().parent / "assets"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}
_SWAGGER_FILES = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")
_ARG = re.compile(r"^\s+(\*{0,2}[A-Za-z_][A-Za-z0-9_]*)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def build_spec(app: App) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``app``'s routes (those with ``include_in_schema``; static
    mounts are files, not API, and are left out)."""
    from cyserve.static import StaticFiles

    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {}
    operation_ids: set[str] = set()
    for route in app.router.routes:
        if not route.include_in_schema or isinstance(route.handler, StaticFiles):
            continue
        plan = route.plan
        summary, description, arg_docs = parse_docstring(inspect.getdoc(route.handler) or "")
        parameters = [_parameter(name, kind, arg_docs.get(name)) for name, kind in route.params.items()]
        parameters += [_bound_parameter(b, arg_docs.get(b.name), components) for b in plan.bound]
        body = _request_body(plan.body, arg_docs, components) if plan.body is not None else None
        responses = _responses(route.status_code, plan, components)
        item = paths.setdefault(openapi_path(route.path), {})
        for method in sorted(m.lower() for m in route.methods):
            if method not in _METHODS:
                continue
            operation: dict[str, Any] = {"operationId": _unique(f"{route.name}_{method}", operation_ids)}
            if summary:
                operation["summary"] = summary
            if description:
                operation["description"] = description
            if route.tags:
                operation["tags"] = list(route.tags)
            if parameters:
                operation["parameters"] = parameters
            if body is not None:
                operation["requestBody"] = body
            operation["responses"] = responses
            item[method] = operation
    spec: dict[str, Any] = {"openapi": "3.1.0", "info": {"title": app.title, "version": app.version},
                            "paths": paths}
    if components:
        spec["components"] = {"schemas": dict(sorted(components.items()))}
    return spec


def _bound_parameter(bound: Bound, doc: str | None, components: dict[str, Any]) -> dict[str, Any]:
    """A query, header or cookie parameter: its name as sent, whether required, its schema."""
    schema = json_schema(bound.annotation, components)
    default = bound.default.value if isinstance(bound.default, enum.Enum) else bound.default
    if not bound.required and _plain(default):
        schema["default"] = default
    parameter: dict[str, Any] = {"name": bound.alias, "in": bound.source, "required": bound.required,
                                 "schema": schema}
    text = bound.description or doc
    if text:
        parameter["description"] = text
    return parameter


def _request_body(bound: Bound, arg_docs: dict[str, str], components: dict[str, Any]) -> dict[str, Any]:
    schema = json_schema(bound.annotation, components)
    body: dict[str, Any] = {"required": bound.required, "content": {"application/json": {"schema": schema}}}
    text = bound.description or arg_docs.get(bound.name)
    if text:
        body["description"] = text
    return body


def _responses(status_code: int | None, plan: Plan, components: dict[str, Any]) -> dict[str, Any]:
    """The route's own status (``status_code=``, else 200) with the returned model's schema, and
    422 where parameters are bound (the body ``cyserve.binding`` answers with)."""
    status = status_code or 200
    success: dict[str, Any] = {"description": _phrase(status)}
    if plan.returns is not None and status not in (204, 304):
        success["content"] = {"application/json": {"schema": json_schema(plan.returns, components)}}
    responses: dict[str, Any] = {str(status): success}
    if plan.declares:
        components.update(_VALIDATION_SCHEMAS)
        responses["422"] = {"description": "Validation Error", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}
    return responses


def _phrase(status: int) -> str:
    return "Successful response" if status == 200 else HTTPStatus(status).phrase


def _plain(value: Any) -> bool:
    """A default the document can show as it is."""
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


# The 422 body of cyserve.binding, named as FastAPI names it (clients generated from either
# document read the same types).
_VALIDATION_SCHEMAS: dict[str, Any] = {
    "ValidationError": {
        "title": "ValidationError", "type": "object", "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {"title": "Location", "type": "array",
                    "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            "msg": {"title": "Message", "type": "string"},
            "type": {"title": "Error Type", "type": "string"},
            "input": {"title": "Input"},
        },
    },
    "HTTPValidationError": {
        "title": "HTTPValidationError", "type": "object",
        "properties": {"detail": {"title": "Detail", "type": "array",
                                  "items": {"$ref": "#/components/schemas/ValidationError"}}},
    },
}


def openapi_path(path: str) -> str:
    """``/users/{id:int}`` and ``/users/:id`` -> ``/users/{id}``."""
    return TEMPLATE_PARAM.sub(lambda m: "{%s}" % (m.group(1) or m.group(3)), path)


def _parameter(name: str, kind: str, doc: str | None) -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": name, "in": "path", "required": True,
                                 "schema": dict(CONVERTERS[kind][2])}
    if kind == "path":
        doc = ((doc + " ") if doc else "") + "(may contain '/')"
    if doc:
        parameter["description"] = doc
    return parameter


def parse_docstring(doc: str) -> tuple[str, str, dict[str, str]]:
    """(summary, description, {argument: text}) from a docstring."""
    lines = doc.strip().splitlines()
    if not lines:
        return "", "", {}
    summary, rest, args = lines[0].strip(), [], {}
    in_args = False
    for line in lines[1:]:
        if line.strip() in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if in_args:
            m = _ARG.match(line)
            if m:
                args[m.group(1).lstrip("*")] = m.group(3).strip()
                continue
            if line.strip() and not line.startswith((" ", "\t")):
                in_args = False  # the next section
            else:
                continue
        rest.append(line)
    return summary, "\n".join(rest).strip(), args


def _unique(name: str, seen: set[str]) -> str:
    candidate, n = name, 2
    while candidate in seen:
        candidate, n = f"{name}_{n}", n + 1
    seen.add(candidate)
    return candidate


def swagger_ui_dir() -> Path | None:
    """The folder of an installed Swagger UI 5 distribution (3.1 needs 5.x), or ``None``."""
    spec = importlib.util.find_spec("swagger_ui")  # swagger-ui-py
    for location in (spec.submodule_search_locations or []) if spec else []:
        static = Path(location) / "static"
        if all((static / name).is_file() for name in _SWAGGER_FILES[:2]):
            return static
    spec = importlib.util.find_spec("swagger_ui_bundle")  # swagger-ui-bundle(-v2)
    for location in (spec.submodule_search_locations or []) if spec else []:
        for folder in sorted((Path(location) / "vendor").glob("swagger-ui-*"), reverse=True):
            major = folder.name.removeprefix("swagger-ui-").split(".")[0]
            if major.isdigit() and int(major) >= 5 and (folder / _SWAGGER_FILES[1]).is_file():
                return folder
    return None


def mount_docs(app: App, swagger_dir: Path | None | bool = True) -> None:
    """Add ``/openapi.json``, ``/docs`` and ``/docs/{file}`` to ``app`` (the App does this at
    startup when docs are on).  ``swagger_dir=True`` looks for Swagger UI; ``None`` uses the
    bundled viewer."""
    folder = swagger_ui_dir() if swagger_dir is True else swagger_dir or None
    if folder is not None:
        files = {name: folder / name for name in _SWAGGER_FILES if (folder / name).is_file()}
        files["swagger-init.js"] = _OWN_ASSETS / "swagger-init.js"
        page = _page(app.title, '<link rel="stylesheet" href="docs/swagger-ui.css">',
                     '<div id="swagger-ui"></div><script src="docs/swagger-ui-bundle.js"></script>'
                     '<script src="docs/swagger-init.js"></script>')
    else:
        files = {name: _OWN_ASSETS / name for name in ("viewer.js", "viewer.css")}
        page = _page(app.title, '<link rel="stylesheet" href="docs/viewer.css">',
                     '<main id="viewer"><p>Loading openapi.json...</p></main>'
                     '<script src="docs/viewer.js"></script>')
    cache: dict[str, bytes] = {}

    async def openapi_json(request: Request) -> Response:
        if "spec" not in cache:
            cache["spec"] = dumps(build_spec(app))
        return Response(cache["spec"], content_type="application/json")

    async def docs(request: Request) -> Response:
        return Response(page, content_type="text/html; charset=utf-8")

    async def docs_asset(request: Request, file: str) -> Response:
        source = files.get(file)
        if source is None:
            raise NotFound()
        if file not in cache:
            cache[file] = source.read_bytes()  # read once; a few hundred KB to 1.5 MB
        return Response(cache[file], headers=[("Cache-Control", "public, max-age=3600")],
                        content_type=_TYPES.get(source.suffix, "application/octet-stream"))

    for path, handler, name in (("/openapi.json", openapi_json, "openapi"), ("/docs", docs, "docs"),
                                ("/docs/{file}", docs_asset, "docs_asset")):
        app.router.add(path, handler, ("GET",), name, include_in_schema=False)


def _page(title: str, head: str, body: str) -> bytes:
    from html import escape
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">{head}</head>'
            f'<body>{body}</body></html>').encode("utf-8")
