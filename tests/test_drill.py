"""drill: writes, commits, reads back from a new connection, and always removes its table, on a real server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result
from contract import validate
from pgcluster import PgCluster
from test_check import CLEAN_ENV

from neondoctor.cli import cli
from neondoctor.drill import run_drill
from neondoctor.target import parse_target

READER = "drill_reader"
READER_PASSWORD = "reader-secret-Q7"


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), env=CLEAN_ENV)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def server(pg_factory: Callable[..., PgCluster]) -> PgCluster:
    """``drill_reader`` is read-only by default; bob has no CREATE on public (PostgreSQL 15+)."""
    return pg_factory(
        users={READER: READER_PASSWORD},
        setup_sql=[f"ALTER ROLE {READER} SET default_transaction_read_only = on"],
    )


def leftovers(cluster: PgCluster) -> list[str]:
    rows = cluster.execute("select relname from pg_class where relname like 'neondoctor_drill_%'", dbname="app")
    return [row[0] for row in rows]


def errors_in_log(text: str) -> list[str]:
    return [line for line in text.splitlines() if " ERROR: " in line or " FATAL: " in line]


def test_persisted_with_both_latencies_and_no_trace(server: PgCluster) -> None:
    mark = server.log_mark()
    result = run("drill", server.url(), "--json")
    assert result.exit_code == 0, result.output
    data = validate(result.stdout, "drill")
    assert (data["status"], data["persisted"], data["cleaned"], data["db_schema"]) == ("persisted", True, True,
                                                                                       "public")
    assert data["write_ms"] > 0 and data["read_ms"] > 0
    assert [step["name"] for step in data["steps"]] == ["write", "read"]
    assert leftovers(server) == []
    assert errors_in_log(server.log_since(mark)) == []
    text = run("drill", server.url())
    assert "✓ persisted: wrote a row and read it back from a new connection" in text.output
    assert "(removed)" in text.output


def test_read_only_role_is_refused_before_writing(server: PgCluster) -> None:
    mark = server.log_mark()
    result = run("drill", server.url(READER))
    assert result.exit_code == 1
    assert f"✗ refused: the session of {READER} is read-only" in result.output
    assert "ALTER ROLE" in result.output
    assert leftovers(server) == []
    assert errors_in_log(server.log_since(mark)) == []


def test_missing_create_privilege_is_refused_before_writing(server: PgCluster) -> None:
    if server.version < 150000:
        pytest.skip("before PostgreSQL 15 everyone may create in public")
    mark = server.log_mark()
    result = run("drill", server.url("bob"))
    assert result.exit_code == 1
    assert "bob has no CREATE privilege on schema public" in result.output
    assert "GRANT CREATE ON SCHEMA public TO bob" in result.output
    assert errors_in_log(server.log_since(mark)) == []


def test_table_is_removed_when_the_second_connection_is_killed(server: PgCluster) -> None:
    killed: list[int] = []

    def kill_reader(step: str, conn: Any) -> None:
        if step == "read":
            pid = conn.info.backend_pid
            server.execute("select pg_terminate_backend(%s)", [pid])
            killed.append(pid)

    result = run_drill(parse_target(server.url()), timeout=5, hook=kill_reader)
    assert killed
    assert result.status == "failed"
    assert result.summary.startswith("the read step failed")
    assert result.cleaned is True
    assert leftovers(server) == []


def test_table_is_removed_when_the_write_breaks_after_create(server: PgCluster) -> None:
    def break_after_create(step: str, conn: Any) -> None:
        if step == "insert":
            server.execute("select pg_terminate_backend(%s)", [conn.info.backend_pid])

    result = run_drill(parse_target(server.url()), timeout=5, hook=break_after_create)
    assert result.status == "failed"
    assert leftovers(server) == []


def test_unreachable_server_fails_with_a_next_step(closed_port: tuple[str, int]) -> None:
    host, port = closed_port
    result = run("drill", f"postgresql://alice:pw-Secret@{host}:{port}/app", "--timeout", "2")
    assert result.exit_code == 1
    assert "the write step failed" in result.output
    assert "neondoctor check" in result.output
    assert "pw-Secret" not in result.output
