"""Fault scenarios: the failing probe, the rule and a next step that follows from what the check measured.

Each case is a real server (tests/pgcluster.py) or a loopback peer (tests/peers.py); each asserts what
a user reads: the failing probe, the rule (if any), the next step's key words and the exit code.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from contract import validate
from peers import PgProtocolPeer, _StreamPeer
from pgcluster import PgCluster, _os_user, free_port, harness_ca, on_ci, session_dir, start_cluster
from test_check import check

from neondoctor.checklist import choose_next_step, fitting_fixes, make_verdict
from neondoctor.probes.base import CheckContext, CheckOptions, ProbeResult, Status
from neondoctor.rules import parse_rule
from neondoctor.target import parse_target

NEON_CONSOLE = "Neon console"


def verdict_of(run: Any) -> dict[str, Any]:
    return run.report["verdict"]


def assert_verdict(run: Any, probe: str, rule: str | None, *words: str, absent: tuple[str, ...] = ()) -> str:
    """The run failed at ``probe`` (exit 1) with ``rule`` on top, and its next step holds every word."""
    assert run.code == 1, run.stdout
    validate(run.stdout, "check")
    verdict = verdict_of(run)
    assert verdict["failed_probe"] == probe, verdict
    if rule is not None:
        assert verdict["rule"] == rule, verdict
    step = verdict["next_step"]
    for word in words:
        assert word.lower() in step.lower(), f"{word!r} not in next step: {step}"
    for word in absent:
        assert word.lower() not in step.lower(), f"{word!r} in next step: {step}"
    return step


# --------------------------------------------------------------------------- the choice itself


MATCH = {
    "id": "auth-password-failed",
    "layer": "auth",
    "title": "t",
    "cause": "c",
    "fix": ["Copy it from the Neon console", "Check VALID UNTIL", "Percent-encode"],
    "fix_when": ["neon", "not-neon", None],
    "docs": [],
    "excerpt": "",
}


def test_a_fix_tagged_for_neon_is_dropped_for_other_hosts_and_the_reverse() -> None:
    assert fitting_fixes(MATCH, neon=False)["fix"] == ["Check VALID UNTIL", "Percent-encode"]
    assert fitting_fixes(MATCH, neon=True)["fix"] == ["Copy it from the Neon console", "Percent-encode"]
    untagged = {**MATCH, "fix_when": None}
    assert fitting_fixes(untagged, neon=False) is untagged


def test_the_probe_evidence_beats_the_rule_and_the_rule_beats_a_generic_probe_step() -> None:
    exact = ProbeResult("tls", Status.FAIL, "expired", matches=[MATCH], next_step="Renew it", exact_next_step=True)
    assert choose_next_step(exact) == ("Renew it", "probe")
    generic = ProbeResult("auth", Status.FAIL, "failed", matches=[MATCH], next_step="Try psql")
    assert choose_next_step(generic) == ("Copy it from the Neon console", "rule:auth-password-failed")
    bare = ProbeResult("auth", Status.FAIL, "failed", next_step="Try psql")
    assert choose_next_step(bare) == ("Try psql", "probe")


def test_the_verdict_says_where_its_next_step_comes_from() -> None:
    ctx = CheckContext(parse_target("postgresql://u@db.example.invalid/app"), CheckOptions())
    failed = ProbeResult("auth", Status.FAIL, "x", matches=[fitting_fixes(MATCH, neon=False)])
    verdict = make_verdict([failed], ctx, ctx.options)
    assert verdict["next_step"] == "Check VALID UNTIL" and verdict["next_step_from"] == "rule:auth-password-failed"


def test_lint_rejects_a_fix_step_with_an_unknown_host_tag() -> None:
    raw = {
        "id": "some-rule",
        "layer": "auth",
        "blame": "user",
        "title": "t",
        "match": {"any": ["password authentication failed"]},
        "cause": "c",
        "fix": [{"when": "heroku", "step": "Do this"}],
        "examples": [{"text": 'FATAL:  password authentication failed for user "a"', "source": "psql 15.18, lab"}],
    }
    rule, problems = parse_rule(raw, "x.yaml", "user")
    assert rule is None and any("tagged fix step" in str(p) for p in problems), problems
    raw["fix"] = [{"when": "not-neon", "step": "Do  this"}, "Then that"]
    rule, problems = parse_rule(raw, "x.yaml", "user")
    assert rule is not None and rule.fix == ["Do this", "Then that"] and rule.fix_when == ["not-neon", None]


# --------------------------------------------------------------------------- auth


@pytest.fixture(scope="module")
def expired_role_pg(pg_factory: Any) -> PgCluster:
    return pg_factory(ssl="ca", setup_sql=("CREATE ROLE carol LOGIN PASSWORD 'carolpw1' VALID UNTIL '2001-01-01'",))


def test_a_password_past_valid_until_on_a_self_hosted_server_gets_no_neon_advice(expired_role_pg: PgCluster) -> None:
    pg = expired_role_pg
    run = check(pg.url("carol", "carolpw1", sslmode="require"), "--json", secret="carolpw1")
    step = assert_verdict(run, "auth", "auth-password-failed", "VALID UNTIL", absent=(NEON_CONSOLE,))
    assert "ALTER ROLE" in step
    assert not any(fix.startswith("Copy the connection string") for fix in run.probe("auth")["matches"][0]["fix"])
    assert 'User "carol" has an expired password' in pg.log_text()
    validate(run.stdout, "check")


def test_rules_show_json_of_a_tagged_rule_keeps_fix_a_list_of_strings() -> None:
    from click.testing import CliRunner

    from neondoctor.cli import cli

    result = CliRunner().invoke(cli, ["rules", "show", "auth-password-failed", "--json"])
    data = validate(result.stdout, "rules.show")
    assert all(isinstance(step, str) for step in data["fix"])
    assert data["fix_when"][:2] == ["neon", "not-neon"]


# --------------------------------------------------------------------------- certificates


@pytest.fixture(autouse=True)
def no_default_root_cert(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """libpq's ~/.postgresql/root.crt and PGSSLROOTCERT must not change the verdicts under test."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)


CA_BUNDLE_ADVICE = ("sslrootcert=system", "system CA")


def test_an_expired_certificate_says_renew_or_check_the_clock(pg_factory: Any) -> None:
    expired = pg_factory(ssl="expired")
    run = check(expired.url(host="localhost", **expired.verify_full_params()), "--json")
    step = assert_verdict(run, "tls", "tls-cert-verify-failed", "Renew", "clock", absent=CA_BUNDLE_ADVICE)
    assert run.report["verdict"]["next_step_from"] == "probe"
    assert "expired on" in run.probe("tls")["summary"], step


def test_a_certificate_not_yet_valid_says_check_the_clock(pg_factory: Any) -> None:
    notyet = pg_factory(ssl="notyet")
    run = check(notyet.url(host="localhost", **notyet.verify_full_params()), "--json")
    assert_verdict(run, "tls", "tls-cert-verify-failed", "clock", absent=CA_BUNDLE_ADVICE)
    assert "certificate is not yet valid" in run.probe("tls")["summary"]
    assert "valid only from" in run.probe("tls")["summary"]


def test_a_server_without_its_intermediate_is_told_to_serve_the_full_chain(pg_factory: Any) -> None:
    nochain = pg_factory(ssl="nochain")
    run = check(nochain.url(host="localhost", **nochain.verify_full_params()), "--json")
    assert_verdict(run, "tls", "tls-cert-verify-failed", "full chain", "ssl_cert_file", absent=CA_BUNDLE_ADVICE)
    tls = run.probe("tls")
    assert "sends only its own certificate" in tls["summary"]
    assert tls["details"]["verification"]["certificates_served"] == 1


def test_an_expired_certificate_under_require_warns_and_names_the_renewal(pg_factory: Any) -> None:
    expired = pg_factory(ssl="expired")
    run = check(expired.url(sslmode="require"), "--json")
    assert run.code == 0 and run.report["verdict"]["status"] == "warn", run.stdout
    assert run.report["verdict"]["failed_probe"] is None
    assert "Renew" in run.report["verdict"]["next_step"]


def test_a_tls_inspecting_proxy_in_front_of_a_neon_host_is_named(pg_protocol_peer: Any) -> None:
    from peers import NeonPresets
    from psycopg import pq

    if pq.version() < 160000:
        pytest.skip("sslrootcert=system needs libpq >= 16")
    peer = pg_protocol_peer(NeonPresets.accepts)
    url = peer.url(host=NEON_HOST, hostaddr="127.0.0.1", sslmode="verify-full", sslrootcert="system")
    run = check(url, "--json", secret="pw")
    assert_verdict(run, "tls", None, "intercepts TLS", absent=CA_BUNDLE_ADVICE)
    assert "neondoctor test CA" in run.probe("tls")["summary"]

    loose = check(peer.url(host=NEON_HOST, hostaddr="127.0.0.1", sslmode="require"), "--json", secret="pw")
    tls = loose.probe("tls")
    assert tls["status"] == "warn" and "intercepts TLS" in tls["summary"], tls


NEON_HOST = "ep-cool-darkness-123456.us-east-2.aws.neon.tech"


# --------------------------------------------------------------------------- TLS versions, channel binding


def test_a_client_that_requires_a_tls_version_the_server_does_not_offer(pg_factory: Any) -> None:
    old = pg_factory(ssl="ca", settings={"ssl_max_protocol_version": "TLSv1.2"})
    run = check(old.url(sslmode="require", ssl_min_protocol_version="TLSv1.3"), "--json")
    assert_verdict(run, "tls", None, "ssl_min_protocol_version", "overlap")
    assert "TLSv1.3 or newer" in run.probe("tls")["summary"]


def test_a_client_capped_below_the_server_minimum_tls_version(pg_factory: Any) -> None:
    strict = pg_factory(ssl="ca", settings={"ssl_min_protocol_version": "TLSv1.3"})
    run = check(strict.url(sslmode="require", ssl_max_protocol_version="TLSv1.2"), "--json")
    assert_verdict(run, "tls", None, "overlap", "ssl_max_protocol_version")
    assert "this client allows only TLSv1.2" in run.probe("tls")["summary"]


def test_channel_binding_require_against_a_server_without_tls(pg_nossl: PgCluster) -> None:
    run = check(pg_nossl.url(channel_binding="require"), "--json")
    assert_verdict(run, "tls", "tls-channel-binding-without-ssl", "Turn TLS on", "channel_binding")


# --------------------------------------------------------------------------- manners


LOG_COMPLAINTS = ("ERROR:", "FATAL:", "PANIC:", "could not receive data from client", "incomplete startup packet",
                  "could not accept SSL connection", "unexpected EOF", "connection reset", "alert")


@pytest.mark.parametrize(
    ("sslmode", "with_root"),
    [
        ("disable", False),
        ("allow", False),
        ("prefer", False),
        ("require", False),
        ("prefer", True),
        ("require", True),
        ("verify-ca", True),
        ("verify-full", True),
    ],
)
def test_a_healthy_check_opens_two_connections_and_leaves_no_error_line(
    pg: PgCluster, sslmode: str, with_root: bool
) -> None:
    params: dict[str, str] = {"sslmode": sslmode}
    if with_root:
        params["sslrootcert"] = str(pg.ca_path)
    mark = pg.log_mark()
    run = check(pg.url(host="localhost", **params), "--json")
    assert run.code == 0, run.stdout
    pg.wait_for_log(r"disconnection: .*user=alice", mark)
    time.sleep(0.3)
    log = pg.log_since(mark)
    assert log.count("connection received") <= 2, log
    noisy = [line for line in log.splitlines() if any(word in line for word in LOG_COMPLAINTS)]
    assert not noisy, log


# --------------------------------------------------------------------------- deadlines


class TricklePeer(_StreamPeer):
    """Answers one byte a second: after 'S', a TLS record that never ends; with ``error``, an ErrorResponse to
    the SSLRequest itself."""

    def __init__(self, *, error: bool = False) -> None:
        super().__init__()
        self.error = error

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        conn.recv(8)
        if self.error:
            body = b"SFATAL\0C08P01\0M" + b"x" * 40 + b"\0\0"
            payload = b"E" + (len(body) + 4).to_bytes(4, "big") + body
        else:
            conn.sendall(b"S")
            conn.recv(4096)
            payload = b"\x16\x03\x03\x40\x00" + b"\x02" * 60
        for byte in payload:
            if self._stop.wait(1.0):
                return
            conn.sendall(bytes([byte]))


def test_a_peer_that_trickles_one_byte_a_second_cannot_hold_tls_past_the_step_deadline(fake_peers: Any) -> None:
    peer = fake_peers._keep(TricklePeer())
    run = check(f"postgresql://alice:pw@127.0.0.1:{peer.port}/app?sslmode=require", "--json", "--timeout", "2",
                secret="pw")
    assert run.seconds < 4.5, run.seconds
    step = assert_verdict(run, "tls", None, "stalls")
    assert "did not finish within 2 s" in run.probe("tls")["summary"], step
    assert run.probe("tls")["duration_ms"] < 3000


def test_an_error_reply_trickled_a_byte_a_second_is_cut_at_the_step_deadline(fake_peers: Any) -> None:
    peer = fake_peers._keep(TricklePeer(error=True))
    run = check(f"postgresql://alice:pw@127.0.0.1:{peer.port}/app?sslmode=require", "--json", "--timeout", "2",
                secret="pw")
    assert run.seconds < 4.5, run.seconds
    assert_verdict(run, "tls", None, "answers far too slowly")
    assert "did not finish it within 2 s" in run.probe("tls")["summary"]
    assert run.probe("tls")["duration_ms"] < 3000


# --------------------------------------------------------------------------- tcp: firewall, cold start, IPv6


class SlowStartPeer(_StreamPeer):
    """Accepts TCP at once and answers the SSLRequest only after ``delay`` seconds (a server waking up)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        conn.recv(8)
        if not self._stop.wait(self.delay):
            conn.sendall(b"N")


def test_dropped_packets_are_a_firewall_told_by_the_silent_connect(blackhole: tuple[str, int]) -> None:
    host, port = blackhole
    run = check(f"postgresql://alice:pw@{host}:{port}/app", "--json", "--timeout", "1", secret="pw")
    step = assert_verdict(run, "tcp", "tcp-timeout", "no answer", "firewall")
    assert run.report["verdict"]["next_step_from"] == "probe", step


def test_a_slow_start_accepts_tcp_at_once_and_is_not_called_a_firewall(fake_peers: Any) -> None:
    peer = fake_peers._keep(SlowStartPeer(delay=3))
    run = check(f"postgresql://alice:pw@127.0.0.1:{peer.port}/app", "--json", "--timeout", "1", secret="pw")
    assert_verdict(run, "tls", None, "answers slowly", "cold start", absent=("firewall, security group",))
    summary = run.probe("tls")["summary"]
    assert "accepted TCP in" in summary and "not a firewall" in summary


def test_a_literal_ipv6_loopback_against_an_ipv4_only_server(pg_factory: Any) -> None:
    v4only = pg_factory(ssl="ca", ipv6=False)
    run = check(v4only.url(host="::1", sslmode="require"), "--json")
    assert_verdict(run, "tcp", "tcp-connection-refused", "IPv4 only", "listen_addresses")


def test_a_name_with_only_ipv6_addresses_against_an_ipv4_only_server(pg_factory: Any, dns_server: Any) -> None:
    v4only = pg_factory(ssl="ca", ipv6=False)
    ns = dns_server({"db.v6only.invalid": ["::1"]})
    run = check(v4only.url(host="db.v6only.invalid", sslmode="require"), "--json", "--nameserver", str(ns))
    assert_verdict(run, "tcp", "tcp-connection-refused", "only to IPv6", "listen_addresses")
    assert "the name gave only IPv6 addresses" in run.probe("tcp")["summary"]


# --------------------------------------------------------------------------- server states: retry never helps


def standby(hot_standby: bool) -> Iterator[PgCluster]:
    """A server held in standby mode (standby.signal, no primary to follow): in recovery for good."""
    cluster = start_cluster(ssl="ca", settings={"wal_level": "replica", "hot_standby": hot_standby})
    try:
        _os_user().run(["touch", str(cluster.datadir / "standby.signal")], cwd=cluster.basedir)
        cluster.restart()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def hot_standby_pg(pg_bindir: Any) -> Iterator[PgCluster]:
    yield from standby(True)


@pytest.fixture(scope="module")
def cold_standby_pg(pg_bindir: Any) -> Iterator[PgCluster]:
    yield from standby(False)


def test_a_standby_with_hot_standby_off_is_named_and_retry_is_not_advised(cold_standby_pg: PgCluster) -> None:
    run = check(cold_standby_pg.url(sslmode="require"), "--json")
    step = assert_verdict(run, "auth", "server-starting-up", "hot_standby", "primary", absent=("Retry with",))
    assert "will not help" in step
    assert run.probe("auth")["details"]["server_state"] == "standby-no-hot-standby"


def test_read_write_against_a_standby_says_point_at_the_primary(hot_standby_pg: PgCluster) -> None:
    run = check(hot_standby_pg.url(sslmode="require", target_session_attrs="read-write"), "--json")
    step = assert_verdict(run, "auth", "server-standby-target-session-attrs", "standby", "primary",
                          absent=("Retry with", "neondoctor check"))
    assert "will not help" in step


def test_a_standby_that_lets_us_in_is_reported_as_read_only(hot_standby_pg: PgCluster) -> None:
    run = check(hot_standby_pg.url(sslmode="require"), "--json")
    assert run.code == 0, run.stdout
    auth = run.probe("auth")
    assert auth["details"]["hot_standby"] is True and "read-only standby" in auth["summary"]


def test_a_smart_shutdown_in_progress_is_not_a_retry(pg_bindir: Any) -> None:
    import psycopg

    cluster = start_cluster(ssl="ca")
    try:
        held = psycopg.connect(**cluster.conninfo())
        cluster._pg_ctl("-m", "smart", "-W", "stop")
        cluster.wait_for_log(r"received smart shutdown request")
        run = check(cluster.url(sslmode="require"), "--json")
        step = assert_verdict(run, "auth", "server-starting-up", "shutting down", absent=("Retry with",))
        assert "will not help" in step
        held.close()
    finally:
        cluster.stop()


def test_a_socket_directory_with_no_server_behind_it(tmp_path: Any) -> None:
    empty = tmp_path / "sockets"
    empty.mkdir()
    run = check(f"postgresql://alice:pw@/app?host={empty}", "--json", secret="pw")
    step = assert_verdict(run, "auth", "tcp-unix-socket-missing", "No server has a socket", "start the server",
                          absent=("DATABASE_URL",))
    assert str(empty) in step


def test_a_socket_directory_whose_server_listens_on_another_port(pg: PgCluster) -> None:
    run = check(f"postgresql://alice:pw@/app?host={pg.socket_dir}&port=1", "--json", secret="pw")
    assert_verdict(run, "auth", "tcp-unix-socket-missing", f"port {pg.port}")


def test_a_pooler_whose_backend_is_down_hangs_the_login_after_a_quick_tls(pg_protocol_peer: Any) -> None:
    """PgBouncer with its server down: TCP and TLS answer in a millisecond, the login waits for a backend."""
    from peers import PgScript, Sleep

    peer = pg_protocol_peer(PgScript(steps=(Sleep(30),)))
    run = check(peer.url(sslmode="require"), "--json", "--timeout", "2", secret="pw")
    step = assert_verdict(run, "auth", None, "cannot reach its database server", "Check the server behind it")
    assert "PgBouncer" in step and step.startswith("TCP answered in")
    assert "login hung" in run.probe("auth")["summary"]


# --------------------------------------------------------------------------- client certificates


@pytest.fixture(scope="module")
def clientcert_pg(pg_factory: Any) -> PgCluster:
    """TLS with the harness CA as ssl_ca_file and hba asking for a client certificate whose CN is the user."""
    return pg_factory(
        ssl="ca",
        settings={"ssl_ca_file": str(harness_ca().path)},
        hba=["hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full"],
    )


def client_cert(directory: Any, cn: str, mode: int = 0o600) -> dict[str, str]:
    leaf = harness_ca().ca.issue_cert(cn, common_name=cn)
    cert, key = directory / f"{cn}.crt", directory / f"{cn}.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    os.chmod(key, mode)
    return {"sslcert": str(cert), "sslkey": str(key)}


def test_a_server_that_requires_a_client_certificate(clientcert_pg: PgCluster) -> None:
    run = check(clientcert_pg.url(sslmode="require"), "--json")
    assert_verdict(run, "auth", "auth-client-cert-required", "sslcert=", "sslkey=", "CN=alice")


def test_a_client_certificate_with_the_right_cn_passes(clientcert_pg: PgCluster, tmp_path: Any) -> None:
    run = check(clientcert_pg.url(sslmode="require", **client_cert(tmp_path, "alice")), "--json")
    assert run.code == 0, run.stdout
    assert run.probe("tls")["details"]["client_certificate"]["cn"] == "alice"


def test_a_client_certificate_whose_cn_is_another_user(clientcert_pg: PgCluster, tmp_path: Any) -> None:
    run = check(clientcert_pg.url(sslmode="require", **client_cert(tmp_path, "bob")), "--json")
    step = assert_verdict(run, "auth", "auth-password-failed", "CN=bob", "alice", "pg_ident.conf",
                          absent=("VALID UNTIL",))
    assert "CN mismatch" in clientcert_pg.log_text()
    assert "CN=bob, not the user alice" in " ".join(run.probe("tls")["details"].get("notes", [])), step


def test_a_client_key_that_others_can_read(clientcert_pg: PgCluster, tmp_path: Any) -> None:
    files = client_cert(tmp_path, "alice", mode=0o644)
    run = check(clientcert_pg.url(sslmode="require", **files), "--json")
    assert_verdict(run, "tls", "tls-client-key-permissions", "chmod 0600", files["sslkey"])


# --------------------------------------------------------------------------- Neon advice only for Neon


def test_a_missing_name_on_a_self_hosted_domain_gets_no_neon_console_advice(dns_server: Any) -> None:
    ns = dns_server({})
    run = check("postgresql://alice:pw@db.nowhere.invalid/app", "--json", "--nameserver", str(ns), secret="pw")
    assert_verdict(run, "dns", "dns-host-not-found", "typos", absent=("console", "Neon"))


def test_a_wrong_password_on_neon_keeps_the_neon_console_step(pg_protocol_peer: Any) -> None:
    from peers import NeonPresets

    peer = pg_protocol_peer(NeonPresets.password_failed)
    url = peer.url(host=NEON_HOST, hostaddr="127.0.0.1", sslmode="verify-full", sslrootcert=str(peer.ca_path))
    run = check(url, "--json", secret="pw")
    assert_verdict(run, "auth", "auth-password-failed", "Neon console", absent=("VALID UNTIL",))


PGBOUNCER = shutil.which("pgbouncer") or next(
    (path for path in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(path)), None
)


@pytest.fixture
def pgbouncer_without_backend() -> Iterator[int]:
    """A real PgBouncer with client TLS whose [databases] entry points at a port where nothing listens."""
    if PGBOUNCER is None:
        if on_ci():
            pytest.fail("pgbouncer is missing: .ci/run must install it", pytrace=False)
        pytest.skip("pgbouncer is not installed")
    directory = Path(tempfile.mkdtemp(prefix="pgbouncer-", dir=session_dir()))
    os.chmod(directory, 0o755)
    cert, key = harness_ca().issue(directory, ["localhost", "127.0.0.1"])
    port, dead = free_port(ipv6=False), free_port(ipv6=False)
    (directory / "userlist.txt").write_text('"alice" "pw"\n')
    (directory / "pgbouncer.ini").write_text(
        f"[databases]\napp = host=127.0.0.1 port={dead} dbname=app\n[pgbouncer]\nlisten_addr = 127.0.0.1\n"
        f"listen_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {directory}/userlist.txt\n"
        f"client_tls_sslmode = allow\nclient_tls_key_file = {key}\nclient_tls_cert_file = {cert}\n"
        f"logfile = {directory}/pgbouncer.log\npidfile = {directory}/pgbouncer.pid\n"
    )
    _os_user().own(directory, *directory.iterdir())
    process = subprocess.Popen(_os_user().argv([PGBOUNCER, str(directory / "pgbouncer.ini")]),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(f"pgbouncer did not start: {(directory / 'pgbouncer.log').read_text()}")
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def test_a_real_pgbouncer_whose_server_is_down(pgbouncer_without_backend: int) -> None:
    url = f"postgresql://alice:pw@127.0.0.1:{pgbouncer_without_backend}/app?sslmode=require"
    run = check(url, "--json", "--timeout", "2", secret="pw")
    assert run.seconds < 5, run.seconds
    step = assert_verdict(run, "auth", None, "cannot reach its database server", "PgBouncer")
    assert step.startswith("TCP answered in") and "helps only if that server is merely slow" in step
    assert run.probe("tcp")["status"] == "pass" and run.probe("tls")["details"]["handshake_ms"] < 1000
    assert "(a tcp problem)" not in run.report["verdict"]["summary"], step


class PublicCaLookalikePeer(PgProtocolPeer):
    """A Neon-like peer whose certificate comes from a CA named like Let's Encrypt that no root store holds."""

    def start(self) -> PublicCaLookalikePeer:
        import ssl

        import trustme

        super().start()
        leaf = trustme.CA(organization_name="Let's Encrypt").issue_cert(*self._cert_names)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        leaf.configure_cert(context)
        context.set_alpn_protocols(["postgresql"])
        self._context = context
        return self


def test_a_public_ca_missing_from_an_old_root_store_is_not_called_an_interception(fake_peers: Any) -> None:
    from peers import NeonPresets
    from psycopg import pq

    if pq.version() < 160000:
        pytest.skip("sslrootcert=system needs libpq >= 16")
    peer = fake_peers._keep(PublicCaLookalikePeer(NeonPresets.accepts))
    url = peer.url(host=NEON_HOST, hostaddr="127.0.0.1", sslmode="verify-full", sslrootcert="system")
    run = check(url, "--json", secret="pw")
    assert_verdict(run, "tls", "tls-cert-verify-failed", "CA bundle", "ca-certificates", absent=("intercept",))


def test_a_neon_login_that_hangs_after_a_quick_tls_is_the_compute_waking(pg_protocol_peer: Any) -> None:
    from peers import Sleep, neon_proxy

    peer = pg_protocol_peer(neon_proxy(Sleep(30)))
    url = peer.url(host=NEON_HOST, hostaddr="127.0.0.1", sslmode="verify-full", sslrootcert=str(peer.ca_path))
    run = check(url, "--json", "--timeout", "2", secret="pw")
    step = assert_verdict(run, "auth", None, "compute", "connect_timeout", absent=("PgBouncer",))
    assert "waking" in step
