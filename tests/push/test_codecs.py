"""The push payload codecs (``cyserve.push.codecs``, docs/push-protocol.md §6.3): round trips of
each codec, every refusal with its message, the XML codec's safety against entity attacks, the
inter-node ``pack``/``unpack`` format, and ``for_frame`` in every framing, checked through the
frame codec. JSON output is checked against the stdlib ``json`` as a second decoder.
"""
from __future__ import annotations

import array
import json
import math
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import orjson
import pytest

from cyserve._core.push import frames
from cyserve._core.push.frames import (
    FLAG_ACK_REQUESTED, FRAMING_AUTO, FRAMING_BINARY, FRAMING_JSON_LINES, FRAMING_WS_BINARY,
    FRAMING_WS_TEXT, KIND_PUSH, KIND_REPLY, Frame, FrameDecoder, PushTemplate, encode,
)
from cyserve.push.codecs import (
    BYTES, CODECS, JSON, XML, BytesCodec, Codec, JsonCodec, XmlCodec, codec, for_frame, pack,
    unpack,
)

from tests.push.frames_support import ALL_FRAMINGS, MIB, U64_MAX, random_json

BINARY_FRAMINGS = {"binary": FRAMING_BINARY, "ws-binary": FRAMING_WS_BINARY}
JSON_FRAMINGS = {"json-lines": FRAMING_JSON_LINES, "ws-text": FRAMING_WS_TEXT}


def shape(element: ET.Element) -> tuple[object, ...]:
    """An element as nested tuples, for structural comparison: tag, attributes, text, and each
    child with its tail (a missing text or tail and an empty one are the same document)."""
    return (element.tag, dict(element.attrib), element.text or "",
            tuple((shape(child), child.tail or "") for child in element))


# --- json ----------------------------------------------------------------------------------

JSON_VALUES = {
    "null": None,
    "true": True,
    "false": False,
    "zero": 0,
    "negative": -17,
    "i64-min": -(1 << 63),
    "u64-max": U64_MAX,
    "float": 3.141592653589793,
    "tiny-float": 5e-324,
    "empty-string": "",
    "unicode": "héllo wörld ✓ 中文 😀 \u2028",
    "controls": "\x00\x01\n\r\t\x1f\x7f\"\\",
    "empty-list": [],
    "empty-object": {},
    "nested": {"a": [1, {"b": [None, True, "x"]}], "ü": {"": 0.5}},
    "large-list": list(range(100_000)),
    "large-string": "x€" * (MIB // 2),
    "large-object": {f"k{i}": [i, str(i)] for i in range(10_000)},
}


@pytest.mark.parametrize("value", JSON_VALUES.values(), ids=JSON_VALUES.keys())
def test_json_round_trips_and_the_stdlib_reads_the_same_value(value: object) -> None:
    data = JSON.encode(value)
    assert type(data) is bytes
    assert JSON.decode(data) == value
    assert json.loads(data) == value


def test_json_random_values_round_trip_and_agree_with_the_stdlib() -> None:
    rng = random.Random(11)
    for _ in range(500):
        value = random_json(rng)
        data = JSON.encode(value)
        assert JSON.decode(data) == value
        assert json.loads(data.decode("utf-8")) == value


def test_json_empty_payload_is_null_and_null_encodes_as_null() -> None:
    assert JSON.decode(b"") is None
    assert JSON.decode(bytearray()) is None
    assert JSON.encode(None) == b"null"
    assert JSON.decode(b"null") is None


def test_json_maps_what_orjson_maps_the_same_way_on_every_path() -> None:
    # RFC 8259 §6 has no NaN or infinity: orjson writes null, and so does every path of ours
    # (codec, frame encoder, pack), so local and remote members see the same value.
    for special in (math.nan, math.inf, -math.inf):
        assert JSON.encode(special) == b"null"
        assert JSON.encode(special) == orjson.dumps(special)
        assert unpack(pack(special)) is None
    assert JSON.decode(JSON.encode((1, "a"))) == [1, "a"]


JSON_UNENCODABLE = {
    "int-key": ({1: "a"}, "dict", "Dict key must be str"),
    "set": ({1, 2}, "set", "set"),
    "int-over-64-bits": (1 << 64, "int", "64-bit"),
    "int-under-i64": (-(1 << 63) - 1, "int", "64-bit"),
    "bytes": (b"raw", "bytes", "bytes"),
    "object": (object(), "object", "object"),
    "nested-bytes": ({"a": [b"x"]}, "dict", "bytes"),
}


@pytest.mark.parametrize("value, type_name, detail", JSON_UNENCODABLE.values(),
                         ids=JSON_UNENCODABLE.keys())
def test_json_refuses_what_orjson_cannot_encode_naming_the_type(
        value: object, type_name: str, detail: str) -> None:
    with pytest.raises(TypeError) as info:
        JSON.encode(value)
    message = str(info.value)
    assert message.startswith(f"the json codec cannot encode this {type_name}: ")
    assert detail in message


def test_json_refuses_a_self_containing_value_with_a_type_error() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(TypeError, match="the json codec cannot encode this list"):
        JSON.encode(loop)


JSON_UNDECODABLE = {
    "truncated": b'{"a":',
    "two-values": b"[1] [2]",
    "whitespace-only": b"  ",
    "nan-literal": b"NaN",
    "infinity-literal": b"[Infinity]",
    "single-quotes": b"'a'",
    "trailing-comma": b"[1,]",
    "invalid-utf8": b'"\xff"',
    "utf8-surrogate": b'"\xed\xa0\x80"',
    "overlong-utf8": b'"\xc0\xaf"',
    "lone-surrogate-escape": b'"\\ud800"',
    "number-overflowing-double": b"1e400",
    "too-deep": b"[" * 2000 + b"]" * 2000,
    "nul": b"\x00",
    "bom": b"\xef\xbb\xbf1",
}


@pytest.mark.parametrize("data", JSON_UNDECODABLE.values(), ids=JSON_UNDECODABLE.keys())
def test_json_refuses_undecodable_payloads_with_value_error_only(data: bytes) -> None:
    with pytest.raises(ValueError) as info:
        JSON.decode(data)
    assert type(info.value) is ValueError
    assert str(info.value).startswith("the payload is not valid JSON: ")


def _stdlib_int(text: str) -> int | float:
    # orjson reads an integer beyond i64/u64 as the nearest double; the stdlib keeps it exact.
    value = int(text)
    return value if -(1 << 63) <= value <= U64_MAX else float(text)


def test_json_decode_of_any_bytes_is_a_value_or_a_value_error_agreeing_with_the_stdlib() -> None:
    # Any bytes either decode or raise ValueError (nothing else), and whatever the codec accepts
    # the stdlib reads as the same value. The codec may refuse more than the stdlib (NaN and
    # Infinity literals, lone surrogate escapes, numbers overflowing a double, nesting past 1024:
    # none is RFC 8259 JSON a peer may rely on), never less.
    rng = random.Random(7)
    seeds = [JSON.encode(random_json(rng)) for _ in range(60)]
    accepted = 0
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(data) + 1)
            action = rng.randrange(3)
            if action == 0 and data:
                del data[at:at + rng.randrange(1, 4)]
            elif action == 1:
                data[at:at] = bytes([rng.randrange(256)])
            elif data:
                data[min(at, len(data) - 1)] = rng.choice(b'{}[]",:0-.eE\\ntf\xff\x00 ')
        raw = bytes(data)
        try:
            ours: object = JSON.decode(raw)
        except ValueError as exc:
            assert type(exc) is ValueError
            continue
        accepted += 1
        if raw:
            assert json.loads(raw.decode("utf-8"), parse_int=_stdlib_int) == ours
        else:
            assert ours is None  # an empty payload is null (§4)
    assert 0 < accepted < 3000  # both verdicts are exercised


# --- bytes ---------------------------------------------------------------------------------

BYTES_VALUES = {
    "empty": b"",
    "all-byte-values": bytes(range(256)),
    "nul-and-newlines": b"\x00\n\r\n\x00",
    "large": bytes(range(256)) * 4096,
}


@pytest.mark.parametrize("value", BYTES_VALUES.values(), ids=BYTES_VALUES.keys())
def test_bytes_round_trips_unchanged(value: bytes) -> None:
    data = BYTES.encode(value)
    assert data is value  # bytes are immutable: no copy
    decoded = BYTES.decode(data)
    assert decoded is data
    assert decoded == value


def test_bytes_takes_any_bytes_like_value_and_copies_mutable_ones() -> None:
    buffer = bytearray(b"abc")
    data = BYTES.encode(buffer)
    buffer[0] = ord("z")
    assert (type(data), data) == (bytes, b"abc")
    assert BYTES.encode(memoryview(b"hello")[1:4]) == b"ell"
    assert BYTES.encode(array.array("B", [1, 2, 3])) == b"\x01\x02\x03"
    assert BYTES.encode(memoryview(b"abcdef")[::2]) == b"ace"  # a strided view, made contiguous
    decoded = BYTES.decode(bytearray(b"xyz"))
    assert (type(decoded), decoded) == (bytes, b"xyz")


def test_bytes_refuses_text_pointing_at_the_json_codec() -> None:
    with pytest.raises(TypeError) as info:
        BYTES.encode("text")
    assert str(info.value) == ("the bytes codec carries bytes, not str: use the json codec for "
                               "text")


@pytest.mark.parametrize("value, type_name", [(5, "int"), (None, "NoneType"), ({}, "dict"),
                                              ([1, 2], "list"), (1.5, "float")],
                         ids=["int", "none", "dict", "list", "float"])
def test_bytes_refuses_what_is_not_bytes_like_naming_the_type(value: object,
                                                              type_name: str) -> None:
    # bytes(5) would be five NUL bytes: the codec must not fall into it.
    with pytest.raises(TypeError) as info:
        BYTES.encode(value)
    assert str(info.value) == f"the bytes codec carries bytes-like values, not {type_name}"


# --- xml -----------------------------------------------------------------------------------

XML_DOCUMENTS = {
    "empty-element": b"<a/>",
    "attributes-text-children-tails":
        b'<order id="7" kind="a&amp;b"><item qty="2">tea</item>between<item/>after</order>',
    "unicode": "<msg lang=\"中文\">héllo ✓ 😀</msg>".encode("utf-8"),
    "default-namespace": b'<a xmlns="urn:x"><b c="1"/></a>',
    "prefixed-namespace": b'<p:a xmlns:p="urn:p" p:attr="v"><p:b/><c/></p:a>',
    "xml-lang": b'<a xml:lang="en">x</a>',
    "utf8-declaration": b'<?xml version="1.0" encoding="UTF-8"?><a>x</a>',
    "ascii-declaration": b'<?xml version="1.0" encoding="us-ascii" standalone="yes"?><a/>',
    "utf8-bom": b"\xef\xbb\xbf<a>x</a>",
    "comments-and-pis": b"<?pi data?><!-- c --><a><!-- in -->x<?p?>y</a><!-- after -->",
    "cdata": b"<a><![CDATA[<not> &markup;]]></a>",
    "whitespace-around": b"\n  <a> spaced </a>\n\n",
    "large": b"<list>" + b"".join(b'<i n="%d">v%d</i>' % (i, i) for i in range(10_000))
             + b"</list>",
}


@pytest.mark.parametrize("document", XML_DOCUMENTS.values(), ids=XML_DOCUMENTS.keys())
def test_xml_decodes_as_the_stdlib_parser_does_for_documents_without_doctype(
        document: bytes) -> None:
    element = XML.decode(document)
    assert isinstance(element, ET.Element)
    assert shape(element) == shape(ET.fromstring(document))


@pytest.mark.parametrize("document", XML_DOCUMENTS.values(), ids=XML_DOCUMENTS.keys())
def test_xml_element_round_trips_structurally(document: bytes) -> None:
    element = XML.decode(document)
    data = XML.encode(element)
    assert type(data) is bytes
    assert not data.startswith(b"<?xml")  # no declaration: UTF-8 is the codec's (§6.3)
    data.decode("utf-8")
    assert shape(XML.decode(data)) == shape(element)


def test_xml_resolves_predefined_entities_and_character_references() -> None:
    element = XML.decode(b'<a t="&quot;&#65;">&lt;&gt;&amp;&apos;&quot;&#x41;&#65;&#x1F600;</a>')
    assert element.text == "<>&'\"AA\U0001F600"
    assert element.attrib == {"t": '"A'}


def test_xml_encodes_a_document_given_as_str_or_bytes_to_utf8_bytes() -> None:
    text = '<?xml version="1.0"?><note to="ü">✓</note>'
    data = XML.encode(text)
    assert data == text.encode("utf-8")
    assert XML.encode(data) == data
    assert XML.encode(bytearray(data)) == data
    assert XML.encode(memoryview(data)) == data


def test_xml_encodes_an_element_without_its_tail_and_leaves_it_unchanged() -> None:
    parent = ET.fromstring("<p><child a='1'>text<g/>gtail</child>not part of child</p>")
    child = parent[0]
    data = XML.encode(child)
    assert shape(XML.decode(data)) == shape(child)
    assert child.tail == "not part of child"
    assert len(child) == 1


def test_xml_encodes_an_element_built_in_code() -> None:
    root = ET.Element("{urn:ns}msg", {"to": "ü & <them>"})
    ET.SubElement(root, "body").text = "a\"b'c]]>d"
    assert shape(XML.decode(XML.encode(root))) == shape(root)


def test_xml_decodes_a_deep_document_without_recursion_and_refuses_to_write_it_back() -> None:
    depth = 50_000
    element = XML.decode(b"<a>" * depth + b"</a>" * depth)
    levels = 0
    while len(element):
        element = element[0]
        levels += 1
    assert levels == depth - 1
    with pytest.raises(ValueError, match="nested too deeply"):
        XML.encode(XML.decode(b"<a>" * depth + b"</a>" * depth))


@pytest.fixture()
def secret_file(tmp_path: Path) -> Path:
    """A real file an external entity could name: its content must never appear anywhere."""
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-7f3a9c")
    return path


def _safety_vectors(secret: Path, tmp_path: Path) -> dict[str, bytes]:
    url = secret.as_uri()
    dtd = tmp_path / "evil.dtd"
    dtd.write_text(f'<!ENTITY leak SYSTEM "{url}">')
    lol = ['<!ENTITY lol "lol">']
    lol += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'
            for i in range(1, 10)]
    return {
        "billion-laughs": ('<?xml version="1.0"?><!DOCTYPE lolz [' + "".join(lol) + "]>"
                           "<lolz>&lol9;</lolz>").encode(),
        "quadratic-blowup": ('<!DOCTYPE a [<!ENTITY x "' + "x" * 10_000 + '">]><a>'
                             + "&x;" * 10_000 + "</a>").encode(),
        "external-entity-file": (f'<!DOCTYPE a [<!ENTITY xxe SYSTEM "{url}">]><a>&xxe;</a>'
                                 ).encode(),
        "external-entity-in-attribute-default":
            (f'<!DOCTYPE a [<!ENTITY xxe SYSTEM "{url}"><!ATTLIST a v CDATA "&xxe;">]><a/>'
             ).encode(),
        "external-dtd": f'<!DOCTYPE a SYSTEM "{dtd.as_uri()}"><a>&leak;</a>'.encode(),
        "public-dtd": (b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
                       b'"http://127.0.0.1:9/xhtml1-strict.dtd"><html/>'),
        "parameter-entity": (f'<!DOCTYPE a [<!ENTITY % p SYSTEM "{dtd.as_uri()}"> %p;]>'
                             "<a>&leak;</a>").encode(),
        "internal-parameter-entity": (b'<!DOCTYPE a [<!ENTITY % p "<!ENTITY e \'boom\'>"> %p;]>'
                                      b"<a>&e;</a>"),
        "doctype-without-entities": b"<!DOCTYPE a><a/>",
        "doctype-with-empty-subset": b"<?xml version='1.0'?><!DOCTYPE a []><a>x</a>",
        "unparsed-entity": (f'<!DOCTYPE a [<!NOTATION n SYSTEM "x"><!ENTITY u SYSTEM "{url}" '
                            'NDATA n>]><a/>').encode(),
    }


def test_xml_refuses_every_doctype_vector_with_value_error(secret_file: Path,
                                                           tmp_path: Path) -> None:
    for name, document in _safety_vectors(secret_file, tmp_path).items():
        for attempt in (XML.decode, XML.encode, lambda d: XML.encode(d.decode("utf-8"))):
            with pytest.raises(ValueError) as info:
                attempt(document)
            assert type(info.value) is ValueError, name
            assert str(info.value) == ("the xml codec refuses a DOCTYPE (no DTD, no entity "
                                       "declarations)"), name
            assert "TOP-SECRET" not in str(info.value)


def test_xml_refuses_entities_that_were_never_declared(secret_file: Path) -> None:
    with pytest.raises(ValueError, match="undefined entity"):
        XML.decode(b"<a>&xxe;</a>")
    with pytest.raises(ValueError, match="undefined entity"):
        XML.decode(b'<a v="&nbsp;"/>')


def test_xml_does_not_process_xinclude(secret_file: Path) -> None:
    document = (f'<a xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include '
                f'href="{secret_file.as_uri()}" parse="text"/></a>').encode()
    element = XML.decode(document)
    assert "TOP-SECRET" not in ET.tostring(element, encoding="unicode")
    assert element[0].tag == "{http://www.w3.org/2001/XInclude}include"


XML_UNDECODABLE = {
    "empty": (b"", "no element found"),
    "text-only": (b"just text", "syntax error"),
    "unclosed": (b"<a><b></a>", "mismatched tag"),
    "two-roots": (b"<a/><b/>", "junk after document element"),
    "text-after-root": (b"<a/>tail", "junk after document element"),
    "unbound-prefix": (b"<p:a/>", "unbound prefix"),
    "duplicate-attribute": (b'<a x="1" x="2"/>', "duplicate attribute"),
    "invalid-utf8": (b"<a>\xff</a>", "not well-formed"),
    "utf8-surrogate": (b"<a>\xed\xa0\x80</a>", "not well-formed"),
    "latin1-bytes": ("<a>é</a>".encode("latin-1"), "not well-formed"),
    "nul": (b"<a>\x00</a>", "not well-formed"),
    "control-reference": (b"<a>&#1;</a>", "reference to invalid character number"),
    "declaration-not-first": (b' <?xml version="1.0"?><a/>', "XML or text declaration"),
}


@pytest.mark.parametrize("document, detail", XML_UNDECODABLE.values(),
                         ids=XML_UNDECODABLE.keys())
def test_xml_refuses_documents_that_are_not_well_formed(document: bytes, detail: str) -> None:
    with pytest.raises(ValueError) as info:
        XML.decode(document)
    assert type(info.value) is ValueError
    assert str(info.value).startswith("the payload is not a well-formed XML document: ")
    assert detail in str(info.value)


@pytest.mark.parametrize("encoding", ["ISO-8859-1", "UTF-16", "windows-1252", "GBK"])
def test_xml_refuses_a_declaration_naming_another_encoding_than_utf8(encoding: str) -> None:
    with pytest.raises(ValueError, match="the xml codec carries UTF-8 documents only"):
        XML.decode(f'<?xml version="1.0" encoding="{encoding}"?><a/>'.encode())


def test_xml_decode_of_any_bytes_is_an_element_or_a_value_error() -> None:
    rng = random.Random(3)
    seeds = list(XML_DOCUMENTS.values())[:-1] + [b"<!DOCTYPE a><a/>"]
    accepted = 0
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 3)):
            at = rng.randrange(len(data) + 1)
            if rng.random() < 0.5 and data:
                del data[at:at + rng.randrange(1, 3)]
            else:
                data[at:at] = bytes([rng.choice(b"<>&;/=\"'!?[]x\x00\xff#")])
        try:
            element = XML.decode(bytes(data))
        except ValueError as exc:
            assert type(exc) is ValueError
            continue
        accepted += 1
        assert isinstance(element, ET.Element)
    assert accepted > 0  # the mutations leave some documents whole: both verdicts are exercised


XML_UNENCODABLE_TYPES: dict[str, tuple[object, str]] = {
    "int": (5, "int"), "none": (None, "NoneType"), "dict": ({}, "dict"),
    "list": ([ET.Element("a")], "list"),
}


@pytest.mark.parametrize("value, type_name", XML_UNENCODABLE_TYPES.values(),
                         ids=XML_UNENCODABLE_TYPES.keys())
def test_xml_refuses_values_that_are_not_elements_or_documents(value: object,
                                                               type_name: str) -> None:
    with pytest.raises(TypeError) as info:
        XML.encode(value)
    assert str(info.value) == ("the xml codec carries an xml.etree.ElementTree.Element or an XML "
                               f"document (str or bytes), not {type_name}")


def test_xml_refuses_elements_and_strings_that_do_not_make_a_document() -> None:
    with_int_text = ET.Element("a")
    with_int_text.text = 5  # type: ignore[assignment]
    with pytest.raises(TypeError):
        XML.encode(with_int_text)
    with_nul = ET.Element("a")
    with_nul.text = "x\x00y"
    with pytest.raises(ValueError, match="not well-formed"):
        XML.encode(with_nul)
    with pytest.raises(ValueError, match="not well-formed"):
        XML.encode(ET.Element("bad name"))
    with pytest.raises(ValueError, match="no element found"):
        XML.encode(ET.Comment("only a comment"))
    with pytest.raises(ValueError, match="mismatched tag"):
        XML.encode("<a></b>")
    with pytest.raises(ValueError, match="lone surrogate"):
        XML.encode("<a>\ud800</a>")


# --- the registry --------------------------------------------------------------------------

def test_the_codecs_are_the_ones_the_protocol_names() -> None:
    assert set(CODECS) == frames.CODECS
    for name, found in CODECS.items():
        assert found.name == name
        assert codec(name) is found
    assert (CODECS["json"], CODECS["bytes"], CODECS["xml"]) == (JSON, BYTES, XML)
    assert (type(JSON), type(BYTES), type(XML)) == (JsonCodec, BytesCodec, XmlCodec)
    with pytest.raises(TypeError):
        CODECS["extra"] = JSON  # type: ignore[index]


def test_codecs_keep_no_per_instance_state() -> None:
    # Slotted and stateless: one shared instance per codec serves every connection.
    for found in CODECS.values():
        assert not hasattr(found, "__dict__")


@pytest.mark.parametrize("name", ["msgpack", "JSON", "json ", "", "x" * 300])
def test_an_unknown_codec_name_is_a_value_error_listing_the_known_ones(name: str) -> None:
    with pytest.raises(ValueError) as info:
        codec(name)
    assert str(info.value) == f"unknown codec {name[:64]!r} (known: bytes, json, xml)"


@pytest.mark.parametrize("name", [None, 1, ["json"], {"json": 1}], ids=["none", "int", "list",
                                                                         "dict"])
def test_a_codec_name_that_is_not_a_str_is_a_type_error(name: object) -> None:
    with pytest.raises(TypeError, match="a codec name is a str, not"):
        codec(name)  # type: ignore[arg-type]


def test_an_application_codec_satisfies_the_protocol_by_shape() -> None:
    class Upper:
        name = "upper"

        def encode(self, value: object) -> bytes:
            if not isinstance(value, str):
                raise TypeError("upper carries str")
            return value.upper().encode()

        def decode(self, data: bytes) -> object:
            return data.decode("ascii", "strict")

    custom: Codec = Upper()
    assert for_frame(custom, "abc", FRAMING_BINARY) == b"ABC"


# --- pack / unpack -------------------------------------------------------------------------

PACK_VALUES: dict[str, tuple[object, int]] = {
    "none": (None, ord("j")),
    "true": (True, ord("j")),
    "int": (U64_MAX, ord("j")),
    "float": (-2.5, ord("j")),
    "str": ("héllo ✓ 😀", ord("j")),
    "empty-str": ("", ord("j")),
    "list": ([1, "a", None, [2.5]], ord("j")),
    "dict": ({"from": "Xq2", "text": "hi", "n": {"k": [True]}}, ord("j")),
    "large-dict": ({f"k{i}": i for i in range(20_000)}, ord("j")),
    "bytes": (bytes(range(256)), ord("b")),
    "empty-bytes": (b"", ord("b")),
    "bytearray": (bytearray(b"\x00mutable"), ord("b")),
    "memoryview": (memoryview(b"view!")[1:], ord("b")),
    "large-bytes": (b"\xff" * MIB, ord("b")),
}


@pytest.mark.parametrize("value, tag", PACK_VALUES.values(), ids=PACK_VALUES.keys())
def test_pack_tags_the_value_and_unpack_gives_an_equal_one(value: object, tag: int) -> None:
    data = pack(value)
    assert type(data) is bytes
    assert data[0] == tag
    back = unpack(data)
    assert back == value
    if tag == ord("b"):
        assert type(back) is bytes
        assert data[1:] == value
    else:
        assert data[1:] == orjson.dumps(value)


def test_pack_carries_an_element_as_its_xml() -> None:
    element = XML.decode(XML_DOCUMENTS["attributes-text-children-tails"])
    element.tail = "the parent's"
    data = pack(element)
    assert data.startswith(b"x<order ")
    back = unpack(data)
    assert isinstance(back, ET.Element)
    assert shape(back) == shape(element)


def test_pack_treats_subclasses_as_their_base() -> None:
    class Tagged(bytes):
        pass

    class Payload(dict):  # type: ignore[type-arg]
        pass

    assert unpack(pack(Tagged(b"ab"))) == b"ab"
    assert pack(Payload(a=1)) == b'j{"a":1}'
    assert unpack(pack((1, 2))) == [1, 2]  # JSON has arrays, not tuples


def test_unpack_reads_any_buffer() -> None:
    for value in (b"raw", {"a": [1]}):
        data = pack(value)
        assert unpack(bytearray(data)) == value
        assert unpack(memoryview(data)) == value


@pytest.mark.parametrize("value, type_name",
                         [({1: 2}, "dict"), ({"s": {1}}, "dict"), (object(), "object"),
                          (1 << 64, "int")], ids=["int-key", "nested-set", "object", "big-int"])
def test_pack_refuses_at_the_publisher_what_json_cannot_carry(value: object,
                                                              type_name: str) -> None:
    with pytest.raises(TypeError, match=f"the json codec cannot encode this {type_name}"):
        pack(value)


def test_pack_refuses_an_element_that_is_no_document() -> None:
    with pytest.raises(ValueError):
        pack(ET.Element("bad name"))


@pytest.mark.parametrize("data, message", [
    (b"", "an empty envelope value"),
    (b"?{}", "unknown envelope value tag 0x3f"),
    (b"\x00", "unknown envelope value tag 0x00"),
    (b"j{", "the payload is not valid JSON"),
    (b"x<a>", "the payload is not a well-formed XML document"),
    (b"x<!DOCTYPE a><a/>", "the xml codec refuses a DOCTYPE"),
], ids=["empty", "unknown-tag", "nul-tag", "bad-json", "bad-xml", "xml-doctype"])
def test_unpack_refuses_what_pack_did_not_make(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        unpack(data)


# --- for_frame -----------------------------------------------------------------------------

FRAME_VALUES = {
    "json": (JSON, {"room": "a", "text": "hi ✓"}),
    "json-null": (JSON, None),
    "bytes": (BYTES, b"\x00\x01raw\xff"),
    "bytes-empty": (BYTES, b""),
    "xml": (XML, ET.fromstring('<m to="b">hi ✓</m>')),
}


@pytest.mark.parametrize("framing", BINARY_FRAMINGS.values(), ids=BINARY_FRAMINGS.keys())
@pytest.mark.parametrize("chosen, value", FRAME_VALUES.values(), ids=FRAME_VALUES.keys())
def test_for_frame_in_binary_framings_is_the_codec_bytes_and_a_client_decodes_the_value(
        chosen: Codec, value: object, framing: int) -> None:
    payload = for_frame(chosen, value, framing)
    assert payload == chosen.encode(value)
    for wire in (encode(KIND_PUSH, 3, "room:a", payload, FLAG_ACK_REQUESTED, framing),
                 PushTemplate("room:a", payload, FLAG_ACK_REQUESTED, framing).frame(3),
                 encode(KIND_REPLY, 9, "", payload, 0, framing)):
        (frame,) = FrameDecoder(MIB, framing, client=True).feed(wire)
        assert isinstance(frame, Frame)
        assert type(frame.payload) is bytes
        got = chosen.decode(frame.payload)
        if isinstance(value, ET.Element):
            assert isinstance(got, ET.Element)
            assert shape(got) == shape(value)
        else:
            assert got == value


@pytest.mark.parametrize("framing", JSON_FRAMINGS.values(), ids=JSON_FRAMINGS.keys())
def test_for_frame_in_json_framings_is_the_value_itself(framing: int) -> None:
    rng = random.Random(5)
    for _ in range(200):
        value = random_json(rng)
        payload = for_frame(JSON, value, framing)
        assert payload is value
        (frame,) = FrameDecoder(MIB, framing, client=True).feed(
            PushTemplate("g", payload, 0, framing).frame(1))
        assert isinstance(frame, Frame)
        assert frame.payload == value


@pytest.mark.parametrize("framing", ALL_FRAMINGS.values(), ids=ALL_FRAMINGS.keys())
def test_for_frame_refuses_a_value_json_cannot_carry_with_the_codec_message(framing: int) -> None:
    with pytest.raises(TypeError, match="the json codec cannot encode this set"):
        for_frame(JSON, {1, 2}, framing)


@pytest.mark.parametrize("framing", JSON_FRAMINGS.values(), ids=JSON_FRAMINGS.keys())
@pytest.mark.parametrize("chosen", [BYTES, XML], ids=["bytes", "xml"])
def test_for_frame_refuses_another_codec_than_json_in_json_framings(chosen: Codec,
                                                                    framing: int) -> None:
    with pytest.raises(ValueError, match=f"carry JSON only, not the {chosen.name} codec"):
        for_frame(chosen, b"x", framing)


@pytest.mark.parametrize("framing", [FRAMING_AUTO, -1, 99], ids=["auto", "negative", "99"])
def test_for_frame_refuses_a_framing_that_frames_nothing(framing: int) -> None:
    with pytest.raises(ValueError, match=f"unknown framing {framing}"):
        for_frame(JSON, 1, framing)


def test_for_frame_binary_refusals_are_the_codecs() -> None:
    with pytest.raises(TypeError, match="use the json codec for text"):
        for_frame(BYTES, "text", FRAMING_WS_BINARY)
    with pytest.raises(ValueError, match="refuses a DOCTYPE"):
        for_frame(XML, "<!DOCTYPE a><a/>", FRAMING_BINARY)
