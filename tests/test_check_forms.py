"""`check` on the app's real string: SQLAlchemy, JDBC and Prisma forms are checked for what they mean and
noted, not failed; real mistakes in a string still stop the chain at url."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from pgcluster import ALICE_PASSWORD, PgCluster
from test_check import LOG_COMPLAINTS, NEON_HOST, PROBE_ORDER, assert_no_secret, check

PW = quote(ALICE_PASSWORD, safe="")


def notes(run: object, name: str = "url") -> str:
    return " ".join(run.probe(name)["details"].get("notes") or [])  # type: ignore[attr-defined]


def test_the_tutorials_sqlalchemy_string_checks_through_to_all_good(pg: PgCluster) -> None:
    url = f"postgresql+psycopg2://alice:{PW}@127.0.0.1:{pg.port}/app?sslmode=require"
    env = {"PGSSLROOTCERT": str(pg.ca_path)}
    run = check(url, env=env)
    assert run.code == 0, run.stdout
    assert "✓ All good" in run.stdout
    assert "note: postgresql+psycopg2:// is SQLAlchemy's form" in run.stdout
    assert "psql, pg_dump, psycopg.connect()" in run.stdout
    as_json = check(url, "--json", env=env)
    assert as_json.report["failed_probe"] is None and as_json.report["exit_code"] == 0
    assert as_json.statuses()["auth"] == "pass" and as_json.statuses()["url"] == "pass"


def test_the_tutorials_string_is_checked_politely(pg: PgCluster) -> None:
    mark = pg.log_mark()
    run = check(f"postgresql+psycopg2://alice:{PW}@127.0.0.1:{pg.port}/app?sslmode=require", "--json",
                env={"PGSSLROOTCERT": str(pg.ca_path)})
    assert run.code == 0, run.stdout
    pg.wait_for_log(r"disconnection: .*user=alice", mark)
    time.sleep(0.2)
    log = pg.log_since(mark)
    assert log.count("connection received") <= 2, log
    for complaint in LOG_COMPLAINTS:
        assert complaint not in log, log
    assert_no_secret(log)


LOADED_CRYPTOGRAPHY = """
import json, sys
from neondoctor.cli import cli
try:
    cli.main(sys.argv[1:], standalone_mode=False)
finally:
    print(json.dumps(sorted(m for m in sys.modules if m.startswith("cryptography"))), file=sys.stderr)
"""


def test_the_tutorials_string_on_a_neon_host_is_verified_in_its_one_handshake(
    pg_factory: Any, dns_server: Any, tmp_path: Path
) -> None:
    """Neon's proxy serves a publicly trusted chain: with sslmode=require the TLS step verifies it against the
    system's roots (here the test CA, through SSL_CERT_FILE) in its one handshake, with no cryptography import."""
    cluster = pg_factory(ssl="ca", cert_names=(NEON_HOST,))
    url = f"postgresql+psycopg2://alice:{PW}@{NEON_HOST}:{cluster.port}/app?sslmode=require"
    env = {"HOME": str(tmp_path), "SSL_CERT_FILE": str(cluster.ca_path), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
    nameserver = str(dns_server({NEON_HOST: "127.0.0.1"}))
    mark = cluster.log_mark()
    run = subprocess.run(
        [sys.executable, "-c", LOADED_CRYPTOGRAPHY, "check", url, "--nameserver", nameserver, "--json"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert_no_secret(run.stdout + run.stderr)
    report = json.loads(run.stdout)
    tls = next(probe for probe in report["probes"] if probe["name"] == "tls")
    assert tls["summary"].endswith(
        "; sslmode=require does not check the certificate, but it verifies against the system's trusted roots"
    )
    assert tls["details"]["verified_in_handshake"] == "system roots" and tls["details"]["connections"] == 1
    notes = " ".join(tls["details"]["notes"])
    assert "sslmode=verify-full&sslrootcert=system (libpq >= 16) would also protect" in notes
    assert json.loads(run.stderr.strip().splitlines()[-1]) == []
    cluster.wait_for_log(r"disconnection: .*user=alice", mark)
    time.sleep(0.2)
    log = cluster.log_since(mark)
    assert log.count("connection received") <= 2, log
    for complaint in LOG_COMPLAINTS:
        assert complaint not in log, log


@pytest.mark.parametrize(
    ("template", "note"),
    [
        ("postgresql+asyncpg://alice:{pw}@127.0.0.1:{port}/app", "SQLAlchemy's form"),
        ("jdbc:postgresql://127.0.0.1:{port}/app?user=alice&password={pw}&sslmode=require", "JDBC form"),
        ("postgresql://alice:{pw}@127.0.0.1:{port}/app?schema=public&pgbouncer=true&connection_limit=1",
         "schema, pgbouncer, connection_limit: Prisma's own parameters"),
    ],
    ids=["asyncpg", "jdbc", "prisma"],
)
def test_client_specific_forms_are_a_note_and_the_chain_runs(pg: PgCluster, template: str, note: str) -> None:
    run = check(template.format(pw=PW, port=pg.port), "--json")
    assert run.code == 0, run.stdout
    assert run.statuses()["url"] in ("pass", "warn")
    assert run.statuses()["auth"] == "pass"
    assert note in notes(run)


@pytest.mark.parametrize(
    ("url", "words", "rule"),
    [
        ("postgresql://alice:pw-77@127.0.0.1:${DB_PORT}/app", "'${DB_PORT}': a variable that nobody expanded", None),
        ("postgres+asyncpg://alice:pw-77@127.0.0.1:1/app", "no 'postgres' dialect", "url-sqlalchemy-postgres-scheme"),
        ("postgresql://alice:pw-77@127.0.0.1:1/app?sslmode=require&sslrootcert=system",
         'weak sslmode "require" may not be used with sslrootcert=system', None),
    ],
    ids=["unexpanded-variable", "postgres-plus-driver", "sslrootcert-system-require"],
)
def test_real_mistakes_still_fail_at_url(url: str, words: str, rule: str | None) -> None:
    run = check(url, "--json", secret="pw-77")
    assert run.code == 1
    assert run.report["failed_probe"] == "url"
    assert words in run.probe("url")["summary"]
    assert run.statuses() == {"url": "fail", **{n: "skip" for n in PROBE_ORDER[1:]}}
    if rule:
        assert rule in run.rule_ids("url")


def test_a_hash_in_the_password_is_a_warning_libpq_accepts(closed_port: object) -> None:
    host, port = closed_port  # type: ignore[misc]
    run = check(f"postgresql://alice:pa#ss-77@{host}:{port}/app", "--json", secret="pa#ss-77")
    url = run.probe("url")
    assert url["status"] == "warn"
    assert run.rule_ids("url")[0] == "url-password-hash"
    assert "SQLAlchemy, node-postgres" in url["summary"] and "%23" in url["next_step"]
    assert run.statuses()["tcp"] == "fail"


def test_endpoint_as_a_plain_parameter_gets_the_options_form() -> None:
    run = check("postgresql://alice:pw-77@127.0.0.1:1/app?endpoint=ep-cool-darkness-123456&sslmode=require",
                "--json", secret="pw-77")
    assert run.report["failed_probe"] == "url"
    step = run.report["verdict"]["next_step"]
    assert "options=endpoint%3Dep-cool-darkness-123456" in step
    assert "endpoint=ep-cool-darkness-123456;<password>" in step


def test_jdbc_ssl_true_is_checked_as_pgjdbc_means_it(pg: PgCluster) -> None:
    """pgjdbc's ssl=true alone is verify-full against the trust store: a private CA fails there, as in Java."""
    run = check(f"jdbc:postgresql://127.0.0.1:{pg.port}/app?user=alice&password={PW}&ssl=true", "--json")
    assert run.report["target"]["dsn"].endswith("?sslmode=verify-full&sslrootcert=system")
    assert "pgjdbc's ssl=true is sslmode=verify-full" in notes(run)
    assert run.report["failed_probe"] == "tls"
