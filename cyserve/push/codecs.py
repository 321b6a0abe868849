"""Payload codecs of cyserve-push/1 (docs/push-protocol.md §6.3), and the value format the hubs
of a deployment exchange through the broker.

A session's codec turns the data of CALL, REPLY and PUSH frames into bytes and back in the binary
framings; the JSON framings carry the JSON value itself (§3.2), which ``for_frame`` decides.

- ``JSON``: orjson, any JSON value (RFC 8259); an empty payload is ``null`` (§4).
- ``BYTES``: raw bytes both ways.
- ``XML``: an XML 1.0 document in UTF-8, decoded to an ``xml.etree.ElementTree.Element``. It
  refuses any DOCTYPE, so there is no DTD, no entity declaration, no external entity and no
  entity expansion attack (billion laughs); only the five predefined entities and character
  references are resolved, and nothing is ever fetched. The stdlib expat parser does the work,
  with handlers that refuse before any of it reaches the tree.

``decode`` is fed peer input: it raises ``ValueError`` for anything it cannot decode and nothing
else, so the hub can answer ERROR ``bad_payload`` (§7.2) and keep the connection. ``encode`` is
fed the application's values: ``TypeError`` for a value the codec cannot carry, ``ValueError``
for one it can carry in kind but not this one (an XML string that is not a document).

``pack``/``unpack`` are the inter-node format of a published value: one tag byte, then the value
encoded once (bytes as themselves, an Element as its XML, anything else as orjson JSON); each
receiving node re-encodes it for the codecs its members use.
"""
from __future__ import annotations

import copy
from types import MappingProxyType
from typing import Final, Mapping, Protocol
from xml.etree.ElementTree import Element, TreeBuilder, tostring
from xml.parsers import expat

import orjson

from cyserve._core.push.frames import (
    FRAMING_BINARY, FRAMING_JSON_LINES, FRAMING_WS_BINARY, FRAMING_WS_TEXT,
)

__all__ = [
    "BYTES", "CODECS", "JSON", "XML", "BytesCodec", "Codec", "JsonCodec", "XmlCodec", "codec",
    "for_frame", "pack", "unpack",
]

# Looked up once: the JSON codec runs on every publish and every call.
_dumps: Final = orjson.dumps
_loads: Final = orjson.loads
_JSONEncodeError: Final = orjson.JSONEncodeError
_JSONDecodeError: Final = orjson.JSONDecodeError

_Buffer = bytes | bytearray | memoryview
"""What the decoders take: a payload is bytes from the frame decoder, but a view or a copy of
a receive buffer reads the same."""


class Codec(Protocol):
    """A payload codec: what CALL, REPLY and PUSH data are in the binary framings (§6.3)."""

    @property
    def name(self) -> str:
        """The name a HELLO asks for and WELCOME confirms (``json``, ``bytes``, ``xml``)."""

    def encode(self, value: object) -> bytes:
        """The payload carrying ``value``; TypeError/ValueError, saying what is wrong, for a
        value this codec cannot carry (the application's mistake, raised at the sender)."""

    def decode(self, data: bytes) -> object:
        """The value a peer's payload carries; ValueError, and only ValueError, for bytes this
        codec cannot decode (the hub answers ERROR ``bad_payload``)."""


class JsonCodec:
    """``json``: orjson, strict RFC 8259 (UTF-8 checked, one value, no NaN literals).

    What orjson refuses is refused (non-str dict keys, integers beyond 64 bits, unknown types:
    TypeError); what orjson maps is mapped as it maps it, identically on every path (NaN and
    infinities become ``null``, as RFC 8259 §6 has no number for them; tuples become arrays;
    datetimes become ISO 8601 strings), so a member reached through another node sees what a
    local member sees. Decoding, an integer beyond 64 bits is read as the nearest double, as
    orjson reads it.
    """

    __slots__ = ()
    name: Final = "json"

    def encode(self, value: object) -> bytes:
        # No type checks: orjson looks at the type itself, and a try costs nothing until it
        # raises (the publish path).
        try:
            return _dumps(value)
        except _JSONEncodeError as exc:
            raise TypeError(
                f"the json codec cannot encode this {type(value).__name__}: {exc}") from None

    def decode(self, data: _Buffer) -> object:
        if not data:
            # An empty payload means null (§4): a call with no arguments, a reply of None.
            return None
        try:
            return _loads(data)
        except _JSONDecodeError as exc:
            # orjson's message says where and what (never the bytes themselves).
            raise ValueError(f"the payload is not valid JSON: {exc}") from None


class BytesCodec:
    """``bytes``: the payload is the value, both ways: any bytes-like value in, ``bytes`` out."""

    __slots__ = ()
    name: Final = "bytes"

    def encode(self, value: object) -> bytes:
        if type(value) is bytes:
            return value
        return _as_bytes(value, "the bytes codec")

    def decode(self, data: _Buffer) -> object:
        # Every byte sequence is a valid payload; only a copy of a mutable buffer is needed.
        return data if type(data) is bytes else bytes(data)


def _as_bytes(value: object, what: str) -> bytes:
    """``value``'s bytes when it is bytes-like (a copy: a bytearray may change after the call)."""
    if isinstance(value, str):
        # bytes(str) needs an encoding and a str is text: text is what the json codec is for.
        raise TypeError(f"{what} carries bytes, not str: use the json codec for text")
    try:
        view = memoryview(value)  # type: ignore[arg-type]
    except TypeError:
        # Never bytes(value): bytes(5) would be five NUL bytes, not an error.
        raise TypeError(f"{what} carries bytes-like values, not {type(value).__name__}") from None
    with view:
        return view.tobytes()


def _refuse_doctype(name: str, system_id: str | None, public_id: str | None,
                    has_internal_subset: bool) -> None:
    # A DOCTYPE is where every XML entity attack starts (internal entities: billion laughs;
    # external entities and DTDs: file and network reads), and no message of ours needs one
    # (§6.3). Refusing it at its start means none of its subset is ever parsed.
    raise ValueError("the xml codec refuses a DOCTYPE (no DTD, no entity declarations)")


def _refuse_entity_decl(*args: object) -> None:
    # Unreachable without a DOCTYPE; a second lock on the same door.
    raise ValueError("the xml codec refuses entity declarations")


def _refuse_external_entity(context: str | None, base: str | None, system_id: str | None,
                            public_id: str | None) -> int:
    raise ValueError("the xml codec refuses external entities")


_UTF8_NAMES: Final = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


def _check_declaration(version: str | None, encoding: str | None, standalone: int) -> None:
    # The payload is UTF-8 (§6.3) and is parsed as such whatever the declaration says: a
    # declaration naming another encoding would have its peer read the text differently.
    if encoding is not None and encoding.lower() not in _UTF8_NAMES:
        raise ValueError("the xml codec carries UTF-8 documents only")


class XmlCodec:
    """``xml``: an XML 1.0 document in UTF-8 as an ``xml.etree.ElementTree.Element``.

    Decoding gives what ``xml.etree.ElementTree.fromstring`` would (namespaced names as
    ``{uri}local``, comments and processing instructions dropped) for a document without a
    DOCTYPE, and refuses every document with one.
    """

    __slots__ = ()
    name: Final = "xml"

    def encode(self, value: object) -> bytes:
        """An Element serialised (UTF-8, no XML declaration, without the element's tail, which
        belongs to its parent), or a str/bytes that is a whole document, as UTF-8 bytes. Either
        is checked by ``decode``, so a peer never receives a document it would refuse."""
        data: bytes
        if isinstance(value, Element):
            if value.tail is not None:
                # A shallow copy shares the children; the caller's element is left alone.
                value = copy.copy(value)
                value.tail = None
            try:
                # ElementTree writes no declaration for UTF-8 and raises TypeError for a
                # non-str text or attribute.
                data = tostring(value, encoding="utf-8", xml_declaration=False)
            except RecursionError:
                # ElementTree serialises recursively; expat (decode) does not, so a peer's
                # document can be deeper than what can be written back.
                raise ValueError("the element is nested too deeply to serialise") from None
        elif isinstance(value, str):
            try:
                data = value.encode("utf-8")
            except UnicodeEncodeError:
                # A lone surrogate: no UTF-8 (RFC 3629 §3) carries it.
                raise ValueError("the xml document holds a lone surrogate, which UTF-8 cannot "
                                 "carry") from None
        elif isinstance(value, (bytes, bytearray, memoryview)):
            data = _as_bytes(value, "the xml codec")
        else:
            raise TypeError("the xml codec carries an xml.etree.ElementTree.Element or an XML "
                            f"document (str or bytes), not {type(value).__name__}")
        self.decode(data)
        return data

    def decode(self, data: _Buffer) -> Element:
        builder = TreeBuilder()
        # "}" as the namespace separator, as ElementTree: expat reports "uri}local", which
        # becomes ElementTree's "{uri}local".
        parser = expat.ParserCreate("utf-8", "}")
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = _refuse_doctype
        parser.EntityDeclHandler = _refuse_entity_decl
        parser.UnparsedEntityDeclHandler = _refuse_entity_decl
        parser.ExternalEntityRefHandler = _refuse_external_entity
        parser.XmlDeclHandler = _check_declaration
        parser.buffer_text = True

        def start(tag: str, attrib: dict[str, str]) -> None:
            if "}" in tag:
                tag = "{" + tag
            if attrib:
                attrib = {("{" + k if "}" in k else k): v for k, v in attrib.items()}
            builder.start(tag, attrib)

        def end(tag: str) -> None:
            builder.end("{" + tag if "}" in tag else tag)

        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = builder.data
        try:
            parser.Parse(data, True)
        except expat.ExpatError as exc:
            # Expat's message is a code and a position; the document is not repeated.
            raise ValueError(f"the payload is not a well-formed XML document: {exc}") from None
        return builder.close()


JSON: Final = JsonCodec()
BYTES: Final = BytesCodec()
XML: Final = XmlCodec()

CODECS: Final[Mapping[str, Codec]] = MappingProxyType(
    {JSON.name: JSON, BYTES.name: BYTES, XML.name: XML})
"""The codecs a HELLO may name (docs §6.3), by name."""


def codec(name: str) -> Codec:
    """The codec named ``name``; ValueError when there is none (the hub refuses the HELLO with
    ``unsupported_codec``), TypeError when ``name`` is not a str (a malformed HELLO)."""
    if type(name) is not str:
        raise TypeError(f"a codec name is a str, not {type(name).__name__}")
    found = CODECS.get(name)
    if found is None:
        # At most 64 characters of a name that came from a peer.
        raise ValueError(f"unknown codec {name[:64]!r} (known: {', '.join(sorted(CODECS))})")
    return found


def for_frame(codec: Codec, value: object, framing: int) -> object:
    """The payload a PUSH or REPLY carrying ``value`` has in ``framing``: in the binary framings
    the codec's bytes; in the JSON framings (whose codec is always ``json``, §3.2) the value
    itself, once orjson is known to encode it, so a bad value fails here with the codec's
    message rather than inside the frame encoder."""
    if framing == FRAMING_BINARY or framing == FRAMING_WS_BINARY:
        return codec.encode(value)
    if framing == FRAMING_JSON_LINES or framing == FRAMING_WS_TEXT:
        if codec.name != JSON.name:
            raise ValueError(f"the JSON framings carry JSON only, not the {codec.name} codec "
                             "(docs §3.2, §6.3)")
        JSON.encode(value)
        return value
    raise ValueError(f"unknown framing {framing!r}")


# Tags of pack's format: printable, so an envelope read in redis-cli says what it holds.
_TAG_JSON: Final = 0x6A       # "j"
_TAG_BYTES: Final = 0x62      # "b"
_TAG_XML: Final = 0x78        # "x"
_PREFIX_JSON: Final = b"j"
_PREFIX_BYTES: Final = b"b"
_PREFIX_XML: Final = b"x"


def pack(value: object) -> bytes:
    """``value`` as one tag byte and its encoding, for another node's hub: bytes-like values as
    themselves, an Element as its XML, anything else as orjson JSON (TypeError, at the publisher,
    for what orjson cannot encode)."""
    cls = type(value)
    # Exact types first: the common values are decided by one comparison each.
    if cls is dict or cls is list or cls is str or cls is int or cls is float or value is None:
        return _PREFIX_JSON + JSON.encode(value)
    if cls is bytes:
        return _PREFIX_BYTES + value  # type: ignore[operator]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _PREFIX_BYTES + _as_bytes(value, "pack")
    if isinstance(value, Element):
        return _PREFIX_XML + XML.encode(value)
    return _PREFIX_JSON + JSON.encode(value)


def unpack(data: _Buffer) -> object:
    """The value ``pack`` made ``data`` from: bytes, an Element, or the JSON value (JSON's
    types: a tuple comes back as a list, as every JSON member receives it). ValueError for data
    ``pack`` did not make."""
    if not data:
        raise ValueError("an empty envelope value (pack makes at least a tag byte)")
    tag = data[0]
    if tag == _TAG_JSON:
        # A view, not a copy: orjson reads any buffer.
        return JSON.decode(memoryview(data)[1:])
    if tag == _TAG_BYTES:
        return bytes(data[1:])
    if tag == _TAG_XML:
        return XML.decode(data[1:])
    raise ValueError(f"unknown envelope value tag 0x{tag:02x}")
