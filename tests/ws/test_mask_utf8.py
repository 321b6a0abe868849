"""The frame codec's two byte-level tools on their own: masking (RFC 6455 §5.3) against the
definition, at every key offset and length around the word sizes; the UTF-8 automaton against
CPython's strict decoder on random and crafted input."""
from __future__ import annotations

import random

import pytest

from cyserve._core.ws import mask, utf8


def naive_mask(data: bytes, key: bytes, offset: int) -> bytes:
    return bytes(b ^ key[(offset + i) % 4] for i, b in enumerate(data))


@pytest.mark.parametrize("offset", range(4))
def test_mask_matches_the_definition_at_every_offset_and_length(offset: int) -> None:
    rng = random.Random(offset)
    key = bytes(rng.randrange(256) for _ in range(4))
    for n in list(range(0, 70)) + [255, 256, 257, 4099]:
        data = rng.randbytes(n)
        masked = mask.mask(data, key, offset)
        assert masked == naive_mask(data, key, offset)
        assert mask.mask(masked, key, offset) == data  # its own inverse


def test_mask_refuses_a_key_that_is_not_four_bytes() -> None:
    with pytest.raises(ValueError):
        mask.mask(b"x", b"abc")


def test_keys_are_fresh() -> None:
    keys = {mask.new_key() for _ in range(3000)}  # crosses the 4 KiB pool boundary
    assert len(keys) > 2990 and all(len(k) == 4 for k in keys)


def valid(data: bytes) -> bool:
    try:
        data.decode("utf-8", "strict")
    except UnicodeDecodeError:
        return False
    return True


def test_utf8_verdict_matches_cpython_on_random_text_in_pieces() -> None:
    rng = random.Random(7)
    alphabet = [b"a", "é".encode(), "€".encode(), "😀".encode(), b"\xed\xa0\x80", b"\xc0\xaf",
                b"\xf4\x90\x80\x80", b"\x80", b"\xff"]
    for _ in range(2000):
        data = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 12)))
        cut = rng.randrange(len(data) + 1)
        state = utf8.scan(data[cut:], utf8.scan(data[:cut]))
        assert (state == utf8.ACCEPT) == valid(data), data
        assert (state == utf8.REJECT) == (not valid(data) and not _valid_prefix(data)), data


def _valid_prefix(data: bytes) -> bool:
    """Whether some continuation could still make ``data`` valid text."""
    for extra in (b"", b"\x80", b"\x80\x80", b"\x80\x80\x80", b"\x90\x80\x80", b"\xa0\x80", b"\x8f\x80\x80"):
        if valid(data + extra):
            return True
    return False


def test_utf8_rejects_on_the_first_impossible_byte() -> None:
    assert utf8.scan(b"ok\xed") not in (utf8.ACCEPT, utf8.REJECT)  # a surrogate may still not follow
    assert utf8.scan(b"ok\xed\xa0") == utf8.REJECT                 # it does: U+D800
    assert utf8.scan(b"\xe0\x80") == utf8.REJECT                   # overlong, at its second byte
    assert utf8.scan(b"\xf4\x90") == utf8.REJECT                   # past U+10FFFF
    assert utf8.scan(b"") == utf8.ACCEPT
