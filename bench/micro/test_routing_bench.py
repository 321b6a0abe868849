"""Route resolution: cyserve's Router against Starlette's route list, same tables, one group each.

Run: ``python -m pytest bench/micro/test_routing_bench.py --benchmark-only`` (Starlette from
``pip install -e .[bench]``; its columns are skipped when it is missing).

- ``exact-50``: a static path in a 50-route table (half static, half parametrised), the cost
  routing adds to most requests; the floor is a bare dict look-up.  The test fails above 1 us.
- ``params-10`` / ``params-500``: a parametrised path (``/r{i}/{id:int}/items/{name}``, the
  middle route) in tables of 10 and 500 such routes.  cyserve walks a segment trie, so the two
  cost about the same; a route list (Starlette, Areion-less routers) grows with the table.
``test_param_resolution_does_not_grow_with_the_table`` checks the ratio without pytest-benchmark.
"""
from __future__ import annotations

import timeit

import pytest

from cyserve import Router


async def endpoint(request):  # never called: only resolution is measured
    return None


def table_50() -> Router:
    router = Router()
    for i in range(25):
        router.add(f"/static/page{i}", endpoint, ["GET"])
        router.add(f"/api/res{i}/{{id:int}}", endpoint, ["GET", "POST"])
    return router


def param_table(count: int) -> Router:
    router = Router()
    for i in range(count):
        router.add(f"/r{i}/{{id:int}}/items/{{name}}", endpoint, ["GET"])
    return router


def starlette_resolver(paths: list[str]):
    """Starlette's matching loop over the same templates: Route.matches per route, in order."""
    routing = pytest.importorskip("starlette.routing")
    routes = [routing.Route(path, endpoint, methods=["GET", "POST"]) for path in paths]

    def resolve(path: str):
        scope = {"type": "http", "path": path, "method": "GET", "root_path": ""}
        for route in routes:
            match, child = route.matches(scope)
            if match is routing.Match.FULL:
                return route, child["path_params"]
        raise LookupError(path)
    return resolve


def _starlette_template(path: str) -> str:
    return path.replace("{id:int}", "{id:int}")  # Starlette spells converters the same way


@pytest.mark.benchmark(group="exact-50")
def test_exact_cyserve(benchmark):
    resolve = table_50().resolve
    route, params = benchmark(resolve, "GET", "/static/page12")
    assert route.path == "/static/page12" and params == {}
    assert benchmark.stats["median"] < 1e-6, "exact-path routing must stay under 1 us"


@pytest.mark.benchmark(group="exact-50")
def test_exact_dict_floor(benchmark):
    table = {f"/static/page{i}": {"GET": endpoint} for i in range(25)}
    benchmark(lambda: table["/static/page12"]["GET"])


@pytest.mark.benchmark(group="exact-50")
def test_exact_starlette(benchmark):
    paths = [p for i in range(25) for p in (f"/static/page{i}", f"/api/res{i}/{{id:int}}")]
    resolve = starlette_resolver(paths)
    benchmark(resolve, "/static/page12")


@pytest.mark.parametrize("count", [10, 500])
def test_params_cyserve(benchmark, count):
    benchmark.group = f"params-{count}"
    resolve = param_table(count).resolve
    route, params = benchmark(resolve, "GET", f"/r{count // 2}/42/items/hat")
    assert params == {"id": 42, "name": "hat"}


@pytest.mark.parametrize("count", [10, 500])
def test_params_starlette(benchmark, count):
    benchmark.group = f"params-{count}"
    resolve = starlette_resolver([f"/r{i}/{{id:int}}/items/{{name}}" for i in range(count)])
    benchmark(resolve, f"/r{count // 2}/42/items/hat")


def _per_call_s(router: Router, path: str, number: int = 20000) -> float:
    resolve = router.resolve
    return min(timeit.repeat(lambda: resolve("GET", path), number=number, repeat=5)) / number


def test_param_resolution_does_not_grow_with_the_table():
    small = _per_call_s(param_table(10), "/r5/42/items/hat")
    large = _per_call_s(param_table(500), "/r250/42/items/hat")
    print(f"\nparam route: 10 routes {small * 1e6:.2f} us, 500 routes {large * 1e6:.2f} us")
    assert large < 2 * small, "resolution must not grow linearly with the number of routes"
