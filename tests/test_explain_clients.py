"""Whole pastes from client families beyond libpq, node-postgres and pgjdbc, through the CLI as a user runs it.

The pastes are in tests/data/pastes/ (its README says which client printed each and how). Each test checks
what the user reads: the exit code, the rule named first, its layer, and the words of the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from neondoctor.cli import cli
from neondoctor.exitcodes import ExitCode
from neondoctor.rules import load_rules

PASTES = Path(__file__).parent / "data" / "pastes"
RULESET = load_rules(env={})


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.delenv("NEONDOCTOR_RULES", raising=False)
    monkeypatch.setenv("NEONDOCTOR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))  # parsed once per run
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.mark.parametrize(
    ("name", "rule_id", "layer", "fix_words", "excerpt"),
    [
        pytest.param(
            "prisma_p1001_neon.log",
            "tcp-timeout",
            "tcp",
            ("connect_timeout", "cold start"),
            "Error: P1001: Can't reach database server at `ep-tight-mountain-a4labwa2",
            id="prisma-p1001-neon",
        ),
        pytest.param(
            "pgx_dial_timeout.log",
            "tcp-timeout",
            "tcp",
            ("connect_timeout", "5432"),
            "Unable to connect to database: failed to connect to `host=127.0.0.1",
            id="pgx-dial-io-timeout",
        ),
        pytest.param(
            "rails_pg_connection_bad.log",
            "tcp-connection-refused",
            "tcp",
            ("port", "start it", "pg_ctl start"),
            "/usr/share/rubygems-integration/all/gems/activerecord",
            id="rails-pg-connection-bad",
        ),
        pytest.param(
            "supavisor_node_pg.log",
            "pooler-supavisor-tenant-not-found",
            "pooler",
            ("<role>.<project-ref>", "region", "paused"),
            "Database connection failed: error: Tenant or user not found",
            id="supavisor-tenant-not-found",
        ),
        pytest.param(
            "jdbc_auth_type_10.log",
            "client-scram-unsupported",
            "client",
            ("42.2.0", "libpq 10", "Upgrade"),
            "### Error querying database.  Cause: org.postgresql.util.PSQLException: The authentication type 10",
            id="old-pgjdbc-auth-type-10",
        ),
    ],
)
def test_a_whole_paste_names_the_layer_and_the_fix(
    name: str, rule_id: str, layer: str, fix_words: tuple[str, ...], excerpt: str
) -> None:
    result = CliRunner().invoke(cli, ["explain", "--file", str(PASTES / name), "--json"])
    assert result.exit_code == ExitCode.OK, result.output
    top = json.loads(result.stdout)["matches"][0]
    assert (top["id"], top["layer"]) == (rule_id, layer)
    assert excerpt in top["excerpt"]
    fix = " ".join(top["fix"]).lower()
    missing = [word for word in fix_words if word.lower() not in fix]
    assert not missing, f"fix does not mention {missing}: {fix}"


def test_the_text_report_of_a_supavisor_paste_says_what_to_change() -> None:
    result = CliRunner().invoke(cli, ["explain", "--file", str(PASTES / "supavisor_node_pg.log")])
    assert result.exit_code == ExitCode.OK
    title = RULESET.by_id["pooler-supavisor-tenant-not-found"].title
    assert f"{title}  [pooler-supavisor-tenant-not-found]" in result.stdout
    assert "layer pooler" in result.stdout
    assert "<role>.<project-ref>" in result.stdout


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        pytest.param(
            "failed to connect to `host=127.0.0.1 user=alice database=app`: failed SASL auth "
            '(FATAL: password authentication failed for user "alice" (SQLSTATE 28P01))',
            "auth-password-failed",
            id="pgx-28P01",
        ),
        pytest.param(
            "failed to connect to `host=db.wrong.invalid user=alice database=app`: hostname resolving error "
            "(lookup db.wrong.invalid on 10.255.255.53:53: no such host)",
            "dns-host-not-found",
            id="pgx-no-such-host",
        ),
        pytest.param("pq: SSL is not enabled on the server", "tls-server-no-ssl", id="lib-pq-no-ssl"),
        pytest.param(
            "KnexTimeoutError: Knex: Timeout acquiring a connection. The pool is probably full. "
            "Are you missing a .transacting(trx) call?",
            "client-knex-pool-timeout",
            id="knex-pool",
        ),
        pytest.param("Error: write CONNECT_TIMEOUT 127.0.0.1:56451", "tcp-timeout", id="postgres-js-timeout"),
        pytest.param(
            'unrecognized configuration parameter "connect_timeout" (SQLSTATE 42704)',
            "client-url-parameter-sent-as-setting",
            id="not-postgres-js-timeout",
        ),
        pytest.param(
            "** (DBConnection.ConnectionError) tcp connect (localhost:5432): connection refused - :econnrefused",
            "tcp-connection-refused",
            id="postgrex-econnrefused",
        ),
        pytest.param(
            "2026/12/04 14:53:10 pq: unknown authentication response: 10",
            "client-scram-unsupported",
            id="lib-pq-1.0-scram",
        ),
        pytest.param(
            "org.postgresql.util.PSQLException: 10 yetkinlendirme tipi desteklenmemektedir. pg_hba.conf dosy"
            "anızı istemcinin IP adresini ya da subnetini içerecek şekilde ayarlayıp ayarlamadığınızı ve sür"
            "ücü tarafından desteklenen yetkilendirme yöntemlerinden birisini kullanıp kullanmadığını kontro"
            "l ediniz.",
            "client-scram-unsupported",
            id="pgjdbc-tr-auth-type-10",
        ),
        pytest.param(
            "java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out "
            "after 1005ms.",
            "client-hikari-pool-timeout",
            id="hikari-pool",
        ),
        pytest.param("FATAL:  server conn crashed?", "pooler-server-conn-crashed", id="pgbouncer-server-conn-crashed"),
    ],
)
def test_one_line_from_a_new_family_gets_its_rule(text: str, rule_id: str) -> None:
    result = CliRunner().invoke(cli, ["explain", "--json", text])
    assert result.exit_code == ExitCode.OK, result.output
    assert json.loads(result.stdout)["matches"][0]["id"] == rule_id
