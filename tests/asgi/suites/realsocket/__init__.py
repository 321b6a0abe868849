"""What the suites' subprocess imports: the real-socket TestClient, the served-app thread, and
the pytest plugins that point Starlette's and uvicorn's tests at a real cyserve server.

This package is put on the subprocess's ``PYTHONPATH`` by ``tests/asgi/suites/runner.py``;
nothing in the cyserve test run imports it directly except the runner's own checks."""
