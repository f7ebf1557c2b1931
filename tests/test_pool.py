"""pool: the worst case of the app's pools against the slots a real server has left for the role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result
from contract import validate
from pgcluster import PgCluster
from test_check import CLEAN_ENV

from neondoctor.cli import cli

POOL_USER = "pool_user"
POOL_PASSWORD = "pool-secret-Zq9"


def run(*args: str, cwd: Path | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), env=CLEAN_ENV)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def small(pg_factory: Callable[..., PgCluster]) -> PgCluster:
    """max_connections 20, 3 reserved for superusers; pool_user may open at most 12."""
    return pg_factory(
        settings={"max_connections": 20, "superuser_reserved_connections": 3},
        users={POOL_USER: POOL_PASSWORD},
        setup_sql=[f"ALTER ROLE {POOL_USER} CONNECTION LIMIT 12"],
    )


@pytest.fixture
def held(small: PgCluster) -> Iterator[Callable[[int, str], None]]:
    """``hold(n, user)`` keeps n connections open for the test."""
    with ExitStack() as stack:

        def hold(count: int, user: str = "alice") -> None:
            for _ in range(count):
                stack.enter_context(psycopg.connect(**small.conninfo(user, password=small.passwords[user])))

        yield hold


def test_fits_on_a_live_server(small: PgCluster) -> None:
    result = run("pool", small.url(), "--pool-size", "2", "--max-overflow", "1", "--workers", "2", "--pre-ping")
    assert result.exit_code == 0, result.output
    assert "✓ fits: worst case 6 connections ((2 + 1) × 2 worker(s)) fits in 17 slots left" in result.output
    assert "max_connections=20" in result.output


def test_rolconnlimit_binds_and_connections_in_use_count(small: PgCluster, held: Callable[..., None]) -> None:
    held(4, POOL_USER)
    result = run("pool", small.url(POOL_USER), "--json", "--pool-size", "2", "--max-overflow", "2")
    data = validate(result.stdout, "pool")
    assert result.exit_code == 0
    assert data["slots"]["left"] == 8
    assert data["slots"]["limited_by"].startswith(f"rolconnlimit of {POOL_USER} (4 of 12 in use)")
    assert data["status"] == "fits"
    tight = validate(run("pool", small.url(POOL_USER), "--json", "--pool-size", "4", "--max-overflow", "3").stdout,
                     "pool")
    assert tight["status"] == "tight"
    assert tight["suggestion"] == {"pool_size": 4, "max_overflow": 2, "worst_case": 6}


def test_will_fail_is_what_the_server_then_says(small: PgCluster, held: Callable[..., None]) -> None:
    result = run("pool", small.url(), "--pool-size", "5", "--max-overflow", "10", "--workers", "2")
    assert result.exit_code == 1, result.output
    assert "✗ will-fail: worst case 30 connections ((5 + 10) × 2 worker(s)) > 17 slots left" in result.output
    assert "remaining connection slots are reserved" in result.output
    assert "pool_size=5, max_overflow=1 per engine: worst case 12 ≤ 13" in result.output
    held(17)
    with pytest.raises(psycopg.OperationalError, match="remaining connection slots are reserved"):
        psycopg.connect(**small.conninfo("alice", password=small.passwords["alice"]))


def test_from_file_is_parsed_never_run(small: PgCluster, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    app = tmp_path / "db.py"
    app.write_text(
        "import os\n"
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from sqlalchemy import create_engine\n"
        "POOL = 4\n"
        "engine = create_engine(os.environ['DATABASE_URL'], pool_size=POOL,\n"
        "                       max_overflow=int(os.getenv('OVERFLOW', '6')), pool_pre_ping=True, pool_recycle=1800)\n"
        "reports = create_engine(os.environ['DATABASE_URL'], pool_size=1, max_overflow=0)\n"
    )
    result = run("pool", small.url(), "--from", str(app), "--workers", "2", "--json")
    data = validate(result.stdout, "pool")
    assert not marker.exists()
    assert [(e["line"], e["pool_size"], e["max_overflow"], e["pool_pre_ping"]) for e in data["engines"]] == [
        (5, 4, 6, True), (7, 1, 0, False)]
    assert data["worst_case"] == 22
    assert data["status"] == "will-fail"
    assert any("2 engines" in note for note in data["notes"])


def test_offline_neon_names_the_pooler_and_the_suspend() -> None:
    url = "postgresql://alice:pw@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb?sslmode=require"
    result = run("pool", url, "--max-connections", "112", "--workers", "4", "--pool-size", "10",
                 "--max-overflow", "20")
    assert result.exit_code == 1
    assert "ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech" in result.output
    assert "10,000 client connections" in result.output
    assert "pool_recycle=240" in result.output and "pool_pre_ping=True" in result.output
    pooled = run("pool", url.replace("123456.", "123456-pooler."), "--max-connections", "112", "--workers", "4",
                 "--pool-size", "10", "--max-overflow", "20")
    assert pooled.exit_code == 0, pooled.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "/nonexistent/db.py", "--max-connections", "5"], "cannot read /nonexistent/db.py"),
        (["--workers", "0", "--max-connections", "5"], "--workers"),
        (["--max-connections", "0"], "--max-connections"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = run("pool", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_unreachable_server_is_exit_1_with_next_step(closed_port: tuple[str, int]) -> None:
    host, port = closed_port
    result = run("pool", f"postgresql://alice:pw@{host}:{port}/app", "--timeout", "2")
    assert result.exit_code == 1
    assert "could not read the server's connection limits" in result.stderr
    assert "--max-connections" in result.stderr
