"""`neondoctor check` end to end, through the CLI, against real PostgreSQL servers on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import psycopg
import pytest
from click.testing import CliRunner
from peers import NeonPresets, PgProtocolPeer, PgScript
from pgcluster import ALICE_PASSWORD, PgCluster

from neondoctor.cli import cli

PROBE_ORDER = ["url", "dns", "tcp", "tls", "auth", "slots", "tables"]
NEON_HOST = "ep-cool-darkness-123456.us-east-2.aws.neon.tech"
CLEAN_ENV = {name: None for name in ("DATABASE_URL", "PGHOST", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGPORT",
                                       "PGSSLMODE", "PGHOSTADDR", "PGSERVICE", "NO_COLOR")}
LOG_COMPLAINTS = ("ERROR:", "FATAL:", "PANIC:", "could not receive data from client", "incomplete startup packet",
                  "could not accept SSL connection", "unexpected EOF", "connection reset")


def secret_forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}


def assert_no_secret(text: str, secret: str = ALICE_PASSWORD) -> None:
    """A short test password ("pw") is looked for as a whole token: random temp-dir names hold such letters."""
    import re

    for form in secret_forms(secret):
        if len(secret) < 6:
            pattern = rf"(?<![A-Za-z0-9]){re.escape(form)}(?![A-Za-z0-9])"
            assert not re.search(pattern, text), f"password leaked as {form!r}"
        else:
            assert form not in text, f"password leaked as {form!r}"


class Run:
    def __init__(self, code: int, stdout: str, stderr: str, seconds: float) -> None:
        self.code, self.stdout, self.stderr, self.seconds = code, stdout, stderr, seconds

    @property
    def report(self) -> dict[str, Any]:
        return json.loads(self.stdout)

    def probe(self, name: str) -> dict[str, Any]:
        return next(p for p in self.report["probes"] if p["name"] == name)

    def statuses(self) -> dict[str, str]:
        return {p["name"]: p["status"] for p in self.report["probes"]}

    def rule_ids(self, name: str) -> list[str]:
        return [m["id"] for m in self.probe(name)["matches"]]


def check(*args: str, secret: str | None = ALICE_PASSWORD, env: dict[str, str | None] | None = None) -> Run:
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["check", *args], env={**CLEAN_ENV, **(env or {})})
    seconds = time.monotonic() - started
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    run = Run(result.exit_code, result.stdout, result.stderr, seconds)
    if secret:
        assert_no_secret(run.stdout + run.stderr, secret)
    return run


def check_both(*args: str, **kwargs: Any) -> tuple[Run, Run]:
    """The same check as JSON and as verbose text: both must agree on the exit code, neither may leak."""
    as_json = check(*args, "--json", **kwargs)
    as_text = check(*args, "-v", **kwargs)
    assert as_json.code == as_text.code
    return as_json, as_text


def assert_failed_at(run: Run, probe: str, rules: set[str]) -> dict[str, Any]:
    assert run.code == 1, run.stdout
    report = run.report
    assert report["verdict"]["status"] == "fail"
    assert report["verdict"]["failed_probe"] == probe, report["verdict"]
    failed = run.probe(probe)
    assert failed["status"] == "fail"
    ids = [m["id"] for m in failed["matches"]]
    assert ids and ids[0] in rules, f"top rule {ids[:1]} not in {rules}; summary: {failed['summary']}"
    later = PROBE_ORDER[PROBE_ORDER.index(probe) + 1 :]
    assert all(run.probe(name)["status"] == "skip" and run.probe(name)["summary"] == f"blocked by {probe}"
               for name in later)
    return failed


# --------------------------------------------------------------------------- healthy


def test_healthy_check_with_verify_full_passes_every_probe(pg: PgCluster) -> None:
    url = pg.url(host="localhost", **pg.verify_full_params())
    as_json, as_text = check_both(url, "--expect-tables", 'users,orders,billing.invoices,"Accounts"')
    assert as_json.code == 0, as_text.stdout
    assert as_json.statuses() == dict.fromkeys(PROBE_ORDER, "pass"), as_text.stdout
    verdict = as_json.report["verdict"]
    assert verdict == {**verdict, "status": "pass", "failed_probe": None}
    auth = as_json.probe("auth")["details"]
    assert auth["user"] == "alice" and auth["database"] == "app" and auth["tls"] is True
    assert auth["server_version"].split(".")[0] == str(pg.version // 10000)
    lines = as_text.stdout.splitlines()
    for name in PROBE_ORDER:
        assert any(line.startswith(f"[✓] {name}") for line in lines), as_text.stdout
    assert lines[-1].startswith("✓ ")


def test_healthy_check_is_polite_to_the_server(pg: PgCluster) -> None:
    """At most 2 connections, no complaint in the server log, and nothing written (read-only session)."""
    url = pg.url(host="127.0.0.1", options="-c default_transaction_read_only=on", **pg.verify_full_params())
    mark = pg.log_mark()
    run = check(url, "--json", "--expect-table", "users")
    assert run.code == 0, run.stdout
    log = pg.wait_for_log(r"disconnection: .*user=alice", mark)
    time.sleep(0.2)
    log = pg.log_since(mark)
    assert log.count("connection received") <= 2, log
    for complaint in LOG_COMPLAINTS:
        assert complaint not in log, log
    assert_no_secret(log)


def test_text_output_is_plain_without_a_tty_and_colour_never_leaks(pg: PgCluster) -> None:
    run = check(pg.url(sslmode="require"))
    assert run.code == 0, run.stdout
    assert "\x1b[" not in run.stdout
    assert run.stdout.splitlines()[0].startswith("Checking postgresql://alice:****@")


# --------------------------------------------------------------------------- auth failures


def test_hostssl_only_server_refuses_sslmode_disable(pg: PgCluster) -> None:
    with pg.hba(["hostssl all all 127.0.0.1/32 scram-sha-256", "hostssl all all ::1/128 scram-sha-256"]):
        as_json, as_text = check_both(pg.url(sslmode="disable"))
    failed = assert_failed_at(as_json, "auth", {"auth-hba-no-entry"})
    assert "no pg_hba.conf entry" in failed["summary"]
    assert "no encryption" in failed["details"]["error"]
    assert "Failed at auth" in as_text.stdout.splitlines()[-1]


def test_wrong_password_is_auth_password_failed(pg: PgCluster) -> None:
    as_json, as_text = check_both(pg.url(password="not-the-password", sslmode="require"))
    failed = assert_failed_at(as_json, "auth", {"auth-password-failed"})
    assert 'password authentication failed for user "alice"' in failed["summary"]
    assert "[auth-password-failed]" in as_text.stdout
    assert_no_secret(as_text.stdout, "not-the-password")


def test_unknown_role_reads_like_a_wrong_password_and_the_advice_says_both(pg: PgCluster) -> None:
    as_json, as_text = check_both(pg.url(user="ghost", password="whatever1", sslmode="require"), secret="whatever1")
    failed = assert_failed_at(as_json, "auth", {"auth-password-failed", "auth-role-does-not-exist"})
    # PostgreSQL under scram-sha-256 does not tell an unknown role from a wrong password.
    assert 'password authentication failed for user "ghost"' in failed["details"]["error"]
    assert "wrong password" in failed["summary"] and "no role 'ghost'" in failed["summary"]
    assert "no role 'ghost'" in as_text.stdout.splitlines()[-1]


def test_missing_database(pg: PgCluster) -> None:
    as_json, _ = check_both(pg.url(dbname="nosuchdb", sslmode="require"))
    failed = assert_failed_at(as_json, "auth", {"database-does-not-exist"})
    assert failed["summary"] == 'database "nosuchdb" does not exist'


def test_hba_reject(pg: PgCluster) -> None:
    with pg.hba(["host all alice 127.0.0.1/32 reject", "host all all 127.0.0.1/32 scram-sha-256"]):
        as_json, _ = check_both(pg.url(sslmode="require"))
    failed = assert_failed_at(as_json, "auth", {"auth-hba-reject"})
    assert "pg_hba.conf rejects connection" in failed["summary"]


# --------------------------------------------------------------------------- slots

SLOTS = {"max_connections": 7, "superuser_reserved_connections": 2}
"""alice may use 5 of the 7 slots; the last 2 are for superusers."""


@pytest.fixture
def slots_pg(pg_factory: Callable[..., PgCluster]) -> Iterator[PgCluster]:
    cluster = pg_factory(ssl="ca", settings=SLOTS)
    _wait_for_no_clients(cluster)
    yield cluster
    _wait_for_no_clients(cluster)


@pytest.fixture
def hold(slots_pg: PgCluster) -> Iterator[Callable[..., None]]:
    """``hold(n, superuser=False)``: keep n connections open for the test."""
    held: list[psycopg.Connection[Any]] = []

    def take(count: int, *, superuser: bool = False) -> None:
        for _ in range(count):
            if superuser:
                held.append(slots_pg.admin("app"))
            else:
                held.append(psycopg.connect(**slots_pg.conninfo("bob", sslmode="require"), connect_timeout=5))

    yield take
    for conn in held:
        conn.close()


def _wait_for_no_clients(cluster: PgCluster) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = cluster.execute(
            "select count(*) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()"
        )
        if rows[0][0] == 0:
            return
        time.sleep(0.02)
    raise AssertionError("connections from an earlier test are still open")


def test_slots_pass_with_pool_advice(slots_pg: PgCluster) -> None:
    run = check(slots_pg.url(**slots_pg.verify_full_params()), "--json")
    assert run.code == 0
    slots = run.probe("slots")
    assert slots["status"] == "pass"
    details = slots["details"]
    assert (details["usable"], details["left"]) == (5, 4)
    assert (details["pool_size"], details["max_overflow"]) == (2, 2)


def test_slots_warn_at_80_percent_with_a_pool_that_fits(slots_pg: PgCluster, hold: Callable[..., None]) -> None:
    hold(3)
    as_json, as_text = check_both(slots_pg.url(**slots_pg.verify_full_params()))
    assert as_json.code == 0
    slots = as_json.probe("slots")
    assert slots["status"] == "warn", slots
    assert slots["details"]["left"] == 1 and slots["details"]["used_pct"] == 80
    assert "pool_size=1, max_overflow=0" in slots["next_step"]
    assert "pool_size + max_overflow = 1 ≤ 1 slots left" in slots["next_step"]
    assert "pooler" in slots["next_step"]
    assert as_json.report["verdict"]["status"] == "warn"
    assert "[!] slots" in as_text.stdout
    assert "pool_size=1" in as_text.stdout.splitlines()[-1]


def test_slots_fail_when_the_check_takes_the_last_slot(slots_pg: PgCluster, hold: Callable[..., None]) -> None:
    hold(4)
    run = check(slots_pg.url(**slots_pg.verify_full_params()), "--json")
    failed = assert_failed_at(run, "slots", {"slots-reserved"})
    assert failed["details"]["left"] == 0
    assert "no connection slot left for alice" in failed["summary"]


def test_reserved_slots_refuse_a_non_superuser_at_auth(slots_pg: PgCluster, hold: Callable[..., None]) -> None:
    hold(5)
    as_json, as_text = check_both(slots_pg.url(**slots_pg.verify_full_params()))
    failed = assert_failed_at(as_json, "auth", {"slots-reserved"})
    assert "remaining connection slots are reserved" in failed["summary"]
    assert "slots problem" in as_json.report["verdict"]["summary"]
    assert "slots problem" in as_text.stdout.splitlines()[-1]


def test_too_many_clients_when_every_slot_is_taken(slots_pg: PgCluster, hold: Callable[..., None]) -> None:
    hold(5)
    hold(2, superuser=True)
    as_json, _ = check_both(slots_pg.url(**slots_pg.verify_full_params()))
    failed = assert_failed_at(as_json, "auth", {"slots-too-many-clients"})
    assert "sorry, too many clients already" in failed["summary"]
    assert "slots problem" in as_json.report["verdict"]["summary"]


LIMITS_SQL = (
    "ALTER ROLE bob CONNECTION LIMIT 2",
    "CREATE DATABASE tiny OWNER alice CONNECTION LIMIT 1",
)
"""bob may hold 2 connections in all; database tiny takes 1 connection at a time."""


@pytest.fixture
def limits_pg(pg_factory: Callable[..., PgCluster]) -> Iterator[PgCluster]:
    cluster = pg_factory(ssl="ca", setup_sql=LIMITS_SQL)
    _wait_for_no_clients(cluster)
    yield cluster
    _wait_for_no_clients(cluster)


def test_slots_name_the_role_connection_limit_when_it_binds(limits_pg: PgCluster) -> None:
    run = check(limits_pg.url("bob", sslmode="require"), "--json", secret=limits_pg.passwords["bob"])
    assert run.code == 0, run.stdout
    details = run.probe("slots")["details"]
    assert details["rolconnlimit"] == 2 and details["limited_by"] == "rolconnlimit of bob"
    assert (details["usable"], details["left"]) == (2, 1)


def test_slots_fail_at_the_role_limit_with_its_own_rule(limits_pg: PgCluster) -> None:
    held = psycopg.connect(**limits_pg.conninfo("bob", sslmode="require"), connect_timeout=5)
    try:
        as_json, as_text = check_both(limits_pg.url("bob", sslmode="require"), secret=limits_pg.passwords["bob"])
    finally:
        held.close()
    failed = assert_failed_at(as_json, "slots", {"slots-role-connection-limit"})
    assert "no connection slot left for bob: rolconnlimit of bob reached" in failed["summary"]
    assert "raise the limit (rolconnlimit of bob)" in failed["next_step"]
    assert "rolconnlimit of bob" in as_text.stdout


def test_slots_fail_at_the_database_limit_with_its_own_rule(limits_pg: PgCluster) -> None:
    run = check(limits_pg.url(dbname="tiny", sslmode="require"), "--json")
    failed = assert_failed_at(run, "slots", {"slots-database-connection-limit"})
    assert failed["details"]["datconnlimit"] == 1 and failed["details"]["limited_by"] == "datconnlimit of tiny"
    assert "no connection slot left for alice: datconnlimit of tiny reached" in failed["summary"]


# --------------------------------------------------------------------------- tables


def test_missing_tables_get_near_matches(pg: PgCluster) -> None:
    url = pg.url(sslmode="require")
    as_json, as_text = check_both(
        url, "--expect-table", "nosuch", "--expect-table", "accounts", "--expect-table", "invoices",
        "--expect-table", "users",
    )
    failed = assert_failed_at(as_json, "tables", {"tables-relation-missing"})
    expected = {e["name"]: e for e in failed["details"]["expected"]}
    assert expected["users"]["status"] == "ok"
    assert [expected[n]["status"] for n in ("nosuch", "accounts", "invoices")] == ["missing"] * 3
    assert "near" not in expected["nosuch"]
    assert expected["accounts"]["near"][0].startswith('"Accounts"')
    assert expected["invoices"]["near"][0].startswith("billing.invoices")
    assert "not on the search_path" in expected["invoices"]["near"][0]
    assert '"Accounts"' in as_text.stdout and "billing.invoices" in as_text.stdout
    assert as_json.report["verdict"]["next_step"].startswith('Use "Accounts" instead of accounts')


def test_table_without_select_is_not_readable(pg: PgCluster) -> None:
    as_json, _ = check_both(pg.url("bob", sslmode="require"), "--expect-tables", "users,orders",
                            secret=pg.passwords["bob"])
    failed = as_json.probe("tables")
    assert as_json.code == 1 and failed["status"] == "fail"
    assert as_json.report["verdict"]["failed_probe"] == "tables"
    orders = next(e for e in failed["details"]["expected"] if e["name"] == "orders")
    assert orders["status"] == "not readable"
    assert "GRANT SELECT ON public.orders TO bob" in failed["next_step"]


def test_no_expectations_counts_tables_on_the_search_path(pg: PgCluster) -> None:
    run = check(pg.url(sslmode="require"), "--json")
    tables = run.probe("tables")
    assert tables["status"] == "pass"
    assert tables["details"]["on_search_path"] == {"public": 3}
    empty = check(pg.url(user="postgres", dbname="postgres", sslmode="require"), "--json",
                  secret=pg.passwords["postgres"])
    assert empty.code == 0
    assert empty.probe("tables")["status"] == "warn"
    assert "migrations" in empty.probe("tables")["summary"]


# --------------------------------------------------------------------------- Neon proxy replies


@pytest.mark.parametrize(
    ("script", "rule"),
    [
        (NeonPresets.endpoint_not_specified, "neon-endpoint-id-missing"),
        (NeonPresets.quota_exceeded, "neon-compute-quota"),
        (NeonPresets.compute_unreachable, "neon-compute-unreachable"),
        (NeonPresets.ip_not_allowed, "neon-ip-not-allowed"),
    ],
    ids=["endpoint-id", "quota", "compute-unreachable", "ip-not-allowed"],
)
def test_neon_proxy_errors_fail_at_auth_with_the_neon_rule(
    script: PgScript,
    rule: str,
    pg_protocol_peer: Callable[..., PgProtocolPeer],
    dns_server: Callable[..., str],
) -> None:
    peer = pg_protocol_peer(script)
    nameserver = dns_server({NEON_HOST: "127.0.0.1"})
    url = peer.url(password="npg_SecretValue99", host=NEON_HOST, sslmode="verify-full", sslrootcert=peer.ca_path)
    as_json, as_text = check_both(url, "--nameserver", nameserver, secret="npg_SecretValue99")
    failed = assert_failed_at(as_json, "auth", {rule})
    assert failed["details"]["error"]
    assert f"[{rule}]" in as_text.stdout


# --------------------------------------------------------------------------- limits and usage


def test_silent_peer_cannot_hold_the_check_past_the_overall_cap(silent_peer: Any) -> None:
    host, port = silent_peer
    run = check(f"postgresql://alice:pw-silent-1@{host}:{port}/app?sslmode=require", "--json", "--total-timeout", "2",
                secret="pw-silent-1")
    assert run.seconds < 3.0, run.seconds
    assert run.code == 1
    assert run.report["verdict"]["status"] == "fail"


def test_no_target_anywhere_is_one_usage_line(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = check()
    assert run.code == 2
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neondoctor: error: no connection string")


@pytest.mark.parametrize(
    "args",
    [["--timeout", "0"], ["--total-timeout", "-1"], ["--nameserver", "dns.example"], ["--expect-table", "a.b.c"],
     ["--expect-table", '"unterminated'], ["--bogus"]],
)
def test_bad_options_are_usage_errors(args: list[str]) -> None:
    run = check("postgresql://alice@127.0.0.1:1/app", *args)
    assert run.code == 2
    assert len(run.stderr.strip().splitlines()) == 1


def test_url_errors_stop_the_chain_before_any_traffic() -> None:
    run = check("postgres+psycopg2://alice:hunter2hunter2@localhost:1/app?search_path=x", "--json",
                secret="hunter2hunter2")
    assert run.code == 1
    assert run.report["verdict"]["failed_probe"] == "url"
    assert run.statuses() == {"url": "fail", **{n: "skip" for n in PROBE_ORDER[1:]}}
    assert "url-sqlalchemy-postgres-scheme" in run.rule_ids("url")


def test_json_contract(pg: PgCluster) -> None:
    report = check(pg.url(password="wrong-pw-77"), "--json", secret="wrong-pw-77").report
    assert {"target", "probes", "verdict"} <= report.keys()
    assert {"dsn", "user", "host", "port", "database", "findings"} <= report["target"].keys()
    assert [p["name"] for p in report["probes"]] == PROBE_ORDER
    for probe in report["probes"]:
        assert {"name", "status", "duration_ms", "summary", "details", "matches"} <= probe.keys()
        assert probe["status"] in ("pass", "warn", "fail", "skip")
        assert isinstance(probe["duration_ms"], int | float)
    assert {"status", "failed_probe", "next_step"} <= report["verdict"].keys()
    assert report["verdict"]["failed_probe"] == "auth"
    assert report["verdict"]["next_step"]


def test_env_file_target_and_unix_socket(pg: PgCluster, tmp_path: Any) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text(f"DATABASE_URL='host={pg.socket_dir} port={pg.port} user=postgres dbname=app'\n")
    as_json, as_text = check_both("--env-file", str(env_file))
    assert as_json.code == 0, as_text.stdout
    statuses = as_json.statuses()
    assert statuses.pop("url") in ("pass", "warn")
    assert statuses == {"dns": "skip", "tcp": "skip", "tls": "skip", "auth": "pass", "slots": "pass", "tables": "pass"}
    assert as_json.probe("auth")["details"]["tls"] is False
    assert f"(from {env_file} (--env-file))" in as_text.stdout.splitlines()[0]
    assert "Unix socket" in as_json.probe("url")["summary"]


def test_colour_only_when_asked(pg: PgCluster) -> None:
    from neondoctor.render.text import render_check

    report = check(pg.url(password="wrong-pw-42"), "--json", secret="wrong-pw-42").report
    coloured = render_check(report, color=True)
    plain = render_check(report, color=False)
    assert "\x1b[" in coloured and "\x1b[" not in plain
    lines = plain.splitlines()
    assert any(line.startswith("[✗] auth ") for line in lines)
    assert any(line.startswith("[-] slots ") and line.endswith("blocked by auth") for line in lines)


def test_a_server_that_stalls_after_tls_is_cut_at_the_cap(pg_protocol_peer: Callable[..., PgProtocolPeer]) -> None:
    """libpq's connect_timeout cannot go below 2 s; the runner still stops within a second of the cap."""
    from peers import Sleep

    peer = pg_protocol_peer(PgScript(steps=(Sleep(5),), tls=True))
    run = check(peer.url(password="pw-stall-1", sslmode="verify-full", sslrootcert=peer.ca_path, host="localhost"),
                "--json", "--total-timeout", "1", secret="pw-stall-1")
    assert run.seconds < 2.0, run.seconds
    assert run.code == 1
    assert run.report["verdict"]["failed_probe"] == "auth"
    assert "overall cap 1 s" in run.probe("auth")["summary"]
    assert run.probe("slots")["summary"] == "timed out (overall cap 1 s)"


def test_slow_connects_to_neon_twice_are_not_called_a_wake_up(
    pg_protocol_peer: Callable[..., PgProtocolPeer], dns_server: Callable[..., str]
) -> None:
    """Every connect is slow here, so the one comparison connect shows it is the path, not a cold start."""
    from peers import AskPassword, Ready, Sleep, neon_proxy

    peer = pg_protocol_peer(neon_proxy(AskPassword(), Sleep(1.6), Ready(server_version="17.5")))
    nameserver = dns_server({NEON_HOST: "127.0.0.1"})
    url = peer.url(password="npg_WakeUp77", host=NEON_HOST, sslmode="verify-full", sslrootcert=peer.ca_path)
    as_json = check(url, "--nameserver", nameserver, "--json", secret="npg_WakeUp77")
    assert as_json.code == 0, as_json.stdout
    auth = as_json.probe("auth")
    assert auth["status"] == "warn"
    assert "slow connect twice" in auth["summary"] and "not a cold start" in auth["summary"]
    assert len([c for c in peer.connections if c.password]) == 2
    assert as_json.report["verdict"]["status"] == "warn"
    assert "path to Neon is slow" in as_json.report["verdict"]["next_step"]
    # The fake proxy answers no query: slots cannot tell, and says so instead of crashing.
    assert as_json.probe("slots")["status"] == "warn"
    assert "queries are not supported" in as_json.probe("slots")["summary"]
