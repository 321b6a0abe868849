"""The route table both routed apps serve (50 routes), and what each answers.

- ``/plaintext`` (text) and ``/json`` (JSON): the same answers as bench/e2e's apps, so the
  harness's readiness probe and verify.check_server work unchanged;
- ``/static/page{i}``, i < 23: JSON ``{"page": i}``;
- ``/api/v1/res{i}/{id:int}``, i < 25: JSON ``{"res": i, "id": id}`` (a parametrised route).
Every response also carries ``X-Served-By: bench``, added by one global middleware.
"""
from __future__ import annotations

STATIC_PAGES = 23
PARAM_ROUTES = 25
MIDDLEWARE_HEADER = ("X-Served-By", "bench")
HELLO = b"Hello, World!"
MESSAGE = {"message": "Hello, World!"}

assert 2 + STATIC_PAGES + PARAM_ROUTES == 50
