"""The response spellings of the frameworks cyserve replaces, as thin builders over its responses.

- Blazeio's ``Deliver``: ``return Deliver.json(data)``, ``Deliver.text("hi", 201)``, and any other
  attribute names a content type with ``_`` for ``/`` and then for ``-`` (``Deliver.text_html``,
  ``Deliver.application_octet_stream`` is ``application/octet-stream``); a known structured
  suffix becomes ``+`` (``Deliver.image_svg_xml`` is ``image/svg+xml``) and a ``vnd``/``prs``
  tree a ``.`` (``Deliver.application_vnd_api_json`` is ``application/vnd.api+json``).  Other
  names take ``content_type=``.  Blazeio also takes the request first (``Deliver.text(r,
  "hi")``); that form works too.  Its ``path=`` meant a redirect but sent 200 (SEEDS §1.4); here
  it redirects.
- Areion's ``create_json_response``, ``create_text_response``, ``create_html_response``,
  ``create_xml_response`` and ``create_redirect_response(location, 301)``.

Each returns a ``Response`` for the handler to return; nothing is written behind its back.
"""
from __future__ import annotations

from typing import Any

from cyserve._json import dumps
from cyserve.response import Fields, HTMLResponse, JSONResponse, RedirectResponse, Response

__all__ = [
    "Deliver",
    "create_html_response",
    "create_json_response",
    "create_redirect_response",
    "create_text_response",
    "create_xml_response",
]

_TEXT = "text/plain; charset=utf-8"
# Suffixes a content-type attribute may end with: ``image_svg_xml`` is image/svg+xml.
_STRUCTURED = ("xml", "json", "zip", "gzip")
# Registration trees whose facet ends with "." (RFC 6838 §3.2, §3.3): vnd.api+json.
_TREES = ("vnd", "prs")


def _strip_request(args: tuple[Any, ...]) -> tuple[Any, ...]:
    from cyserve.request import Request

    return args[1:] if args and isinstance(args[0], Request) else args


def _media_type(attribute: str) -> str:
    kind, _, rest = attribute.partition("_")
    if not kind or not rest:
        raise AttributeError(f"Deliver.{attribute} does not name a content type (type_subtype)")
    parts = rest.split("_")
    suffix = ""
    if len(parts) > 1 and parts[-1] in _STRUCTURED:
        suffix = "+" + parts.pop()
    tree = ""
    if len(parts) > 1 and parts[0] in _TREES:
        tree = parts.pop(0) + "."
    # Subtype words are joined by "-", the usual separator of registered names (octet-stream,
    # x-www-form-urlencoded); "." only after a tree facet.
    return f"{kind}/{tree}{'-'.join(parts)}{suffix}"


def _body(data: Any, indent: int | None) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    if indent:
        import json

        return json.dumps(data, indent=indent, ensure_ascii=False).encode("utf-8")
    return dumps(data)


class _Deliver:
    """``Deliver.<kind>([request,] data, status=200, headers=None, *, path=None, content_type=None,
    indent=None)`` builds a response; see the module docstring."""

    def text(self, *args: Any, **kwargs: Any) -> Response:
        return self._build(_TEXT, args, kwargs)

    def json(self, *args: Any, **kwargs: Any) -> Response:
        return self._build("application/json", args, kwargs)

    def html(self, *args: Any, **kwargs: Any) -> Response:
        return self._build("text/html; charset=utf-8", args, kwargs)

    def redirect(self, *args: Any, status: int = 302, headers: Fields = None) -> Response:
        (location,) = _strip_request(args)
        return RedirectResponse(location, status, headers)

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        media_type = _media_type(attribute)
        if media_type.startswith("text/"):
            media_type += "; charset=utf-8"
        return lambda *args, **kwargs: self._build(media_type, args, kwargs)

    def _build(self, media_type: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Response:
        args = _strip_request(args)
        if not 1 <= len(args) <= 3:
            raise TypeError("Deliver takes data, and optionally status and headers")
        data = args[0]
        status = args[1] if len(args) > 1 else 200
        headers = args[2] if len(args) > 2 else None
        path = kwargs.pop("path", None)
        content_type = kwargs.pop("content_type", None) or media_type
        indent = kwargs.pop("indent", None)
        if kwargs:
            raise TypeError(f"unexpected Deliver arguments: {sorted(kwargs)}")
        if path is not None:
            # A redirect with a body; 302 unless the caller chose another 3xx (Blazeio sent 200).
            code = status if status in (301, 302, 303, 307, 308) else 302
            redirect = RedirectResponse(path, code, headers)
            redirect.body = _body(data, indent)
            redirect.content_type = content_type
            return redirect
        return Response(_body(data, indent), status, headers, content_type)


Deliver = _Deliver()


def create_json_response(data: Any, status: int = 200, headers: Fields = None) -> Response:
    """Areion's JSON response helper."""
    return JSONResponse(data, status, headers)


def create_text_response(text: str, status: int = 200, headers: Fields = None) -> Response:
    """Areion's text response helper (UTF-8, text/plain)."""
    return Response(text, status, headers, _TEXT)


def create_html_response(html: str, status: int = 200, headers: Fields = None) -> Response:
    """Areion's HTML response helper."""
    return HTMLResponse(html, status, headers)


def create_xml_response(xml: str | bytes, status: int = 200, headers: Fields = None) -> Response:
    """Areion's XML response helper (application/xml)."""
    return Response(xml, status, headers, "application/xml; charset=utf-8")


def create_redirect_response(location: str, status: int = 301, headers: Fields = None) -> Response:
    """Areion's redirect helper: a 3xx (301, 302, 303, 307, 308) with Location; anything else is a
    ``ValueError``, as is CR/LF in the location."""
    return RedirectResponse(location, status, headers)
