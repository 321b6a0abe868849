"""The suites' harness: the real-socket TestClient (``client``), the served-app thread
(``server``), and the pytest plugins that point Starlette's and uvicorn's tests at a real cyserve
server (``starlette_plugin``, ``uvicorn_plugin``, ``report``).

The runner puts ``tests/asgi/suites`` on the subprocess's ``PYTHONPATH`` so the plugins load as
``realsocket.*``; ``test_realsocket.py`` imports the client directly to test it."""
