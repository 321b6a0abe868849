"""uvicorn's own proxy-header test vectors, run against cyserve's resolver (``cyserve.proxy``).

uvicorn's source package ships ``tests/middleware/test_proxy_headers.py``.  It is not vendored:
the session fixture below downloads the source of the *installed* uvicorn with pip (once per
machine, cached under ``~/.cache/cyserve-test``), and the file is read with ``ast``, never
executed.  Its ``pytest.mark.parametrize`` tables become rows; what each test function does with
a row (the trusted hosts it passes to the middleware, the headers it sends, the peer address, what
it asserts) is read from the function's body by a small reader of the literal shapes the file
uses.  A test function that reader cannot understand fails here: a new uvicorn release that adds
vectors in a new shape needs a look, not a silent pass.

Every vector passes, or it is listed once in ``INTENDED_DIFFERENCES`` with what cyserve answers
instead and why.  uvicorn's answer is the text its test app writes, ``{scheme}://{host}:{port}``
of the ASGI scope; cyserve's is formatted the same way from ``resolve()``'s result (the peer's
address and the connection's scheme when the proxy headers resolve nothing).
"""
from __future__ import annotations

import ast
import importlib.metadata
import ipaddress
import os
import pathlib
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest

from cyserve.errors import BadRequest
from cyserve.proxy import TrustedPeers, resolve

VECTOR_FILE = "tests/middleware/test_proxy_headers.py"

# (uvicorn test function, the row's arguments but the expectation) -> (cyserve's answer, why).
INTENDED_DIFFERENCES: dict[tuple[str, tuple[Any, ...]], tuple[str, str]] = {
    ("test_proxy_headers_x_forwarded_for_port_shapes", ("1.2.3.4:notaport",)): (
        "https://127.0.0.1:123",
        "a hop that is not an address (here a port that is not digits) resolves no client: "
        "uvicorn makes '1.2.3.4:notaport' the client's host, so a string that is not an address "
        "reaches request.client, logs and rate-limit keys; the hop at that place was written by "
        "the trusted proxy, which never writes one, so the peer's address is the honest answer"),
    ("test_proxy_headers_x_forwarded_for_port_shapes", ("[2001:db8::1]:notaport",)): (
        "https://127.0.0.1:123",
        "same rule: a malformed hop is not read in part (uvicorn keeps the address and drops the "
        "port); one rule for every malformed hop, none half-believed"),
    ("test_proxy_headers_x_forwarded_for_port_shapes", ("[2001:db8::1]extra",)): (
        "https://127.0.0.1:123",
        "not an address (RFC 3986 §3.2.2 IP-literal followed by junk): no client, as above; "
        "uvicorn passes the string through as the client's host"),
    ("test_proxy_headers_x_forwarded_for_port_shapes", ("[2001:db8::1",)): (
        "https://127.0.0.1:123",
        "an unclosed IP-literal is not an address: no client, as above"),
}


# ----------------------------------------------------------------------------- obtaining the file
def _cache_dir() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    path = pathlib.Path(base) / "cyserve-test"
    path.mkdir(parents=True, exist_ok=True)
    return path


_NETWORK_TROUBLE = re.compile(
    r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|"
    r"Name or service not known|Network is unreachable|Connection refused|timed out|"
    r"ProxyError|No route to host", re.IGNORECASE)


@pytest.fixture(scope="session")
def uvicorn_vector_source() -> str:
    """The text of uvicorn's proxy-header tests from the source package of the installed
    version (downloaded once per machine)."""
    version = importlib.metadata.version("uvicorn")  # the test extra installs it
    cache = _cache_dir()
    archive = cache / f"uvicorn-{version}.tar.gz"
    if not archive.exists():
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                 "--disable-pip-version-check", f"uvicorn=={version}", "-d", str(cache)],
                capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.skip(f"no network: pip download uvicorn=={version} took over 300 s")
        if done.returncode != 0 or not archive.exists():
            output = done.stdout + done.stderr
            if _NETWORK_TROUBLE.search(output):
                pytest.skip(f"no network to download uvicorn=={version}'s source: "
                            f"{output.strip().splitlines()[-1]}")
            pytest.fail(f"pip download uvicorn=={version} failed:\n{output}")
    with tarfile.open(archive) as tar:
        member = tar.getmember(f"uvicorn-{version}/{VECTOR_FILE}")
        data = tar.extractfile(member)
        assert data is not None, member
        return data.read().decode("utf-8")


# --------------------------------------------------------------------------- reading the vectors
class Param:
    """A reference to a parametrised argument inside a test body, filled in per row."""

    def __init__(self, name: str) -> None:
        self.name = name


class Unreadable(Exception):
    """The vector file uses a shape this reader does not know."""


def value(node: ast.AST, env: dict[str, Any]) -> Any:
    """A literal expression, with module constants and parameters (``Param``) by name."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in env:
            raise Unreadable(f"unknown name {node.id!r} at line {node.lineno}")
        return env[node.id]
    if isinstance(node, ast.Tuple):
        return tuple(value(item, env) for item in node.elts)
    if isinstance(node, ast.List):
        return [value(item, env) for item in node.elts]
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise Unreadable(f"dict unpacking at line {node.lineno}")
        return {value(k, env): value(v, env) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -value(node.operand, env)
    raise Unreadable(f"{type(node).__name__} at line {getattr(node, 'lineno', '?')}")


def call_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute):
            return func.attr
    return None


@dataclass
class Vector:
    """One case: uvicorn's function, the row's arguments, and what the body makes of them."""

    function: str
    key: tuple[Any, ...]                 # the row's arguments but the expectation
    trusted: Any
    peer: tuple[str, int]
    headers: list[tuple[str, str]]
    websocket: bool
    expected_text: str | None = None     # "{scheme}://{host}:{port}"
    # What the body asserts of the scope the app saw: {"client": ..., "scheme": ...}, either.
    expected_scope: dict[str, Any] = field(default_factory=dict)
    membership: tuple[str, bool] | None = None  # test_forwarded_hosts: (host, trusted?)

    @property
    def id(self) -> str:
        return f"{self.function}{list(self.key)!r}"


def _module_env(tree: ast.Module) -> dict[str, Any]:
    env: dict[str, Any] = {"None": None}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else (
            node.target if isinstance(node, ast.AnnAssign) else None)
        if isinstance(target, ast.Name) and getattr(node, "value", None) is not None:
            try:
                env[target.id] = value(node.value, env)  # type: ignore[union-attr, arg-type]
            except Unreadable:
                continue  # not a constant (an app, a helper's result): no vector reads it
    return env


def _default_peer(tree: ast.Module, helper: str, parameter: str) -> tuple[str, int] | None:
    """A helper's default client address: ``make_httpx2_client(..., client=(host, port))`` or the
    ``"client"`` entry of the scope ``_make_http_scope`` returns."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == helper:
            args = node.args.args[len(node.args.args) - len(node.args.defaults):]
            for arg, default in zip(args, node.args.defaults):
                if arg.arg == parameter:
                    return tuple(value(default, {}))  # type: ignore[return-value]
            for sub in ast.walk(node):
                if isinstance(sub, ast.Dict):
                    for key, item in zip(sub.keys, sub.values):
                        if isinstance(key, ast.Constant) and key.value == parameter:
                            return tuple(value(item, {}))  # type: ignore[return-value]
    return None


def _parametrize(function: ast.FunctionDef | ast.AsyncFunctionDef, env: dict[str, Any]
                 ) -> tuple[list[str], list[tuple[Any, ...]]]:
    for decorator in function.decorator_list:
        if call_name(decorator) == "parametrize":
            assert isinstance(decorator, ast.Call)
            names = value(decorator.args[0], env)
            names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
            rows = []
            for row in value(decorator.args[1], env):
                rows.append(tuple(row) if len(names) > 1 else (row,))
            return names, rows
    return [], [()]


def _body_facts(function: ast.FunctionDef | ast.AsyncFunctionDef, env: dict[str, Any]
                ) -> dict[str, Any]:
    """What the body passes and asserts, as expressions still holding ``Param`` references."""
    facts: dict[str, Any] = {"conditional_headers": [], "scope": {}}
    for node in ast.walk(function):
        name = call_name(node)
        if name == "make_httpx2_client":
            facts["trusted"] = value(node.args[0], env)  # type: ignore[attr-defined]
            facts["helper"] = ("make_httpx2_client", "client")
        elif name == "ProxyHeadersMiddleware":
            for keyword in node.keywords:  # type: ignore[attr-defined]
                if keyword.arg == "trusted_hosts":
                    facts["trusted"] = value(keyword.value, env)
        elif name == "_make_http_scope":
            facts["headers"] = value(node.args[0], env)  # type: ignore[attr-defined]
            facts["helper"] = ("_make_http_scope", "client")
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id == "headers":
            source = node.value
            if isinstance(source, ast.Call):  # httpx2.Headers({...}, encoding="latin-1")
                source = source.args[0]
            facts["headers"] = value(source, env)
        elif isinstance(node, ast.If) and isinstance(node.test, ast.Compare) \
                and isinstance(node.test.ops[0], ast.IsNot):
            # if <param> is not None: headers[NAME] = <param>
            guard = value(node.test.left, env)
            for statement in node.body:
                if isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Subscript):
                    target = statement.targets[0]
                    facts["conditional_headers"].append(
                        (guard, value(target.slice, env), value(statement.value, env)))
        elif isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) \
                and isinstance(node.test.ops[0], ast.Eq):
            left, right = node.test.left, node.test.comparators[0]
            if isinstance(left, ast.Attribute) and left.attr == "text":
                facts["expected_text"] = value(right, env)
            elif isinstance(left, ast.Subscript) and isinstance(left.value, ast.Name) \
                    and left.value.id == "captured":
                facts["scope"][value(left.slice, env)] = value(right, env)
    if "websocket" in function.name:
        facts["websocket"] = True
    return facts


def _fill(item: Any, row: dict[str, Any]) -> Any:
    if isinstance(item, Param):
        return row[item.name]
    if isinstance(item, tuple):
        return tuple(_fill(x, row) for x in item)
    if isinstance(item, list):
        return [_fill(x, row) for x in item]
    if isinstance(item, dict):
        return {_fill(k, row): _fill(v, row) for k, v in item.items()}
    return item


def _frozen(item: Any) -> Any:
    """A row's argument as a dict key (lists become tuples)."""
    return tuple(_frozen(x) for x in item) if isinstance(item, (list, tuple)) else item


def _as_text(item: Any) -> str:
    return item.decode("latin-1") if isinstance(item, bytes) else item


def read_vectors(source: str) -> Iterator[Vector]:
    tree = ast.parse(source)
    env = _module_env(tree)
    for function in tree.body:
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                or not function.name.startswith("test_"):
            continue
        names, rows = _parametrize(function, env)
        local = dict(env, **{name: Param(name) for name in names})
        facts = _body_facts(function, local)
        for row_values in rows:
            row = dict(zip(names, row_values))
            key = tuple(_frozen(v) for n, v in row.items() if n != "expected")
            if names == ["init_hosts", "test_host", "expected"]:
                yield Vector(function.name, key, row["init_hosts"], ("", 0), [], False,
                             membership=(row["test_host"], row["expected"]))
                continue
            if "trusted" not in facts or "headers" not in facts:
                raise Unreadable(f"{function.name}: no trusted hosts or headers found in its body")
            filled = _fill(facts["headers"], row)
            pairs = list(filled.items()) if isinstance(filled, dict) else list(filled)
            for guard, name, item in facts["conditional_headers"]:
                if _fill(guard, row) is not None:
                    pairs.append((name, _fill(item, row)))
            helper = facts.get("helper")
            peer = (_default_peer(tree, *helper) if helper else None) or ("127.0.0.1", 0)
            expected_text = row.get("expected", facts.get("expected_text"))
            vector = Vector(function.name, key, _fill(facts["trusted"], row), peer,
                            [(_as_text(n), _as_text(v)) for n, v in pairs],
                            bool(facts.get("websocket")))
            if facts["scope"]:
                vector.expected_scope = _fill(facts["scope"], row)
            elif isinstance(expected_text, str):
                vector.expected_text = expected_text
            else:
                raise Unreadable(f"{function.name}: no expectation found")
            yield vector


# ------------------------------------------------------------------------------ running them
def _text(scheme: str, client: tuple[str, int]) -> str:
    host, port = client
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"{scheme}://{host}:{port}"


def cyserve_answer(vector: Vector) -> Any:
    """What cyserve makes of the vector, in the shape uvicorn's test asserts."""
    if vector.membership is not None:
        return vector.membership[0] in TrustedPeers(vector.trusted)
    try:
        found = resolve(vector.peer[0], vector.headers, TrustedPeers(vector.trusted))
    except BadRequest as exc:
        return f"400 {exc.detail}"
    client, scheme, _host = found if found is not None else (None, None, None)
    client = client or vector.peer
    scheme = scheme or "http"
    if vector.websocket:
        # cyserve's WebSocket keeps the handshake's http(s) URL; uvicorn's scope says ws(s).
        scheme = {"http": "ws", "https": "wss"}[scheme]
    if vector.expected_text is not None:
        return _text(scheme, client)
    seen = {"client": client, "scheme": scheme}
    return {name: seen[name] for name in vector.expected_scope}


def uvicorn_answer(vector: Vector) -> Any:
    if vector.membership is not None:
        return vector.membership[1]
    if vector.expected_text is not None:
        return vector.expected_text
    return vector.expected_scope


def test_every_uvicorn_proxy_vector_passes_or_is_an_intended_difference(uvicorn_vector_source):
    vectors = list(read_vectors(uvicorn_vector_source))
    functions = {v.function for v in vectors}
    tree = ast.parse(uvicorn_vector_source)
    every_test = {node.name for node in tree.body
                  if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.name.startswith("test_")}
    assert functions == every_test, f"test functions read as no vector: {every_test - functions}"
    failures = []
    used = set()
    for vector in vectors:
        ours, theirs = cyserve_answer(vector), uvicorn_answer(vector)
        intended = INTENDED_DIFFERENCES.get((vector.function, vector.key))
        if intended is not None:
            used.add((vector.function, vector.key))
            assert ours != theirs, f"{vector.id}: listed as a difference but now agrees"
            if ours != intended[0]:
                failures.append(f"{vector.id}: cyserve says {ours!r}, the table says {intended[0]!r}")
        elif ours != theirs:
            failures.append(f"{vector.id}: uvicorn expects {theirs!r}, cyserve says {ours!r}")
    assert not failures, "\n".join(failures)
    stale = set(INTENDED_DIFFERENCES) - used
    assert not stale, f"intended differences matching no vector: {stale}"
    # Sanity: the tables were read (0.55.0 holds 245 vectors), not silently skipped.
    assert len(vectors) >= 200, len(vectors)


def test_the_reader_refuses_a_vector_shape_it_does_not_know():
    source = '''
import pytest
@pytest.mark.parametrize(("trusted_hosts", "expected"), [("*", "https://1.2.3.4:0")])
async def test_new_shape(trusted_hosts, expected):
    response = await somewhere_else(trusted_hosts)
    assert response.text == expected
'''
    with pytest.raises(Unreadable, match="test_new_shape"):
        list(read_vectors(source))


def test_the_reader_fills_parameters_module_constants_and_conditional_headers():
    source = '''
import pytest
X_FORWARDED_FOR = "X-Forwarded-For"
X_FORWARDED_PROTO = "X-Forwarded-Proto"
def make_httpx2_client(trusted_hosts, client=("127.0.0.1", 123)):
    pass
@pytest.mark.parametrize(("forwarded_for", "forwarded_proto", "expected"), [
    ("9.9.9.9", "https", "https://9.9.9.9:0"),
    ("9.9.9.9", None, "http://9.9.9.9:0"),
])
async def test_shape(forwarded_for, forwarded_proto, expected):
    async with make_httpx2_client("127.0.0.1") as client:
        headers = {X_FORWARDED_FOR: forwarded_for}
        if forwarded_proto is not None:
            headers[X_FORWARDED_PROTO] = forwarded_proto
        response = await client.get("/", headers=headers)
    assert response.text == expected
'''
    first, second = read_vectors(source)
    assert (first.trusted, first.peer) == ("127.0.0.1", ("127.0.0.1", 123))
    assert first.headers == [("X-Forwarded-For", "9.9.9.9"), ("X-Forwarded-Proto", "https")]
    assert second.headers == [("X-Forwarded-For", "9.9.9.9")]
    assert [cyserve_answer(v) == uvicorn_answer(v) for v in (first, second)] == [True, True]
