from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import dns.resolver
import psycopg
import pytest
from peers import NEON_ENDPOINT_NOT_SPECIFIED, NEON_INSECURE, NODATA, SERVFAIL, SILENT, NeonPresets, PgProtocolPeer
from pgcluster import ALICE_PASSWORD, BINDIR_ENV, MISSING_BINARIES, PgCluster

HERE = Path(__file__).resolve().parent
NEON_HOST = "ep-cool-darkness-123456.us-east-2.aws.neon.tech"


def connect_error(conninfo: str, connect_timeout: int = 3, **kwargs: object) -> str:
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(conninfo, connect_timeout=connect_timeout, **kwargs).close()
    return str(caught.value)


def test_pg_verify_full_with_the_test_ca_gets_tls(pg: PgCluster) -> None:
    assert pg.version >= 150000
    with psycopg.connect(pg.url(**pg.verify_full_params()), connect_timeout=5) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.info.user == "alice"
        assert conn.info.dbname == "app"
        tables = conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables"
            " WHERE table_schema IN ('public', 'billing') ORDER BY 1"
        ).fetchall()
    assert [t for (t,) in tables] == ["billing.invoices", "public.Accounts", "public.orders", "public.users"]


def test_password_with_reserved_characters_survives_the_url(pg: PgCluster) -> None:
    assert "%40" in pg.url() and "%2F" in pg.url() and ALICE_PASSWORD not in pg.url()
    with psycopg.connect(**pg.conninfo(sslmode="require"), connect_timeout=5) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("alice",)
    with psycopg.connect(pg.url(sslmode="require", options="-c search_path=billing"), connect_timeout=5) as conn:
        assert conn.execute("SHOW search_path").fetchone() == ("billing",)


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_pg_listens_on_ipv6_loopback_too(pg: PgCluster) -> None:
    if not pg.ipv6:
        pytest.skip("::1 not bindable here")
    with psycopg.connect(pg.url(host="::1", **pg.verify_full_params()), connect_timeout=5) as conn:
        assert str(conn.execute("SELECT inet_client_addr()").fetchone()[0]) == "::1"  # type: ignore[index]


def test_bob_cannot_read_orders(pg: PgCluster) -> None:
    with psycopg.connect(pg.url(user="bob", sslmode="require"), connect_timeout=5) as conn:
        assert conn.execute("SELECT count(*) FROM public.users").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table orders"):
            conn.execute("SELECT * FROM public.orders")


def test_server_log_shows_what_a_test_did_and_never_the_password(pg: PgCluster) -> None:
    mark = pg.log_mark()
    message = connect_error(pg.url(password="wrong-password", sslmode="require"))
    assert 'password authentication failed for user "alice"' in message
    added = pg.wait_for_log(r'FATAL:  password authentication failed for user "alice"', mark)
    assert "connection received: host=127.0.0.1" in added
    assert "wrong-password" not in pg.log_text()
    assert ALICE_PASSWORD not in pg.log_text()


def test_hba_swap_is_undone_after_the_block(pg: PgCluster) -> None:
    with pg.hba(["host all all 127.0.0.1/32 reject"]):
        assert "pg_hba.conf rejects connection" in connect_error(pg.url(sslmode="require"))
    with psycopg.connect(pg.url(sslmode="require"), connect_timeout=5):
        pass


def test_admin_runs_over_the_unix_socket(pg: PgCluster) -> None:
    assert pg.execute("SELECT current_user, inet_server_addr() IS NULL") == [("postgres", True)]
    assert pg.execute("SELECT %s::int + 1", [41]) == [(42,)]


def test_pg_nossl_refuses_sslmode_require(pg_nossl: PgCluster) -> None:
    assert "server does not support SSL, but SSL was required" in connect_error(pg_nossl.url(sslmode="require"))
    with psycopg.connect(pg_nossl.url(sslmode="disable"), connect_timeout=5) as conn:
        assert not conn.pgconn.ssl_in_use


def test_factory_shares_clusters_by_config_and_wrong_name_fails_verify_full(
    pg_factory: Callable[..., PgCluster], pg: PgCluster
) -> None:
    assert pg_factory(ssl="ca") is pg
    wrong = pg_factory(ssl="wrongname")
    assert wrong is pg_factory(ssl="wrongname") and wrong is not pg
    message = connect_error(wrong.url(**wrong.verify_full_params()))
    assert 'server certificate for "db.wrong.invalid" does not match host name "127.0.0.1"' in message
    with psycopg.connect(wrong.url(sslmode="verify-ca", sslrootcert=str(wrong.ca_path)), connect_timeout=5) as conn:
        assert conn.pgconn.ssl_in_use


@pytest.mark.parametrize(
    ("mode", "server_sees"),
    [("selfsigned", "tlsv1 alert unknown ca"), ("expired", "sslv3 alert certificate expired")],
)
def test_self_signed_and_expired_clusters_fail_certificate_checks(
    pg_factory: Callable[..., PgCluster], mode: str, server_sees: str
) -> None:
    cluster = pg_factory(ssl=mode)
    rootcert = cluster.ca_path or cluster.server_cert_path
    assert rootcert is not None
    if mode == "selfsigned":
        assert cluster.ca_path is None
        with psycopg.connect(cluster.url(sslmode="require"), connect_timeout=5) as conn:
            assert conn.pgconn.ssl_in_use
        rootcert = pg_factory(ssl="ca").ca_path
    mark = cluster.log_mark()
    message = connect_error(cluster.url(sslmode="verify-ca", sslrootcert=str(rootcert)))
    assert "SSL error: certificate verify failed" in message
    assert server_sees in cluster.wait_for_log(r"could not accept SSL connection", mark)


def test_settings_reach_the_server_and_bad_hba_is_refused(pg_factory: Callable[..., PgCluster]) -> None:
    small = pg_factory(settings={"max_connections": 3, "superuser_reserved_connections": 1}, ssl=False)
    assert small.execute("SHOW max_connections") == [("3",)]
    with psycopg.connect(small.url(), connect_timeout=5), psycopg.connect(small.url(), connect_timeout=5):
        assert "remaining connection slots are reserved" in connect_error(small.url())
    with pytest.raises(ValueError, match='invalid connection type "hostx"'):
        small.set_hba(["hostx all all 127.0.0.1/32 trust"])
    small.set_hba(["host all all 127.0.0.1/32 scram-sha-256"])
    with psycopg.connect(small.url(), connect_timeout=5):
        pass


def test_neon_endpoint_preset_reaches_psycopg_with_the_proxy_text(
    pg_protocol_peer: Callable[..., PgProtocolPeer],
) -> None:
    peer = pg_protocol_peer(NeonPresets.endpoint_not_specified)
    message = connect_error(peer.url(sslmode="require"))
    assert f"ERROR:  {NEON_ENDPOINT_NOT_SPECIFIED}" in message
    seen = peer.last
    assert seen.ssl_requested and seen.tls and seen.sni is None
    assert seen.params["user"] == "alice" and seen.params["database"] == "app"


def test_neon_preset_records_sni_and_startup_params(pg_protocol_peer: Callable[..., PgProtocolPeer]) -> None:
    peer = pg_protocol_peer(NeonPresets.quota_exceeded)
    url = peer.url(
        host=NEON_HOST,
        hostaddr="127.0.0.1",
        sslmode="verify-full",
        sslrootcert=str(peer.ca_path),
        options="endpoint=ep-cool-darkness-123456",
        application_name="harness",
    )
    assert "exceeded the compute time quota" in connect_error(url)
    seen = peer.last
    assert seen.sni == NEON_HOST
    assert seen.params["options"] == "endpoint=ep-cool-darkness-123456"
    assert seen.params["application_name"] == "harness"


def test_neon_proxy_refuses_plaintext_and_checks_the_password(
    pg_protocol_peer: Callable[..., PgProtocolPeer],
) -> None:
    insecure = pg_protocol_peer(NeonPresets.endpoint_not_specified)
    assert NEON_INSECURE in connect_error(insecure.url(sslmode="disable"))
    failing = pg_protocol_peer(NeonPresets.password_failed)
    assert "password authentication failed for user 'alice'" in connect_error(failing.url(sslmode="require"))
    assert failing.last.password == "pw"


def test_scripted_peer_can_accept_a_login_over_direct_tls(pg_protocol_peer: Callable[..., PgProtocolPeer]) -> None:
    peer = pg_protocol_peer(NeonPresets.accepts)
    with psycopg.connect(peer.url(sslmode="require", sslnegotiation="direct"), connect_timeout=3) as conn:
        assert conn.pgconn.ssl_in_use and conn.info.server_version == 150000
        conn.autocommit = True
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="fake server"):
            conn.execute("SELECT 1")
    seen = peer.last
    assert seen.direct_tls and seen.alpn == "postgresql" and seen.queries == ["SELECT 1"]


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql not installed")
def test_psql_sees_the_endpoint_preset(pg_protocol_peer: Callable[..., PgProtocolPeer]) -> None:
    peer = pg_protocol_peer(NeonPresets.endpoint_not_specified)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    done = subprocess.run(
        ["psql", peer.url(sslmode="require", connect_timeout=3), "-c", "SELECT 1"],
        capture_output=True,
        text=True,
        timeout=15,
        env=env,
    )
    assert done.returncode == 2
    assert f"ERROR:  {NEON_ENDPOINT_NOT_SPECIFIED}" in done.stderr


def test_dns_server_answers_a_cname_nxdomain_and_more(dns_server: Callable[..., str]) -> None:
    nameserver = dns_server(
        {
            "db.example.test": "127.0.0.1",
            "dual.example.test": ["127.0.0.2", "::1"],
            "alias.example.test": {"CNAME": "db.example.test"},
            "nodata.example.test": NODATA,
            "broken.example.test": SERVFAIL,
            "slow.example.test": SILENT,
        }
    )
    host, port = nameserver.rsplit(":", 1)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = int(port)
    resolver.lifetime = 1.0
    assert [r.address for r in resolver.resolve("db.example.test", "A")] == ["127.0.0.1"]
    assert [r.address for r in resolver.resolve("dual.example.test", "AAAA")] == ["::1"]
    alias = resolver.resolve("alias.example.test", "A")
    assert alias.canonical_name.to_text() == "db.example.test."
    assert [r.address for r in alias] == ["127.0.0.1"]
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("missing.example.test", "A")
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve("nodata.example.test", "A")
    with pytest.raises(dns.resolver.NoNameservers):
        resolver.resolve("broken.example.test", "A")
    resolver.lifetime = 0.3
    with pytest.raises(dns.resolver.LifetimeTimeout):
        resolver.resolve("slow.example.test", "A")
    over_tcp = dns.query.tcp(dns.message.make_query("db.example.test", "A"), host, port=int(port), timeout=2)
    assert over_tcp.answer[0][0].address == "127.0.0.1"
    seen = [(q.name, q.rdtype, q.transport) for q in nameserver.queries]  # type: ignore[attr-defined]
    assert ("missing.example.test", "A", "udp") in seen and ("db.example.test", "A", "tcp") in seen


def test_silent_peer_times_out(silent_peer: tuple[str, int]) -> None:
    host, port = silent_peer
    started = time.monotonic()
    message = connect_error(f"host={host} port={port} user=alice dbname=app sslmode=disable", connect_timeout=1)
    assert "timeout expired" in message
    assert time.monotonic() - started < 4


def test_garbage_peer_and_closed_port_fail_fast(garbage_peer: tuple[str, int], closed_port: tuple[str, int]) -> None:
    host, port = garbage_peer
    assert "received invalid response to SSL negotiation: H" in connect_error(
        f"host={host} port={port} user=alice sslmode=require"
    )
    host, port = closed_port
    assert "Connection refused" in connect_error(f"host={host} port={port} user=alice sslmode=disable")


def test_hangup_peer_closes_without_a_word(fake_peers: object) -> None:
    host, port = fake_peers.garbage(b"")  # type: ignore[attr-defined]
    assert "server closed the connection unexpectedly" in connect_error(
        f"host={host} port={port} user=alice sslmode=disable"
    )


def _run_pytest_without_binaries(tmp_path: Path, *, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_needs_pg.py").write_text("def test_uses_pg(pg):\n    pass\n")
    env = {**os.environ, BINDIR_ENV: str(tmp_path / "no-such-bindir"), "PYTHONPATH": str(HERE)}
    env.pop("CI", None)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "conftest",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            str(tmp_path / "test_needs_pg.py"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )


def test_missing_binaries_fail_on_ci_and_skip_elsewhere(tmp_path: Path) -> None:
    on_ci = _run_pytest_without_binaries(tmp_path, ci="true")
    assert on_ci.returncode == 1, on_ci.stdout
    assert "1 error" in on_ci.stdout and MISSING_BINARIES in on_ci.stdout
    local = _run_pytest_without_binaries(tmp_path, ci=None)
    assert local.returncode == 0, local.stdout
    assert "1 skipped" in local.stdout
