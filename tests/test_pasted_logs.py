"""Whole pasted logs with one real error buried inside: the root cause comes first.

The logs are in tests/data/logs/ (see its README for where each error text comes from). A case whose
expected rule is missing fails: a renamed or deleted rule must never turn into a quiet xfail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from neondoctor.cli import cli
from neondoctor.explain import explain_text
from neondoctor.rules import load_rules

LOGS = Path(__file__).parent / "data" / "logs"
RULESET = load_rules(env={})


def case(name: str, first: str, *also: str, excerpt: str, line: int) -> object:
    return pytest.param(name, first, also, excerpt, line, id=name)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.delenv("NEONDOCTOR_RULES", raising=False)
    monkeypatch.setenv("NEONDOCTOR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))  # parsed once per run
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.mark.parametrize(
    ("name", "first", "also", "excerpt", "line"),
    [
        case(
            "django_traceback.log",
            "auth-password-failed",
            excerpt="psycopg2.OperationalError: connection to server at",
            line=27,
        ),
        case("node_stack.log", "tcp-connection-refused", excerpt="Error: connect ECONNREFUSED 127.0.0.1:5432", line=6),
        case(
            "jdbc_cause_chain.log",
            "dns-host-not-found",
            excerpt="Caused by: java.net.UnknownHostException: ep-cool-darknes-123456.us-east-2.aws.neon.tech",
            line=23,
        ),
        case(
            "docker_compose.log",
            "database-does-not-exist",
            excerpt='FATAL:  database "appdb " does not exist',
            line=15,
        ),
        case(
            "libpq_multi_attempt.log",
            "auth-password-failed",
            "tcp-network-unreachable",
            excerpt='connection to server at "ep-cool-darkness-123456.us-east-2.aws.neon.tech" (3.18.12.7)',
            line=4,
        ),
    ],
)
def test_the_root_cause_comes_first(name: str, first: str, also: tuple[str, ...], excerpt: str, line: int) -> None:
    result = CliRunner().invoke(cli, ["explain", "--file", str(LOGS / name), "--json"])
    assert result.exit_code == 0, result.output
    matches = json.loads(result.stdout)["matches"]
    ids = [m["id"] for m in matches]
    assert ids[0] == first, ids
    for rule_id in also:
        assert rule_id in ids
    assert matches[0]["excerpt"].startswith(excerpt)
    assert matches[0]["line"] == line
    assert "\x1b" not in result.stdout and "web-1  |" not in matches[0]["excerpt"]


def test_the_text_report_of_a_log_names_the_root_cause_and_its_line() -> None:
    result = CliRunner().invoke(cli, ["explain", "--file", str(LOGS / "jdbc_cause_chain.log")])
    assert result.exit_code == 0
    title = RULESET.by_id["dns-host-not-found"].title
    assert f"1. {title}  [dns-host-not-found]" in result.stdout
    assert "input line 23" in result.stdout


IPV6_THEN_REFUSED = (
    'psql: error: connection to server at "db.example" (2600:1f16:1cd0:3302::c3c0:d09f), port 5432 failed: '
    "Network is unreachable\n"
    "\tIs the server running on that host and accepting TCP/IP connections?\n"
    'connection to server at "db.example" (3.18.12.7), port 5432 failed: Connection refused\n'
    "\tIs the server running on that host and accepting TCP/IP connections?\n"
)
PRE14_LOCALHOST = (
    "could not connect to server: Cannot assign requested address\n"
    '\tIs the server running on host "localhost" (::1) and accepting\n'
    "\tTCP/IP connections on port 5432?\n"
    "could not connect to server: Connection refused\n"
    '\tIs the server running on host "localhost" (127.0.0.1) and accepting\n'
    "\tTCP/IP connections on port 5432?\n"
)
NODE_HAPPY_EYEBALLS = """AggregateError [ECONNREFUSED]:
    at internalConnectMultiple (node:net:1118:18)
    at afterConnectMultiple (node:net:1685:7) {
  code: 'ECONNREFUSED',
  [errors]: [
    Error: connect ENETUNREACH 2600:1f16:1cd0:3302::c3c0:d09f:5432 - Local (:::0)
        at internalConnectMultiple (node:net:1186:16) {
      errno: -101,
      code: 'ENETUNREACH',
      syscall: 'connect',
      address: '2600:1f16:1cd0:3302::c3c0:d09f',
      port: 5432
    },
    Error: connect ECONNREFUSED 3.18.12.7:5432
        at createConnectionError (node:net:1648:14) {
      errno: -111,
      code: 'ECONNREFUSED',
      syscall: 'connect',
      address: '3.18.12.7',
      port: 5432
    }
  ]
}
"""
SQLALCHEMY_WRAPPED = (
    "sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) connection to server at \"db.example\" "
    "(2600:1f16:1cd0:3302::c3c0:d09f), port 5432 failed: Network is unreachable\n"
    "\tIs the server running on that host and accepting TCP/IP connections?\n"
    "connection to server at \"db.example\" (3.18.12.7), port 5432 failed: FATAL:  password authentication failed "
    'for user "app"\n'
    "\n"
    "(Background on this error at: https://sqlalche.me/e/20/e3q8)\n"
)


@pytest.mark.parametrize(
    ("text", "first", "later"),
    [
        pytest.param(IPV6_THEN_REFUSED, "tcp-connection-refused", "tcp-network-unreachable", id="libpq-ipv6-refused"),
        pytest.param(PRE14_LOCALHOST, "tcp-connection-refused", None, id="libpq13-localhost"),
        pytest.param(NODE_HAPPY_EYEBALLS, "tcp-connection-refused", "tcp-network-unreachable", id="node-aggregate"),
        pytest.param(SQLALCHEMY_WRAPPED, "auth-password-failed", "tcp-network-unreachable", id="sqlalchemy-wrapped"),
    ],
)
def test_an_ipv6_attempt_without_a_route_never_hides_the_ipv4_error(text: str, first: str, later: str | None) -> None:
    ids = [m["id"] for m in explain_text(text, RULESET).matches]
    assert ids[0] == first, ids
    if later is not None:
        assert later in ids[1:]
