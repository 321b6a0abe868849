"""The seed spellings of cyserve.compat, Request and Job, without sockets (docs/migrating.md)."""
from __future__ import annotations

import datetime
import zlib

import pytest

from cyserve import errors
from cyserve.compat import (
    BadRequestError,
    ForbiddenError,
    HttpError,
    InternalServerError,
    MethodNotAllowedError,
    NotFoundError,
    Prepared,
    UnauthorizedError,
    create_empty_response,
    create_error_response,
    create_file_response,
    http_middleware,
)
from cyserve.lifecycle import Job, cron_from_fields
from cyserve.request import Request, State


class FakeConn:
    """The connection API Prepared uses, recorded."""

    def __init__(self) -> None:
        self.started = None
        self.chunks: list[bytes] = []
        self.ended = False

    def start_stream(self, status, fields, content_type, content_length):
        self.started = (status, fields, content_type, content_length)

    def write(self, data):
        self.chunks.append(bytes(data))
        return _Done()

    def drain(self):
        return _Done()

    def end_stream(self):
        self.ended = True


class _Done:
    def __await__(self):
        return iter(())


def run_sync(coro):
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the coroutine suspended")


# ---------------------------------------------------------------- request.state
def test_state_entries_are_items_and_attributes():
    state = State()
    state.user = "ada"
    state["role"] = "admin"
    assert state["user"] == "ada" and state.role == "admin" and isinstance(state, dict)
    assert state.get("missing") is None and dict(state) == {"user": "ada", "role": "admin"}
    del state.user
    assert "user" not in state
    with pytest.raises(AttributeError):
        state.user
    with pytest.raises(AttributeError):
        del state.user
    with pytest.raises(AttributeError, match="dict method"):
        state.items = [1]  # would hide dict.items: refused, the item still works
    state["items"] = [1]
    assert state["items"] == [1]


def test_request_state_is_made_on_first_use_only():
    request = Request(FakeConn(), object(), b"")
    assert not hasattr(request, "_state")
    request.state.user = "ada"
    assert request.state is request.state and request.state["user"] == "ada"
    request.state = {"fresh": 1}
    assert type(request.state) is State and request.state.fresh == 1


def test_bg_add_queues_a_background_call():
    request = Request(FakeConn(), object(), b"")
    request.bg.add(print, "a", sep="-")
    assert request._background == [(print, ("a",), {"sep": "-"})]


# ---------------------------------------------------------------- Blazeio: Prepared
def test_prepare_headers_choose_the_framing():
    conn = FakeConn()
    Prepared(conn, {"Content-type": "text/plain", "Content-length": 5, "X-N": 1}, 201)
    assert conn.started == (201, [("X-N", "1")], "text/plain", 5)
    conn = FakeConn()
    Prepared(conn, [("Transfer-encoding", "chunked"), ("Content-Length", "5")])
    assert conn.started == (200, [], None, -1)  # chunked wins, as in Blazeio; cyserve frames it
    for bad in ("+5", " 5", "1_0", "-1", "５"):
        with pytest.raises(ValueError):
            Prepared(FakeConn(), {"Content-Length": bad})


def test_prepare_compresses_with_one_encoder_and_finishes_once():
    conn = FakeConn()
    prepared = Prepared(conn, {"Content-Encoding": "gzip", "Content-Length": 10})
    assert conn.started[3] == -1 and ("Content-Encoding", "gzip") in conn.started[1]
    prepared.write("hello ")
    prepared.write(b"world")
    run_sync(prepared.send(conn))
    run_sync(prepared.finish())
    assert conn.ended
    decoder = zlib.decompressobj(31)
    assert decoder.decompress(b"".join(conn.chunks)) == b"hello world" and decoder.eof
    with pytest.raises(RuntimeError):
        prepared.write(b"late")
    plain = FakeConn()
    Prepared(plain, {"Content-Encoding": "gzip"}, encode_resp=False).write(b"raw")
    assert plain.chunks == [b"raw"]  # encode_resp=False: the handler compressed it


def test_prepare_event_stream_frames_each_write():
    conn = FakeConn()
    prepared = Prepared(conn, {"Content-Type": "text/event-stream; charset=utf-8"})
    prepared.write({"a": [1]})
    prepared.write(b"x\ny")
    assert conn.chunks == [b'data: {"a":[1]}\n\n', b"data: x\ndata: y\n\n"]
    raw = FakeConn()
    Prepared(raw, {"Content-Type": "text/event-stream"}, encode_event_stream=False).write("data: z\n\n")
    assert raw.chunks == [b"data: z\n\n"]


def test_request_write_and_eof_need_prepare_first():
    request = Request(FakeConn(), object(), b"")
    with pytest.raises(RuntimeError):
        request.write(b"x")
    with pytest.raises(RuntimeError):
        run_sync(request.eof())
    run_sync(request.prepare({"Content-Type": "text/plain"}))
    with pytest.raises(RuntimeError):
        run_sync(request.prepare())


# ---------------------------------------------------------------- Areion
def test_areion_error_classes():
    cases = [(BadRequestError, 400, errors.BadRequest), (UnauthorizedError, 401, errors.Unauthorized),
             (ForbiddenError, 403, errors.Forbidden), (NotFoundError, 404, errors.NotFound),
             (MethodNotAllowedError, 405, errors.MethodNotAllowed),
             (InternalServerError, 500, errors.InternalServerError)]
    for cls, status, cyserve_cls in cases:
        exc = cls()
        assert isinstance(exc, HttpError) and isinstance(exc, cyserve_cls)
        assert exc.status == exc.status_code == status and exc.detail is None
    assert NotFoundError("no user").message == "no user"
    assert UnauthorizedError().message == "Unauthorized"
    generic = HttpError("taken", 409)
    assert (generic.status, generic.message) == (409, "taken")
    assert HttpError().status_code == 500 and HttpError(status_code=418).message == "I'm a Teapot"
    assert ForbiddenError(headers={"X": "1"}).headers == [("X", "1")]


def test_areion_response_helpers():
    empty = create_empty_response()
    assert (empty.status, empty.body, empty.content_type) == (204, b"", None)
    error = create_error_response(404)
    assert (error.status, error.body) == (404, b"Not Found")
    with pytest.raises(ValueError):
        create_error_response(302, "not an error")
    download = create_file_response("/etc/hostname", 200)
    assert download.filename == "hostname" and download.content_disposition_type == "attachment"


@pytest.mark.parametrize("fields, expression", [
    ({"minute": "*/5"}, "*/5 * * * * 0"),
    ({"hour": 3}, "0 3 * * * 0"),
    ({"minute": 30, "hour": "9-17"}, "30 9-17 * * * 0"),
    ({"day": 1}, "0 0 1 * * 0"),
    ({"month": "6", "day": 15}, "0 0 15 6 * 0"),
    ({"second": "*/10"}, "* * * * * */10"),
    ({"year": 2030}, "0 0 1 1 * 0 2030"),
], ids=["minute-step", "hour", "minute-and-hour-range", "day", "month-and-day", "second-step",
        "year"])
def test_cron_dict_reads_as_apscheduler_did(fields, expression):
    assert cron_from_fields(fields) == expression
    assert Job(fields, print).cron == expression


@pytest.mark.parametrize("fields", [{}, {"day_of_week": "mon"}, {"week": 1}, {"minute": "1 2"},
                                    {"minute": 99}, {"hour": ""}],
                         ids=["empty", "day-of-week", "week", "whitespace", "out-of-range", "blank"])
def test_cron_dict_rejects_what_areion_did_not_take(fields):
    with pytest.raises(ValueError):
        cron_from_fields(fields)


def test_cron_dict_job_waits_for_the_next_match():
    job = Job({"minute": 5}, print)
    now = datetime.datetime(2030, 1, 1, 10, 4, 30).astimezone()
    assert job.next_delay_s(now) == 30.0


# ---------------------------------------------------------------- AstraAPI
def test_http_middleware_needs_an_async_function():
    with pytest.raises(TypeError):
        http_middleware(lambda request, call_next: None)
