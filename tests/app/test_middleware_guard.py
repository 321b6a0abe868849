"""compose(..., guard): what an inner middleware raises reaches the one outside it through the
guard; the outermost layer is left to the caller (the App's ``handle``), so one middleware costs
no guard."""
from __future__ import annotations

import pytest

from cyserve import Response
from cyserve.middleware import after, compose


async def endpoint(request):
    return Response("ok")


def answering(guarded: list[str]):
    """A guard that turns what its handler raises into a 500 and records where it stood."""
    def guard(handler):
        async def call(request):
            try:
                return await handler(request)
            except RuntimeError as exc:
                guarded.append(str(exc))
                return Response("mapped", 500)
        return call
    return guard


def failing(label: str):
    def middleware(handler):
        async def call(request):
            if request == label:
                raise RuntimeError(label)
            response = await handler(request)
            response.headers.append(("X-Seen-By", label))
            return response
        return call
    return middleware


def test_guard_wraps_every_layer_but_the_outermost(run):
    guarded: list[str] = []
    chain = compose([failing("outer"), failing("middle"), failing("inner")], endpoint, answering(guarded))
    # The inner layer's error is a response to the two outside it.
    response = run(lambda: chain("inner"))
    assert response.status == 500 and response.headers == [("X-Seen-By", "middle"), ("X-Seen-By", "outer")]
    response = run(lambda: chain("middle"))
    assert response.status == 500 and response.headers == [("X-Seen-By", "outer")]
    with pytest.raises(RuntimeError):  # the outermost: the caller's to map
        run(lambda: chain("outer"))
    assert guarded == ["inner", "middle"]


def test_one_middleware_gets_no_guard(run):
    guarded: list[str] = []
    chain = compose([failing("only")], endpoint, answering(guarded))
    with pytest.raises(RuntimeError):
        run(lambda: chain("only"))
    assert guarded == []


def test_after_passes_none_and_keeps_the_error_when_its_hook_fails_too(run, caplog):
    seen = []

    def hook(request, response):
        seen.append(response)
        raise ValueError("the hook failed as well")

    async def boom(request):
        raise KeyError("the error in flight")

    with pytest.raises(KeyError):  # not replaced by the hook's ValueError
        run(lambda: compose([after(hook)], boom)(None))
    assert seen == [None] and "after hook" in caplog.text
