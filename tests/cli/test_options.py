"""Flag parity with uvicorn, generated from uvicorn's own click parameters.

For every parameter of the installed uvicorn's command (pinned in the test extra), a value that is
not the default is derived from the parameter's click type and given to ``cyserve.cli.parse`` on
the command line, as ``UVICORN_<NAME>`` and as ``CYSERVE_<NAME>``; the RunConfig field of the same
name must hold what click parses for uvicorn.  A uvicorn release that adds an option fails
``test_cyserve_knows_every_uvicorn_option`` (and its generated case) until cyserve accepts it.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import pathlib
from typing import Any, Iterator

import click
import pytest
from uvicorn.config import Config as UvicornConfig

from cyserve import cli
from cyserve.config import RunConfig

UVICORN = importlib.import_module("uvicorn.main").main
assert isinstance(UVICORN, click.Command)

# --version is not a setting: it prints and exits (tests/cli/test_cli_process.py runs it).
OPTIONS = [p for p in UVICORN.params if isinstance(p, click.Option) and p.name != "version"]
RUN_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """click reads os.environ: nothing from the machine running the tests may leak into it."""
    for name in list(os.environ):
        if name.startswith(("UVICORN_", "CYSERVE_")) or name in ("WEB_CONCURRENCY",
                                                                 "FORWARDED_ALLOW_IPS"):
            monkeypatch.delenv(name)


def click_params(args: list[str]) -> dict[str, Any]:
    """What uvicorn's command line makes of ``args`` (with os.environ as it is now)."""
    ctx = UVICORN.make_context("uvicorn", ["m:app", *args])
    return {name: normal(value) for name, value in ctx.params.items()}


def normal(value: Any) -> Any:
    """click gives lists (and lists of tuples) where RunConfig holds tuples."""
    return tuple(normal(v) for v in value) if isinstance(value, (list, tuple)) else value


def metavar_choices(param: click.Option) -> list[str]:
    """uvicorn spells the values of its free-text --loop/--http/--ws in the metavar: [a|b|c]."""
    metavar = param.metavar or ""
    return metavar.strip("[]").split("|") if metavar.startswith("[") else []


def sample(param: click.Option, tmp_path: pathlib.Path) -> list[tuple[str, list[str], str]]:
    """``(case id, command-line arguments, environment text)`` giving a non-default value."""
    kind = param.type
    flag = param.opts[0]
    if param.is_flag:
        cases = [(flag, [flag], "true" if not param.default else "false")]
        if param.secondary_opts:  # --x/--no-x: both forms, the environment both ways
            cases = [(flag, [flag], "true"),
                     (param.secondary_opts[0], [param.secondary_opts[0]], "false")]
        return cases
    if param.multiple:
        if isinstance(kind, click.Path):
            values = [str(tmp_path / "one"), str(tmp_path / "two")]
            for value in values:
                os.makedirs(value, exist_ok=True)
        else:  # "Name:Value" is a valid value of every multiple text option (--header needs it)
            values = ["X-One:1", "X-Two:2"]
        splitter = kind.envvar_list_splitter or " "
        return [(flag, [a for v in values for a in (flag, v)], splitter.join(values))]
    if isinstance(kind, click.Choice):
        value = next(str(c) for c in kind.choices if c != param.default)
    elif isinstance(kind, click.types.IntParamType):
        value = "7"
    elif isinstance(kind, click.types.FloatParamType):
        value = "2.5"
    elif isinstance(kind, click.types.BoolParamType):
        value = "false" if param.default else "true"
    elif isinstance(kind, click.Path):
        path = tmp_path / f"{param.name}.txt"
        path.write_text("")
        value = str(path)
    elif metavar_choices(param):
        value = next(c for c in metavar_choices(param) if c != param.default)
    else:
        value = f"{param.name}-value"
    return [(flag, [flag, value], value)]


@pytest.mark.parametrize("param", OPTIONS, ids=[p.name or "?" for p in OPTIONS])
def test_uvicorn_option_sets_the_same_field(param: click.Option, tmp_path: pathlib.Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert param.name in RUN_FIELDS, f"RunConfig has no field for uvicorn's {param.opts[0]}"
    default = click_params([])[param.name]
    seen = []
    for case, args, env_text in sample(param, tmp_path):
        expected = click_params(args)[param.name]
        seen.append(expected)
        config = cli.parse(["m:app", *args], {})
        assert getattr(config, param.name) == expected, case

        variable = f"UVICORN_{param.name.upper()}"
        monkeypatch.setenv(variable, env_text)
        assert click_params([])[param.name] == expected, f"{case}: click read {variable} otherwise"
        monkeypatch.delenv(variable)
        for prefix in ("UVICORN_", "CYSERVE_"):
            name = f"{prefix}{param.name.upper()}"
            config = cli.parse(["m:app"], {name: env_text})
            assert getattr(config, param.name) == expected, f"{case} through {name}"
    assert any(value != default for value in seen), "no sample differs from the default"


def test_cyserve_knows_every_uvicorn_option() -> None:
    """Fails when uvicorn adds (or drops) an option: the set of option strings must match."""
    theirs = {s for p in UVICORN.params for s in (*p.opts, *p.secondary_opts) if s.startswith("-")}
    ours = {o.flag for o in cli._OPTIONS if o.uvicorn}
    ours |= {f"--no-{o.flag[2:]}" for o in cli._OPTIONS if o.uvicorn and o.kind == "flag"}
    ours.add("--version")
    assert theirs - ours == set(), "uvicorn options cyserve does not accept"
    # cyserve offers --no- for every flag (uvicorn only for five): those extras are the only
    # option strings of ours uvicorn lacks.
    extra = ours - theirs
    assert all(s.startswith("--no-") for s in extra), extra


def test_cyserve_options_are_not_uvicorns() -> None:
    """cyserve's own options are named so as not to collide with any of uvicorn's."""
    theirs = {p.name for p in UVICORN.params}
    own = [o for o in cli._OPTIONS if not o.uvicorn]
    assert {o.flag for o in own} == {"--timeout-head", "--max-body-size", "--workers-max-rss",
                                     "--workers-lifetime", "--metrics", "--health-path",
                                     "--proxy-protocol", "--limit-connections-per-ip",
                                     "--log-format", "--gc-freeze"}
    assert not {o.field for o in own} & theirs


def test_defaults_are_uvicorns_command_line_defaults() -> None:
    """With nothing given, each field holds what uvicorn's command line gives its parameter."""
    config = cli.parse(["m:app"], {})
    defaults = click_params([])
    for param in OPTIONS:
        assert getattr(config, param.name) == defaults[param.name], param.name


# uvicorn's Config then resolves some of its command line's values; cyserve resolves the same
# ones later, in the module that owns each, so the RunConfig keeps "not given".
RESOLVED_LATER = {
    "workers": "None: not given and no WEB_CONCURRENCY; the supervisor runs 1 (Config stores 1)",
    "forwarded_allow_ips": "None: not given and no FORWARDED_ALLOW_IPS; the proxy resolver "
                           "trusts 127.0.0.1,::1 (Config stores that string)",
    "log_config": "None: cyserve.logs sets up its own handlers (uvicorn's run() substitutes its "
                  "LOGGING_CONFIG dict)",
}


def test_defaults_match_uvicorns_config() -> None:
    config = cli.parse(["m:app"], {})
    theirs = UvicornConfig("m:app", log_config=None)
    compared = 0
    for name in sorted(RUN_FIELDS):
        if not hasattr(theirs, name) or name in RESOLVED_LATER:
            continue
        value = getattr(theirs, name)
        assert getattr(config, name) == normal(value), name
        compared += 1
    assert compared >= 40
    uvicorn_default = UvicornConfig("m:app", log_config=None)
    assert uvicorn_default.workers == 1 and config.workers is None
    assert uvicorn_default.forwarded_allow_ips == "127.0.0.1,::1"
    assert config.forwarded_allow_ips is None


def test_bare_metrics_serves_the_conventional_path() -> None:
    assert cli.parse(["m:app", "--metrics"], {}).metrics == "/metrics"
    assert cli.parse(["--metrics", "m:app"], {}).metrics == "/metrics"  # APP not swallowed
    assert cli.parse(["--metrics", "--workers", "2", "m:app"], {}).metrics == "/metrics"
    assert cli.parse(["--metrics", "/stats", "m:app"], {}).metrics == "/stats"
    assert cli.parse(["m:app", "--metrics=/stats"], {}).metrics == "/stats"
    assert cli.parse(["m:app"], {}).metrics is None
    with pytest.raises(ValueError, match="starting with '/'"):
        cli.parse(["m:app", "--metrics=stats"], {})


@pytest.mark.parametrize("args, field, value", [
    (["--timeout-head", "2.5"], "timeout_head", 2.5),
    (["--max-body-size", "1048576"], "max_body_size", 1048576),
    (["--workers-max-rss", "512"], "workers_max_rss", 512),
    (["--workers-lifetime", "3600"], "workers_lifetime", 3600.0),
    (["--health-path", "/healthz"], "health_path", "/healthz"),
    (["--proxy-protocol"], "proxy_protocol", True),
    (["--limit-connections-per-ip", "20"], "limit_connections_per_ip", 20),
    (["--log-format", "json"], "log_format", "json"),
    (["--log-format", "JSON"], "log_format", "json"),
    (["--interface", "cyserve"], "interface", "cyserve"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_cyserve_own_option(args: list[str], field: str, value: Any) -> None:
    assert getattr(cli.parse(["m:app", *args], {}), field) == value


def test_header_is_checked_and_its_value_trimmed() -> None:
    # RFC 9110 §5.5: whitespace around a field value is not part of it (uvicorn keeps " 1").
    config = cli.parse(["m:app", "--header", "X-A: 1 ", "--header", "X-B:a:b",
                        "--header", "X-C:tab\there"], {})
    assert config.headers == (("X-A", "1"), ("X-B", "a:b"), ("X-C", "tab\there"))
    for bad in ("no-colon", ":value", "Bad Name:1", "X-A:line\rbreak", "X-A:nul\x00",
                "X-A:bell\x07", "X-A:\u20ac"):
        with pytest.raises(ValueError, match="--header"):
            cli.parse(["m:app", "--header", bad], {})


def test_loop_uvicorn_names_cyserve_lacks_falls_back_to_auto() -> None:
    assert cli.parse(["m:app", "--loop", "zuvloop"], {}).loop == "auto"


def test_loop_values_cyserve_runs_are_kept() -> None:
    for loop in ("auto", "asyncio", "uvloop", "none", "mypkg.loops:new_loop"):
        assert cli.parse(["m:app", "--loop", loop], {}).loop == loop


def test_loop_unknown_name_is_a_usage_error() -> None:
    with pytest.raises(ValueError, match="argument --loop: invalid choice: 'uvlop'"):
        cli.parse(["m:app", "--loop", "uvlop"], {})


def warnings_of(args: list[str], environ: dict[str, str] | None = None) -> list[str]:
    return cli._settle(cli._namespace(["m:app", *args]), environ or {})[1]


@pytest.mark.parametrize("args, line", [
    (["--http", "h11"], "cyserve: --http h11 has no effect: cyserve has its own HTTP/1.1 core"),
    (["--http", "httptools"], "cyserve: --http httptools has no effect"),
    (["--http2"], "cyserve: --http2 has no effect: cyserve serves HTTP/1.1"),
    (["--ws", "wsproto"], "cyserve: --ws wsproto has no effect: cyserve has its own WebSocket"),
    (["--ws", "websockets-sansio"], "cyserve: --ws websockets-sansio has no effect"),
    (["--h11-max-incomplete-event-size", "1024"], "cyserve: --h11-max-incomplete-event-size has"),
    (["--reset-contextvars"], "cyserve: --reset-contextvars has no effect"),
    (["--loop", "zuvloop"], "cyserve: --loop zuvloop has no effect"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_option_without_effect_warns_once(args: list[str], line: str) -> None:
    lines = warnings_of(args)
    assert len(lines) == 1 and lines[0].startswith(line), lines


def test_warning_also_for_an_environment_value() -> None:
    assert warnings_of([], {"UVICORN_HTTP": "h11"}) == [
        "cyserve: --http h11 has no effect: cyserve has its own HTTP/1.1 core"]


def test_no_warning_for_defaults_or_options_that_work() -> None:
    assert warnings_of([]) == []
    assert warnings_of(["--interface", "asgi3"]) == []  # it serves ASGI 3 apps
    assert warnings_of(["--interface", "wsgi"]) == []   # refused at startup, with exit 3
    assert warnings_of(["--http", "auto", "--ws", "auto", "--interface", "auto", "--no-http2",
                        "--loop", "asyncio", "--workers", "2", "--ws-max-size", "1024"]) == []


@pytest.mark.parametrize("args, message", [
    (["--port", "x"], "argument --port: invalid int value: 'x'"),
    (["--port", "70000"], "--port: port must be in 0..65535"),
    (["--workers", "0"], "--workers: workers must be at least 1"),
    (["--backlog", "0"], "--backlog: backlog must be positive"),
    (["--limit-max-requests-jitter", "-1"], "-1 is not >= 0"),
    (["--lifespan", "sometimes"], "invalid choice: 'sometimes'"),
    (["--log-level", "loud"], "invalid choice: 'loud'"),
    (["--ws-per-message-deflate", "maybe"], "invalid boolean value: 'maybe'"),
    (["--reload-delay", "soon"], "invalid float value: 'soon'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--work", "2"], "unrecognized arguments: --work 2"),  # no abbreviations (click has none)
    (["other:app"], "unrecognized arguments: other:app"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_usage_error_names_the_option(args: list[str], message: str) -> None:
    with pytest.raises(ValueError) as info:
        cli.parse(["m:app", *args], {})
    assert message in str(info.value)


def test_app_is_required() -> None:
    with pytest.raises(ValueError, match="missing APP"):
        cli.parse(["--workers", "2"], {})


def test_app_after_options_and_after_double_dash() -> None:
    assert cli.parse(["--port", "9000", "main:app"], {}).app == "main:app"
    assert cli.parse(["--port", "9000", "--", "main:app"], {}).app == "main:app"


def test_parse_reads_nothing_but_its_arguments(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: pathlib.Path) -> None:
    """A pure function: os.environ, the working directory and the files named do not matter."""
    monkeypatch.setenv("CYSERVE_WORKERS", "4")
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    monkeypatch.chdir(tmp_path)
    before = dict(os.environ)
    config = cli.parse(["m:app", "--env-file", "missing.env", "--log-config", "missing.yaml"], {})
    assert config.workers is None
    assert config.env_file == "missing.env" and config.log_config == "missing.yaml"
    assert dict(os.environ) == before and list(tmp_path.iterdir()) == []


def test_help_lists_every_option_with_runconfig_defaults() -> None:
    text = cli._parser().format_help()
    for option in cli._OPTIONS:
        assert option.flag in text, option.flag
    assert "--port INTEGER" in text
    assert "(default: 8000)" in text  # from RunConfig, not written twice


def _iter_flags() -> Iterator[str]:
    yield from (o.flag for o in cli._OPTIONS if o.kind == "flag")


@pytest.mark.parametrize("flag", list(_iter_flags()))
def test_every_flag_has_a_no_form(flag: str) -> None:
    """--no-x turns off what the environment turned on (uvicorn has --no- for only five)."""
    field = next(o.field for o in cli._OPTIONS if o.flag == flag)
    environ = {f"CYSERVE_{flag[2:].upper().replace('-', '_')}": "1"}
    assert getattr(cli.parse(["m:app"], environ), field) is True
    assert getattr(cli.parse(["m:app", f"--no-{flag[2:]}"], environ), field) is False
