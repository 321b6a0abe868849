"""The pytest plugin as a user project meets it: registered by the ``pytest11`` entry point
``cyserve`` (each project here runs in a pytest subprocess), the app named by a ``cyserve_app``
fixture, nothing imported or started for a project that does not use it."""
from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CONFTEST = '''
import contextlib
import pytest
from cyserve import App

LOG = []

@pytest.fixture
def cyserve_app():
    @contextlib.asynccontextmanager
    async def lifespan(app):
        LOG.append("startup")
        yield
        LOG.append("shutdown")

    app = App(lifespan=lifespan)

    @app.get("/")
    async def index(request):
        return {"ok": True}

    return app
'''

TESTS = '''
import asyncio
import urllib.request
from conftest import LOG

def test_sync_client(cyserve_client):
    assert LOG == []                               # started by the first request
    assert cyserve_client.get("/").json() == {"ok": True}
    assert LOG == ["startup"]

def test_lifespan_of_the_previous_test_ended():
    assert LOG == ["startup", "shutdown"]

def test_url(cyserve_url):
    with urllib.request.urlopen(cyserve_url + "/", timeout=10) as resp:
        assert resp.read() == b'{"ok":true}'

def test_async_client_in_a_loop_of_its_own(cyserve_async_client):
    async def main():
        resp = await cyserve_async_client.get("/")
        return resp.status_code, await resp.json()
    assert asyncio.run(main()) == (200, {"ok": True})     # its loop is closed before teardown
'''

ARGS = ("-W", "error", "-p", "no:cacheprovider", "-q")


def test_plugin_is_loaded_by_its_entry_point_and_serves_the_projects_app(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest_subprocess(*ARGS)
    result.assert_outcomes(passed=4)


def test_plugin_can_be_turned_off_by_its_entry_point_name(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest_subprocess(*ARGS, "-p", "no:cyserve", "-k", "test_sync_client")
    result.assert_outcomes(errors=1, deselected=3)
    result.stdout.fnmatch_lines(["*fixture 'cyserve_client' not found*"])


def test_async_client_fixture_under_anyio(pytester):
    pytest.importorskip("anyio")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_anyio='''
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "asyncio"                       # cyserve.Client runs on asyncio loops

        @pytest.mark.anyio
        async def test_async_client(cyserve_async_client):
            resp = await cyserve_async_client.get("/")
            assert resp.status_code == 200 and await resp.json() == {"ok": True}
    ''')
    result = pytester.runpytest_subprocess(*ARGS)
    result.assert_outcomes(passed=1)


def test_missing_app_fixture_fails_with_a_hint(pytester):
    pytester.makepyfile(test_app='''
        def test_needs_an_app(cyserve_client):
            pass
    ''')
    result = pytester.runpytest_subprocess(*ARGS)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*define a `cyserve_app` fixture*"])


def test_project_not_using_the_fixtures_imports_no_cyserve(pytester):
    pytester.makepyfile(test_plain='''
        import sys

        def test_nothing_of_cyserve_was_imported():
            assert [m for m in sys.modules if m.split(".")[0] == "cyserve"] == []
            assert "cyserve_pytest" in sys.modules     # the plugin itself is loaded
    ''')
    result = pytester.runpytest_subprocess(*ARGS)
    result.assert_outcomes(passed=1)
