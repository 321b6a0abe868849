"""Suites nobody here wrote (Starlette's own tests, uvicorn's WebSocket and lifespan tests) run
against the cyserve ASGI adapter over real sockets (issue 12 §2)."""
