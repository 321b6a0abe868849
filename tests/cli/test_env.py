"""Where a value comes from: command line > CYSERVE_ > UVICORN_ > WEB_CONCURRENCY and
FORWARDED_ALLOW_IPS > RunConfig's default; and what a bad environment value says."""
from __future__ import annotations

import os

import pytest

from cyserve.cli import parse
from cyserve.config import RunConfig


@pytest.mark.parametrize("argv, environ, workers", [
    ([], {}, None),
    ([], {"WEB_CONCURRENCY": "2"}, 2),
    ([], {"WEB_CONCURRENCY": "2", "UVICORN_WORKERS": "3"}, 3),
    ([], {"WEB_CONCURRENCY": "2", "UVICORN_WORKERS": "3", "CYSERVE_WORKERS": "4"}, 4),
    (["--workers", "5"],
     {"WEB_CONCURRENCY": "2", "UVICORN_WORKERS": "3", "CYSERVE_WORKERS": "4"}, 5),
    (["--workers", "5"], {"WEB_CONCURRENCY": "2"}, 5),
    ([], {"CYSERVE_WORKERS": "4", "WEB_CONCURRENCY": "2"}, 4),
], ids=["default", "web-concurrency", "uvicorn-beats-web-concurrency", "cyserve-beats-uvicorn",
        "command-line-beats-all", "command-line-beats-web-concurrency",
        "cyserve-beats-web-concurrency"])
def test_workers_precedence(argv: list[str], environ: dict[str, str], workers: int | None) -> None:
    assert parse(["m:app", *argv], environ).workers == workers


@pytest.mark.parametrize("argv, environ, allowed", [
    ([], {}, None),
    ([], {"FORWARDED_ALLOW_IPS": "10.0.0.0/8"}, "10.0.0.0/8"),
    ([], {"FORWARDED_ALLOW_IPS": "10.0.0.0/8", "UVICORN_FORWARDED_ALLOW_IPS": "*"}, "*"),
    ([], {"UVICORN_FORWARDED_ALLOW_IPS": "*", "CYSERVE_FORWARDED_ALLOW_IPS": "unix:"}, "unix:"),
    (["--forwarded-allow-ips", "192.0.2.1"], {"CYSERVE_FORWARDED_ALLOW_IPS": "unix:",
                                               "FORWARDED_ALLOW_IPS": "*"}, "192.0.2.1"),
], ids=["default", "forwarded-allow-ips", "uvicorn-beats-plain", "cyserve-beats-uvicorn",
        "command-line-beats-all"])
def test_forwarded_allow_ips_precedence(argv: list[str], environ: dict[str, str],
                                        allowed: str | None) -> None:
    assert parse(["m:app", *argv], environ).forwarded_allow_ips == allowed


def test_app_from_the_environment() -> None:
    assert parse([], {"CYSERVE_APP": "a:app"}).app == "a:app"
    assert parse([], {"UVICORN_APP": "u:app"}).app == "u:app"
    assert parse([], {"CYSERVE_APP": "a:app", "UVICORN_APP": "u:app"}).app == "a:app"
    assert parse(["c:app"], {"CYSERVE_APP": "a:app"}).app == "c:app"


def test_command_line_flag_beats_environment_both_ways() -> None:
    assert parse(["m:app", "--no-access-log"], {"CYSERVE_ACCESS_LOG": "1"}).access_log is False
    assert parse(["m:app", "--reload"], {"CYSERVE_RELOAD": "0"}).reload is True
    environ = {"CYSERVE_ACCESS_LOG": "0", "UVICORN_ACCESS_LOG": "1"}
    assert parse(["m:app"], environ).access_log is False


def test_multiple_values_replace_rather_than_add() -> None:
    """A repeated option from the command line replaces the environment's list, as in click."""
    environ = {"CYSERVE_HEADER": "X-Env:1 X-Env2:2"}
    assert parse(["m:app"], environ).headers == (("X-Env", "1"), ("X-Env2", "2"))
    assert parse(["m:app", "--header", "X-Cli:3"], environ).headers == (("X-Cli", "3"),)


@pytest.mark.parametrize("variable", ["CYSERVE_RELOAD_DIR", "CYSERVE_RELOAD_DIRS",
                                      "UVICORN_RELOAD_DIRS", "UVICORN_RELOAD_DIR"])
def test_both_spellings_of_a_repeatable_option(variable: str) -> None:
    """uvicorn reads UVICORN_RELOAD_DIRS (its parameter's name); the option is --reload-dir."""
    value = os.pathsep.join(["src", "lib"])
    assert parse(["m:app"], {variable: value}).reload_dirs == ("src", "lib")


def test_two_spellings_that_disagree_are_refused() -> None:
    with pytest.raises(ValueError, match="CYSERVE_HEADER and CYSERVE_HEADERS are both set"):
        parse(["m:app"], {"CYSERVE_HEADER": "X-A:1", "CYSERVE_HEADERS": "X-B:2"})
    config = parse(["m:app"], {"CYSERVE_HEADER": "X-A:1", "CYSERVE_HEADERS": "X-A:1"})
    assert config.headers == (("X-A", "1"),)
    # across prefixes there is an order, not a conflict
    config = parse(["m:app"], {"CYSERVE_HEADER": "X-A:1", "UVICORN_HEADERS": "X-B:2"})
    assert config.headers == (("X-A", "1"),)


@pytest.mark.parametrize("word, value", [
    ("1", True), ("true", True), ("TRUE", True), ("yes", True), ("on", True), ("y", True),
    ("t", True), ("0", False), ("false", False), ("No", False), ("off", False), ("n", False),
    ("f", False),
])
def test_boolean_words(word: str, value: bool) -> None:
    assert parse(["m:app"], {"CYSERVE_PROXY_PROTOCOL": word}).proxy_protocol is value
    assert parse(["m:app"], {"UVICORN_FACTORY": word}).factory is value


def test_empty_variable_counts_as_unset() -> None:
    """click ignores an empty variable; so does cyserve (a Dockerfile's ENV X= clears it)."""
    config = parse(["m:app"], {"CYSERVE_PORT": "", "UVICORN_PORT": "9001", "WEB_CONCURRENCY": "",
                               "CYSERVE_APP": ""})
    assert config.port == 9001 and config.workers is None


def test_cyserve_options_are_not_read_from_uvicorn_variables() -> None:
    """UVICORN_* means what uvicorn reads: its own options only."""
    config = parse(["m:app"], {"UVICORN_METRICS": "/metrics", "UVICORN_WORKERS_MAX_RSS": "100"})
    assert config.metrics is None and config.workers_max_rss is None
    config = parse(["m:app"], {"CYSERVE_METRICS": "/stats", "CYSERVE_WORKERS_MAX_RSS": "100"})
    assert config.metrics == "/stats" and config.workers_max_rss == 100


@pytest.mark.parametrize("text, path", [("/stats", "/stats"), ("1", "/metrics"), ("on", "/metrics"),
                                        ("0", None), ("off", None)])
def test_metrics_from_the_environment(text: str, path: str | None) -> None:
    assert parse(["m:app"], {"CYSERVE_METRICS": text}).metrics == path


def test_unrelated_variables_are_ignored() -> None:
    environ = {"CYSERVE_NOT_AN_OPTION": "x", "UVICORN_WHATEVER": "y", "PORT": "1", "HOST": "h"}
    assert parse(["m:app"], environ) == RunConfig(app="m:app")


@pytest.mark.parametrize("environ, message", [
    ({"CYSERVE_WORKERS": "many"}, "CYSERVE_WORKERS: invalid int value: 'many'"),
    ({"UVICORN_WORKERS": "2.5"}, "UVICORN_WORKERS: invalid int value: '2.5'"),
    ({"WEB_CONCURRENCY": "lots"}, "WEB_CONCURRENCY: invalid int value: 'lots'"),
    ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY: workers must be at least 1, got 0"),
    ({"CYSERVE_PORT": "99999"}, "CYSERVE_PORT: port must be in 0..65535, got 99999"),
    ({"CYSERVE_RELOAD": "maybe"}, "CYSERVE_RELOAD: invalid boolean value: 'maybe'"),
    ({"UVICORN_ACCESS_LOG": "enabled"}, "UVICORN_ACCESS_LOG: invalid boolean value: 'enabled'"),
    ({"CYSERVE_LOG_LEVEL": "loud"}, "CYSERVE_LOG_LEVEL: invalid choice: 'loud'"),
    ({"CYSERVE_LOG_FORMAT": "xml"}, "CYSERVE_LOG_FORMAT: invalid choice: 'xml'"),
    ({"CYSERVE_HEADER": "novalue"}, "CYSERVE_HEADER: expected 'Name:Value'"),
    ({"CYSERVE_HEALTH_PATH": "healthz"}, "CYSERVE_HEALTH_PATH: expected a path starting with '/'"),
    ({"CYSERVE_METRICS": "sometimes"}, "CYSERVE_METRICS: invalid boolean value: 'sometimes'"),
    ({"CYSERVE_TIMEOUT_HEAD": "soon"}, "CYSERVE_TIMEOUT_HEAD: invalid float value: 'soon'"),
    ({"CYSERVE_LIMIT_MAX_REQUESTS_JITTER": "-3"},
     "CYSERVE_LIMIT_MAX_REQUESTS_JITTER: -3 is not >= 0"),
], ids=lambda v: next(iter(v)) if isinstance(v, dict) else None)
def test_bad_environment_value_names_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse(["m:app"], environ)
    assert str(info.value).startswith(message)


def test_bad_environment_value_is_ignored_when_the_command_line_wins() -> None:
    assert parse(["m:app", "--workers", "2"], {"CYSERVE_WORKERS": "many"}).workers == 2
