"""The head parser against the reference parsers: httptools (llhttp) and h11 must reach the same
accept/reject verdict on every vector, except where ``parser_differences.py`` lists an intended
difference (with its RFC reason); and every listed difference must really be one."""
from __future__ import annotations

import pytest

from tests.vectors.parser_differences import DIFFERENCES, Difference, explain, h11_rejects, httptools_rejects
from tests.vectors.parser_vectors import VECTORS, Vector, parse_in_pieces

PEERS = {
    "httptools": lambda raw, mode, head_request: httptools_rejects(raw, mode),
    "h11": h11_rejects,
}

PLAIN_HEADS = [
    ("request", b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n"),
    ("request", b"POST /f HTTP/1.1\r\nHost: a:8080\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"),
    ("request", b"PUT /f HTTP/1.1\r\nHost: [::1]\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("request", b"GET / HTTP/1.0\r\nUser-Agent: x\r\n\r\n"),
    ("response", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nServer: x\r\n\r\n"),
    ("response", b"HTTP/1.1 404 \r\nTransfer-Encoding: chunked\r\n\r\n"),
]


def _cyserve_rejects(vector: Vector) -> bool:
    return parse_in_pieces(vector.raw, mode=vector.mode, limits=vector.limits,
               head_request=vector.head_request).status is not None


@pytest.mark.parametrize("peer", sorted(PEERS))
@pytest.mark.parametrize("vector", VECTORS, ids=[v.id for v in VECTORS])
def test_parser_agrees_with_reference_parser_except_listed_differences(vector: Vector, peer: str) -> None:
    ours = _cyserve_rejects(vector)
    theirs = PEERS[peer](vector.raw, vector.mode, vector.head_request)
    if ours != theirs:
        diff = explain(vector.raw, vector.mode, peer, ours, vector.limits)
        assert diff is not None, (
            f"cyserve {'rejects' if ours else 'accepts'} but {peer} does not, and no listed "
            f"difference explains it: {vector.raw!r}")


@pytest.mark.parametrize("diff", DIFFERENCES, ids=[d.id for d in DIFFERENCES])
def test_each_listed_difference_is_real(diff: Difference) -> None:
    assert diff.cyserve in ("accept", "reject") and diff.reason and diff.examples
    assert "RFC" in diff.reason
    for raw in diff.examples:
        mode = "response" if raw.lstrip(b"\r\n").startswith(b"HTTP/") else "request"
        assert mode in diff.modes
        ours = parse_in_pieces(raw, mode=mode).status is not None
        assert ours == (diff.cyserve == "reject"), raw
        assert diff.applies(raw, mode, {}), raw
        for peer in diff.peers:
            assert PEERS[peer](raw, mode, False) != ours, f"{peer} agrees with cyserve on {raw!r}"


def test_differences_are_listed_once() -> None:
    ids = [d.id for d in DIFFERENCES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("mode, raw", PLAIN_HEADS)
def test_no_difference_applies_to_a_plain_head(mode: str, raw: bytes) -> None:
    """The classifiers are narrow: they do not excuse ordinary, valid heads."""
    assert parse_in_pieces(raw, mode=mode).status is None
    for diff in DIFFERENCES:
        if mode in diff.modes:
            assert not diff.applies(raw, mode, {}), diff.id
    for peer in PEERS:
        assert not PEERS[peer](raw, mode, False), peer
