"""What a type means as JSON: request bodies read into pydantic models, dataclasses and plain
types; returned models written as JSON; every such type described as JSON Schema (OpenAPI 3.1).

pydantic is optional and never imported here up front: a class is a pydantic model when a
``pydantic`` ``BaseModel`` is in its MRO (so the user's module already imported pydantic), and
``pydantic.ValidationError`` is imported the first time a reader for such a model is made.
Dataclasses are read by this module's own checkers, with or without pydantic installed, so a
dataclass body behaves the same in both cases.

Errors have pydantic's shape (what FastAPI answers with, so migrating clients parse them
unchanged): ``{"type": ..., "loc": [...], "msg": ..., "input": ...}``, ``loc`` starting with
where the value came from (``"body"``).  The checkers are lax where JSON cannot say better (an
integral float is an int, an int is a float, ``"5"`` is an int as in pydantic's lax mode, ISO
strings are dates and UUIDs) and strict otherwise (``5`` is no str).
"""
from __future__ import annotations

import dataclasses
import datetime
import enum
import types
import typing
import uuid
from typing import Any, Callable, Literal, Union

from cyserve._json import loads
from cyserve._trie import _MAX_INT_DIGITS, _to_float, _to_int

__all__ = ["Checker", "Errors", "Loc", "body_reader", "checker", "choices_message", "error",
           "is_model", "is_pydantic_model", "json_default", "json_schema", "mentions_model",
           "text_converter"]

# Where a value is: its source, then field names and list indexes (``("body", "items", 0)``).
Loc = tuple[str | int, ...]
# The errors of a 422 body, each as ``error`` makes it.
Errors = list[dict[str, Any]]
# (value, loc, errors) -> the converted value; on a mismatch the checker appends to ``errors``
# and returns ``INVALID``.
Checker = Callable[[Any, Loc, Errors], Any]
INVALID: Any = object()
_NONE = type(None)
_UNIONS = (Union, types.UnionType)
_SEQUENCES = (list, set, frozenset, tuple)


def error(type_: str, loc: Loc | list[str | int], msg: str, value: Any = None) -> dict[str, Any]:
    """One error of a 422 body, in pydantic's shape."""
    return {"type": type_, "loc": list(loc), "msg": msg, "input": value}


def is_pydantic_model(tp: Any) -> bool:
    """A pydantic (v2) model class, recognised without importing pydantic."""
    return (isinstance(tp, type) and hasattr(tp, "model_validate_json")
            and any(c.__name__ == "BaseModel" and c.__module__.startswith("pydantic")
                    for c in tp.__mro__[1:]))


def is_model(tp: Any) -> bool:
    """A pydantic model class or a dataclass (the class, not an instance)."""
    return isinstance(tp, type) and (dataclasses.is_dataclass(tp) or is_pydantic_model(tp))


def mentions_model(tp: Any) -> bool:
    """``tp`` is a model, or a list, optional or union holding one (``list[Item]``, ``Item | None``)."""
    if is_model(tp):
        return True
    return any(mentions_model(arg) for arg in typing.get_args(tp) if not isinstance(arg, (str, int)))


# ------------------------------------------------------------------ reading a body
def body_reader(tp: Any) -> Callable[[bytes], tuple[Any, Errors | None]]:
    """``read(raw) -> (value, errors or None)``: the JSON body ``raw`` as ``tp``."""
    if is_pydantic_model(tp):
        from pydantic import ValidationError  # pydantic is loaded already: tp subclasses it
        validate = tp.model_validate_json

        def read_model(raw: bytes) -> tuple[Any, Errors | None]:
            try:
                return validate(raw), None
            except ValidationError as exc:
                return None, _pydantic_errors(exc, ("body",))
        return read_model
    check = checker(tp)

    def read(raw: bytes) -> tuple[Any, Errors | None]:
        try:
            data = loads(raw)
        except ValueError as exc:
            return None, [_json_invalid(str(exc))]
        errors: Errors = []
        value = check(data, ("body",), errors)
        return value, errors or None
    return read


def _json_invalid(detail: str) -> dict[str, Any]:
    # The body itself is not echoed back: it may be large, and it is not JSON.
    found = error("json_invalid", ("body",), f"Invalid JSON: {detail}")
    found["ctx"] = {"error": detail}
    return found


def _pydantic_errors(exc: Any, prefix: Loc) -> Errors:
    found = []
    for item in exc.errors(include_url=False):
        if item["type"] == "json_invalid":
            found.append(_json_invalid(item.get("ctx", {}).get("error", item["msg"])))
            continue
        value = item.get("input")
        if isinstance(value, (bytes, bytearray)):
            value = None
        entry = error(item["type"], prefix + tuple(item["loc"]), item["msg"], value)
        if "ctx" in item:
            entry["ctx"] = {key: v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
                            for key, v in item["ctx"].items()}
        found.append(entry)
    return found


# ------------------------------------------------------------------ text -> value
# Query strings, headers and cookies are text; so may be a number in a JSON body (pydantic's lax
# mode, which FastAPI clients rely on: {"price": "1.5"}).  Each converter raises ValueError.
def _int(text: str) -> int:
    if text.isdigit() and text.isascii() and len(text) <= _MAX_INT_DIGITS:  # the common case
        return int(text)
    digits = text[1:] if text[:1] in ("-", "+") else text
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(text)
    return _to_int(text)  # bounded digits, as the {x:int} converter


def _float(text: str) -> float:
    if not text or text.strip() != text:
        raise ValueError(text)
    return _to_float(text)  # finite only: "inf" and "nan" are no numbers a client means


_BOOLS = {"true": True, "1": True, "yes": True, "on": True, "t": True, "y": True,
          "false": False, "0": False, "no": False, "off": False, "f": False, "n": False}


def _bool(text: str) -> bool:
    try:
        return _BOOLS[text.lower()]
    except KeyError:
        raise ValueError(text) from None


_INT_PARSING = ("int_parsing", "Input should be a valid integer, unable to parse string as an integer")
_FLOAT_PARSING = ("float_parsing", "Input should be a valid number, unable to parse string as a number")
_BOOL_PARSING = ("bool_parsing", "Input should be a valid boolean, unable to interpret input")


def text_converter(tp: Any) -> tuple[Callable[[str], Any] | None, str, str]:
    """(convert, error type, error message) for a value sent as text; ``convert`` raises
    ValueError, None means the text as it is.  ``TypeError`` for a type text cannot hold."""
    if tp is str or tp is Any or tp is object:
        return None, "", ""
    if tp is int:
        return (_int, *_INT_PARSING)
    if tp is float:
        return (_float, *_FLOAT_PARSING)
    if tp is bool:
        return (_bool, *_BOOL_PARSING)
    if tp is uuid.UUID:
        return uuid.UUID, "uuid_parsing", "Input should be a valid UUID"
    if tp is datetime.datetime:
        return datetime.datetime.fromisoformat, "datetime_parsing", "Input should be a valid datetime"
    if tp is datetime.date:
        return datetime.date.fromisoformat, "date_parsing", "Input should be a valid date"
    if tp is datetime.time:
        return datetime.time.fromisoformat, "time_parsing", "Input should be a valid time"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        members = {m.value: m for m in tp}
        return _lookup({str(v): m for v, m in members.items()}), "enum", choices_message(members)
    if typing.get_origin(tp) is Literal:
        values = typing.get_args(tp)
        return _lookup({str(v): v for v in values}), "literal_error", choices_message(values)
    raise TypeError(f"{tp!r} cannot be read from text")


def _lookup(table: dict[str, Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return table[text]
        except KeyError:
            raise ValueError(text) from None
    return convert


# ------------------------------------------------------------------ checkers
def checker(tp: Any) -> Checker:
    """The checker of ``tp`` for a value parsed from JSON; ``TypeError`` for a type JSON cannot
    hold (said when the App starts, not on a request)."""
    return _checker(tp, {})


def _checker(tp: Any, building: dict[type, Checker]) -> Checker:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _checker(typing.get_args(tp)[0], building)
    if tp is Any or tp is object:
        return _any
    if origin in _UNIONS:
        return _union(tp, building)
    if tp is _NONE or tp is None:
        return _simple(lambda v: v is None, lambda v: None, "none_required", "Input should be None")
    if tp is bool:
        return _simple(lambda v: v is True or v is False or type(v) is int and v in (0, 1), bool,
                       "bool_type", "Input should be a valid boolean", (_bool, *_BOOL_PARSING))
    if tp is int:
        return _simple(lambda v: type(v) is int or type(v) is float and v.is_integer(), int,
                       "int_type", "Input should be a valid integer", (_int, *_INT_PARSING))
    if tp is float:
        return _simple(lambda v: type(v) is float or type(v) is int, float,
                       "float_type", "Input should be a valid number", (_float, *_FLOAT_PARSING))
    if tp is str:
        return _simple(lambda v: type(v) is str, str, "string_type", "Input should be a valid string")
    if tp is uuid.UUID:
        return _parsed(uuid.UUID, "uuid_parsing", "Input should be a valid UUID")
    if tp is datetime.datetime:
        return _parsed(datetime.datetime.fromisoformat, "datetime_parsing",
                       "Input should be a valid datetime")
    if tp is datetime.date:
        return _parsed(datetime.date.fromisoformat, "date_parsing", "Input should be a valid date")
    if tp is datetime.time:
        return _parsed(datetime.time.fromisoformat, "time_parsing", "Input should be a valid time")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _choice({m.value: m for m in tp}, "enum")
    if origin is Literal:
        return _choice({v: v for v in typing.get_args(tp)}, "literal_error")
    if tp in _SEQUENCES or origin in _SEQUENCES:
        args = typing.get_args(tp)
        if len(args) > 1 and args[1] is not Ellipsis:
            raise TypeError(f"{tp!r}: only tuples of one type (tuple[int, ...]) can be read from JSON")
        return _sequence(origin or tp, _checker(args[0], building) if args else _any)
    if tp is dict or origin is dict:
        args = typing.get_args(tp)
        return _mapping(_checker(args[1], building) if args else _any)
    if is_pydantic_model(tp):
        return _pydantic(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, building)
    raise TypeError(f"{tp!r} cannot be read from JSON (use str, int, float, bool, UUID, dates, an "
                    "Enum or Literal, lists and dicts of those, dataclasses or pydantic models)")


def _any(value: Any, loc: Loc, errors: Errors) -> Any:
    return value


def _simple(accepts: Callable[[Any], bool], make: Callable[[Any], Any], type_: str, msg: str,
            text: tuple[Callable[[str], Any], str, str] | None = None) -> Checker:
    """A JSON scalar; with ``text``, a string holding one is converted too (lax, as pydantic)."""
    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        if accepts(value):
            return make(value)
        if text is not None and type(value) is str:
            try:
                return text[0](value)
            except ValueError:
                errors.append(error(text[1], loc, text[2], value))
                return INVALID
        errors.append(error(type_, loc, msg, value))
        return INVALID
    return check


def _parsed(parse: Callable[[str], Any], type_: str, msg: str) -> Checker:
    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        if type(value) is str:
            try:
                return parse(value)
            except ValueError:
                pass
        errors.append(error(type_, loc, msg, value))
        return INVALID
    return check


def choices_message(values: Any) -> str:
    """pydantic's wording: ``Input should be 'a', 'b' or 'c'``."""
    shown = [repr(v) for v in values]
    listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]
    return f"Input should be {listed}"


def _choice(table: dict[Any, Any], type_: str) -> Checker:
    msg = choices_message(table)

    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        try:
            return table[value]
        except (KeyError, TypeError):  # TypeError: an unhashable value (a list, a dict)
            errors.append(error(type_, loc, msg, value))
            return INVALID
    return check


def _union(tp: Any, building: dict[type, Checker]) -> Checker:
    args = typing.get_args(tp)
    members = [_checker(a, building) for a in args if a is not _NONE]
    nullable = len(members) < len(args)

    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        if value is None and nullable:
            return None
        first: Errors | None = None
        for member in members:
            trial: Errors = []
            result = member(value, loc, trial)
            if not trial:
                return result
            first = trial if first is None else first
        errors.extend(first or ())
        return INVALID
    return check


def _sequence(kind: type, item: Checker) -> Checker:
    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        if type(value) is not list:
            errors.append(error("list_type", loc, "Input should be a valid list", value))
            return INVALID
        before = len(errors)
        items = [item(v, loc + (i,), errors) for i, v in enumerate(value)]
        if len(errors) > before:
            return INVALID
        return items if kind is list else kind(items)
    return check


def _mapping(item: Checker) -> Checker:
    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        if type(value) is not dict:
            errors.append(error("dict_type", loc, "Input should be a valid dictionary", value))
            return INVALID
        before = len(errors)
        out = {k: item(v, loc + (k,), errors) for k, v in value.items()}
        return INVALID if len(errors) > before else out
    return check


def _pydantic(tp: type) -> Checker:
    from pydantic import ValidationError
    validate = tp.model_validate  # type: ignore[attr-defined]

    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        try:
            return validate(value)
        except ValidationError as exc:
            errors.extend(_pydantic_errors(exc, loc))
            return INVALID
    return check


def _dataclass(tp: type, building: dict[type, Checker]) -> Checker:
    if tp in building:  # a recursive dataclass: its checker is being built, call it late
        return lambda value, loc, errors: building[tp](value, loc, errors)
    building[tp] = _any
    hints = typing.get_type_hints(tp, include_extras=True)
    fields = []
    for f in dataclasses.fields(tp):
        if not f.init:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        fields.append((f.name, _checker(hints.get(f.name, Any), building), required))

    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        if type(value) is not dict:
            errors.append(error("dict_type", loc, "Input should be a valid dictionary", value))
            return INVALID
        before = len(errors)
        kwargs = {}
        for name, check_field, required in fields:
            if name in value:
                kwargs[name] = check_field(value[name], loc + (name,), errors)
            elif required:
                errors.append(error("missing", loc + (name,), "Field required", value))
        if len(errors) > before:
            return INVALID
        try:
            return tp(**kwargs)
        except (ValueError, TypeError) as exc:  # __post_init__ refused the values
            errors.append(error("value_error", loc, f"Value error, {exc}", value))
            return INVALID
    building[tp] = check
    return check


# ------------------------------------------------------------------ writing
def json_default(obj: Any) -> Any:
    """``default`` for ``_json.dumps``: models as their JSON data (orjson writes dataclasses,
    dates, UUIDs and enums itself; these cover the stdlib fallback too)."""
    dump = getattr(obj, "model_dump", None)
    if dump is not None and is_pydantic_model(type(obj)):
        return dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, (datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


# ------------------------------------------------------------------ JSON Schema
_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"}, int: {"type": "integer"}, float: {"type": "number"},
    bool: {"type": "boolean"}, _NONE: {"type": "null"}, bytes: {"type": "string", "format": "binary"},
    uuid.UUID: {"type": "string", "format": "uuid"},
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"}, datetime.time: {"type": "string", "format": "time"},
}
_REF = "#/components/schemas/"


def json_schema(tp: Any, components: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of ``tp``; the models it uses are put in ``components`` (by class name)
    and referred to with ``$ref``."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return json_schema(typing.get_args(tp)[0], components)
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    if tp is None:
        return {"type": "null"}
    if origin in _UNIONS:
        return {"anyOf": [json_schema(a, components) for a in typing.get_args(tp)]}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_schema([m.value for m in tp], tp.__name__)
    if origin is Literal:
        return _enum_schema(list(typing.get_args(tp)), None)
    if tp in _SEQUENCES or origin in _SEQUENCES:
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        schema: dict[str, Any] = {"type": "array"}
        if args:
            schema["items"] = json_schema(args[0], components)
        if (origin or tp) in (set, frozenset):
            schema["uniqueItems"] = True
        return schema
    if tp is dict or origin is dict:
        key_value = typing.get_args(tp)
        schema = {"type": "object"}
        if key_value:
            schema["additionalProperties"] = json_schema(key_value[1], components)
        return schema
    if is_pydantic_model(tp):
        return _pydantic_schema(tp, components)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_schema(tp, components)
    return {}


def _enum_schema(values: list[Any], title: str | None) -> dict[str, Any]:
    schema: dict[str, Any] = {"enum": values}
    kinds = {type(v) for v in values}
    if len(kinds) == 1 and next(iter(kinds)) in _SCALARS:
        schema["type"] = _SCALARS[next(iter(kinds))]["type"]
    if title:
        schema["title"] = title
    return schema


def _pydantic_schema(tp: Any, components: dict[str, Any]) -> dict[str, Any]:
    name = tp.__name__
    if name not in components:
        schema = tp.model_json_schema(ref_template=_REF + "{model}")
        for def_name, definition in schema.pop("$defs", {}).items():
            components.setdefault(def_name, definition)
        components[name] = schema
    return {"$ref": _REF + name}


def _dataclass_schema(tp: type, components: dict[str, Any]) -> dict[str, Any]:
    name = tp.__name__
    if name not in components:
        components[name] = {}  # a placeholder first: a recursive dataclass refers to itself
        hints = typing.get_type_hints(tp, include_extras=True)
        properties: dict[str, Any] = {}
        required = []
        for f in dataclasses.fields(tp):
            if not f.init:
                continue
            prop = json_schema(hints.get(f.name, Any), components)
            if f.default is not dataclasses.MISSING:
                if isinstance(f.default, (str, int, float, bool, type(None))):
                    prop["default"] = f.default
            elif f.default_factory is dataclasses.MISSING:
                required.append(f.name)
            properties[f.name] = prop
        schema: dict[str, Any] = {"title": name, "type": "object", "properties": properties}
        if required:
            schema["required"] = required
        components[name] = schema
    return {"$ref": _REF + name}
