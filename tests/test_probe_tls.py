"""The tls probe against real servers (CA-signed, self-signed, wrong name, expired, no TLS) and fake peers."""

from __future__ import annotations

import json
import ssl
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from peers import NeonPresets
from pgcluster import WRONG_NAME, PgCluster
from probekit import rule_ids

from neondoctor.cli import cli
from neondoctor.probes import dns as dns_probe
from neondoctor.probes import tcp, tls
from neondoctor.probes.base import CheckContext, CheckOptions, ProbeResult, Status
from neondoctor.target import parse_target

NEON_HOST = "ep-cool-darkness-123456.us-east-2.aws.neon.tech"
CLEAN_ENV = dict.fromkeys(("DATABASE_URL", "PGHOST", "PGHOSTADDR", "PGPORT", "PGSSLMODE", "PGSSLROOTCERT"))
LOG_COMPLAINTS = (
    "ERROR:",
    "FATAL:",
    "could not receive data from client",
    "incomplete startup packet",
    "could not accept SSL connection",
    "unexpected EOF",
    "connection reset",
)


@pytest.fixture(autouse=True)
def no_default_root_cert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """libpq's ~/.postgresql/root.crt and PGSSLROOTCERT must not change the verdicts under test."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)


def chain(url: str, **options: Any) -> tuple[ProbeResult, CheckContext]:
    """dns → tcp → tls as the runner does; the tls result."""
    ctx = CheckContext(parse_target(url), CheckOptions(**options))
    for probe in (dns_probe, tcp):
        result = probe.run(ctx)
        assert result.status is not Status.FAIL, result.summary
    try:
        return tls.run(ctx), ctx
    finally:
        leftover = ctx.facts.pop("tcp_socket", None)
        if leftover is not None:
            leftover.close()


def settled_log(cluster: PgCluster, mark: int) -> str:
    """The server log since ``mark`` once the backends our probe started have gone."""
    time.sleep(0.3)
    return cluster.log_since(mark)


# --------------------------------------------------------------------------- healthy


def test_verify_full_against_the_ca_passes_with_details_and_one_clean_connection(pg: PgCluster) -> None:
    mark = pg.log_mark()
    result, ctx = chain(pg.url(host="localhost", **pg.verify_full_params()))
    assert result.status is Status.PASS, result.summary
    assert "TLS works" in result.summary and "the host name matches" in result.summary
    details = result.details
    assert details["sni"] == "localhost" and details["server_answer"] == "S"
    assert details["protocol"] in ("TLSv1.2", "TLSv1.3") and details["cipher"] and details["cipher_bits"] >= 128
    cert = details["certificate"]
    assert {"DNS:localhost", "IP:127.0.0.1"} <= set(cert["san"])
    assert "neondoctor test CA" in cert["issuer"] and cert["days_left"] > 14 and not cert["self_signed"]
    assert details["verification"] == {
        "against": f"sslrootcert {pg.ca_path}",
        "chain": "ok",
        "chain_error": None,
        "chain_problem": None,
        "certificates_served": 1,
        "hostname": "match",
        "libpq_checks": "chain and host name",
    }
    assert details["connections"] == 1 and details["reused_tcp_connection"] is True
    assert details["closed_with_close_notify"] is True
    assert ctx.facts["tls_supported"] is True and ctx.facts["tls_version"] == details["protocol"]
    json.dumps(result.details)

    log = settled_log(pg, mark)
    assert log.count("connection received") == 1, log
    assert not [line for line in log.splitlines() if any(c in line for c in LOG_COMPLAINTS)], log


def test_certificate_reader_agrees_with_openssl(pg: PgCluster, pg_factory: Any) -> None:
    """cryptography's reading against CPython's own decoder, for a CA-signed and a self-signed certificate."""
    for cert_path in (pg.server_cert_path, pg_factory(ssl="selfsigned").server_cert_path):
        assert cert_path is not None
        pem = cert_path.read_text()
        der = ssl.PEM_cert_to_DER_cert(pem[: pem.index("-----END CERTIFICATE-----") + 25])
        ours = tls.read_certificate(der)
        theirs = ssl._ssl._test_decode_cert(str(cert_path))  # type: ignore[attr-defined]
        assert ours["san"] == [
            f"DNS:{value}" if kind == "DNS" else f"IP:{_ip(value)}"
            for kind, value in theirs["subjectAltName"]
            if kind in ("DNS", "IP Address")
        ]
        names = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU"}
        subject = ", ".join(f"{names[k]}={v}" for rdn in theirs["subject"] for k, v in rdn)
        issuer = ", ".join(f"{names[k]}={v}" for rdn in theirs["issuer"] for k, v in rdn)
        assert (ours["subject"], ours["issuer"]) == (subject, issuer)
        not_after = ssl.cert_time_to_seconds(theirs["notAfter"])
        assert ours["not_after"].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(not_after)))
        assert tls.stdlib_certificate(theirs) == ours, "the verified path's reader must agree with cryptography's"


def _ip(value: str) -> str:
    import ipaddress

    return str(ipaddress.ip_address(value.strip()))


def test_certificate_reader_rejects_garbage() -> None:
    for junk in (b"", b"\x30\x03\x02\x01", b"not a certificate at all"):
        with pytest.raises((ValueError, IndexError)):
            tls.read_certificate(junk)


# --------------------------------------------------------------------------- no TLS


def test_server_without_tls_and_sslmode_require_is_tls_server_no_ssl(pg_nossl: PgCluster) -> None:
    mark = pg_nossl.log_mark()
    result, ctx = chain(pg_nossl.url(sslmode="require"))
    assert result.status is Status.FAIL
    assert "does not support TLS" in result.summary and "sslmode=require" in result.summary
    assert rule_ids(result)[:1] == ["tls-server-no-ssl"]
    assert "ssl = on" in (result.next_step or "")
    assert ctx.facts["tls_supported"] is False
    log = settled_log(pg_nossl, mark)
    assert not [line for line in log.splitlines() if any(c in line for c in LOG_COMPLAINTS)], log


@pytest.mark.parametrize(
    ("sslmode", "status", "text"),
    [("prefer", Status.WARN, "without encryption"), ("allow", Status.WARN, "without encryption"),
     ("disable", Status.PASS, "does not ask for it")],
)
def test_server_without_tls_under_weaker_modes(pg_nossl: PgCluster, sslmode: str, status: Status, text: str) -> None:
    result, _ = chain(pg_nossl.url(sslmode=sslmode))
    assert result.status is status and text in result.summary


def test_sslmode_disable_against_a_tls_server_passes_with_a_note(pg: PgCluster) -> None:
    result, _ = chain(pg.url(sslmode="disable"))
    assert result.status is Status.PASS
    assert "sslmode=disable will not use it" in result.summary
    assert "plain text" in result.details["notes"][0]


# --------------------------------------------------------------------------- certificates


def test_self_signed_with_verify_full_is_tls_cert_verify_failed(pg: PgCluster, pg_factory: Any) -> None:
    selfsigned = pg_factory(ssl="selfsigned")
    mark = selfsigned.log_mark()
    result, _ = chain(selfsigned.url(sslmode="verify-full", sslrootcert=str(pg.ca_path)))
    assert result.status is Status.FAIL
    assert "does not verify against" in result.summary and "self-signed certificate" in result.summary
    assert "sslmode=verify-full checks the certificate chain and rejects it" in result.summary
    assert rule_ids(result)[:1] == ["tls-cert-verify-failed"]
    assert result.details["certificate"]["self_signed"] is True
    assert result.details["connections"] == 2
    log = settled_log(selfsigned, mark)
    assert log.count("connection received") == 2
    noisy = [line for line in log.splitlines() if any(c in line for c in LOG_COMPLAINTS)]
    assert len(noisy) <= 1 and all("alert" in line for line in noisy), log


def test_self_signed_with_require_warns_that_nothing_is_checked(pg_factory: Any) -> None:
    result, _ = chain(pg_factory(ssl="selfsigned").url(sslmode="require"))
    assert result.status is Status.WARN
    assert "sslmode=require accepts this certificate without checking it (self-signed certificate)" in result.summary
    assert "man-in-the-middle" in result.summary
    assert "sslrootcert" in (result.next_step or "")
    assert result.details["verification"]["libpq_checks"] == "nothing"


def test_require_with_a_root_certificate_checks_the_chain_like_libpq(pg: PgCluster, pg_factory: Any) -> None:
    result, _ = chain(pg_factory(ssl="selfsigned").url(sslmode="require", sslrootcert=str(pg.ca_path)))
    assert result.status is Status.FAIL
    assert "checks the chain like verify-ca because a root certificate is present" in result.summary
    assert rule_ids(result)[:1] == ["tls-cert-verify-failed"]


def test_wrong_name_with_verify_full_is_tls_hostname_mismatch(pg_factory: Any) -> None:
    wrong = pg_factory(ssl="wrongname")
    result, _ = chain(wrong.url(host="localhost", **wrong.verify_full_params()))
    assert result.status is Status.FAIL
    assert f"the certificate is for {WRONG_NAME}, not localhost" in result.summary
    assert rule_ids(result)[:1] == ["tls-hostname-mismatch"]
    assert result.details["verification"]["chain"] == "ok"

    verify_ca, _ = chain(wrong.url(host="localhost", sslmode="verify-ca", sslrootcert=str(wrong.ca_path)))
    assert verify_ca.status is Status.PASS
    assert "verify-full would reject it" in verify_ca.details["notes"][0]


def test_expired_certificate_fails_verification(pg_factory: Any) -> None:
    expired = pg_factory(ssl="expired")
    result, _ = chain(expired.url(**expired.verify_full_params()))
    assert result.status is Status.FAIL
    assert "certificate has expired" in result.summary
    assert rule_ids(result)[:1] == ["tls-cert-verify-failed"]
    assert result.details["certificate"]["days_left"] < 0

    unchecked, _ = chain(expired.url(sslmode="require"))
    assert unchecked.status is Status.WARN and "expired 1 day ago" in unchecked.summary
    assert "accepts the expired certificate only because it checks nothing" in unchecked.summary


def test_verify_full_without_any_root_certificate_is_tls_root_cert_missing(pg: PgCluster, tmp_path: Path) -> None:
    result, _ = chain(pg.url(sslmode="verify-full"))
    assert result.status is Status.FAIL
    assert f"{tmp_path}/.postgresql/root.crt does not exist" in result.summary
    assert rule_ids(result)[:1] == ["tls-root-cert-missing"]
    assert "sslrootcert=system" in (result.next_step or "")


def test_sslrootcert_system_with_a_weak_mode_is_refused_like_libpq(pg: PgCluster) -> None:
    from psycopg import pq

    if pq.version() < 160000:
        pytest.skip("libpq < 16 reads sslrootcert=system as a file name")
    result, _ = chain(pg.url(sslmode="require", sslrootcert="system"))
    assert result.status is Status.FAIL
    assert "sslrootcert=system with sslmode=require" in result.summary


# --------------------------------------------------------------------------- not PostgreSQL


def test_silent_peer_times_out_within_the_step(silent_peer: Any) -> None:
    host, port = silent_peer
    started = time.monotonic()
    result, _ = chain(f"postgresql://a:pw@{host}:{port}/app", timeout=0.5)
    elapsed = time.monotonic() - started
    assert result.status is Status.FAIL
    assert "did not answer the SSLRequest within 0.5 s" in result.summary
    assert rule_ids(result)[:1] == ["tcp-timeout"]
    assert elapsed < 1.0


def test_garbage_peer_is_not_postgresql(garbage_peer: Any) -> None:
    host, port = garbage_peer
    result, _ = chain(f"postgresql://a:pw@{host}:{port}/app")
    assert result.status is Status.FAIL
    assert "is not a PostgreSQL server" in result.summary and "an HTTP reply" in result.summary
    assert "5432" in (result.next_step or "")
    assert result.details["server_bytes"].startswith("HTTP/1.1 400")


def test_a_peer_that_speaks_first_is_named(fake_peers: Any) -> None:
    host, port = fake_peers.garbage(b"SSH-2.0-OpenSSH_9.2\r\n")
    result, _ = chain(f"postgresql://a:pw@{host}:{port}/app")
    assert result.status is Status.FAIL and "an SSH banner" in result.summary


def test_an_error_reply_to_the_ssl_request_is_shown(fake_peers: Any) -> None:
    body = b"SFATAL\0C08P01\0Munsupported frontend protocol 1234.5679\0\0"
    host, port = fake_peers.garbage(b"E" + struct.pack("!I", len(body) + 4) + body, wait_for_request=True)
    result, _ = chain(f"postgresql://a:pw@{host}:{port}/app")
    assert result.status is Status.FAIL
    assert result.summary == "the server answered the SSLRequest with an error: unsupported frontend protocol 1234.5679"


def test_a_peer_that_hangs_up_at_once(fake_peers: Any) -> None:
    host, port = fake_peers.garbage(b"", wait_for_request=True)
    result, _ = chain(f"postgresql://a:pw@{host}:{port}/app")
    assert result.status is Status.FAIL and "closed the connection" in result.summary


# --------------------------------------------------------------------------- Neon


def test_neon_proxy_gets_the_sni_and_verifies(pg_protocol_peer: Any) -> None:
    peer = pg_protocol_peer(NeonPresets.accepts)
    url = peer.url(host=NEON_HOST, hostaddr="127.0.0.1", sslmode="verify-full", sslrootcert=str(peer.ca_path))
    result, _ = chain(url)
    assert result.status is Status.PASS, result.summary
    assert peer.last.sni == NEON_HOST and peer.last.ssl_requested and peer.last.tls
    assert "DNS:*.us-east-2.aws.neon.tech" in result.details["certificate"]["san"]


def test_neon_with_sslmode_disable_is_tls_neon_insecure(pg_protocol_peer: Any) -> None:
    peer = pg_protocol_peer(NeonPresets.accepts)
    result, _ = chain(peer.url(host=NEON_HOST, hostaddr="127.0.0.1", sslmode="disable"))
    assert result.status is Status.FAIL
    assert "Neon refuses connections without TLS" in result.summary
    assert rule_ids(result)[:1] == ["tls-neon-insecure"]


def test_neon_without_sni_is_neon_endpoint_id_missing(pg_protocol_peer: Any) -> None:
    peer = pg_protocol_peer(NeonPresets.accepts)
    result, _ = chain(peer.url(host=NEON_HOST, hostaddr="127.0.0.1", sslmode="require", sslsni="0"))
    assert result.status is Status.FAIL
    assert "no TLS SNI is sent (sslsni=0)" in result.summary
    assert rule_ids(result)[:1] == ["neon-endpoint-id-missing"]
    assert peer.last.sni is None


# --------------------------------------------------------------------------- host names


@pytest.mark.parametrize(
    ("san", "host", "expected"),
    [
        (["DNS:*.us-east-2.aws.neon.tech"], "ep-x-1.us-east-2.aws.neon.tech", True),
        (["DNS:*.us-east-2.aws.neon.tech"], "a.b.us-east-2.aws.neon.tech", False),
        (["DNS:*.us-east-2.aws.neon.tech"], "us-east-2.aws.neon.tech", False),
        (["DNS:DB.Example.com"], "db.example.com.", True),
        (["IP:127.0.0.1"], "127.0.0.1", True),
        (["IP:::1"], "0:0:0:0:0:0:0:1", True),
        (["DNS:localhost"], "127.0.0.1", False),
        ([], "db.example.com", True),
        (["email:a@b.c"], "db.example.com", True),
        (["DNS:db.example.com"], "xdb.example.com", False),
        (["DNS:*.example.com"], "example.com", False),
        (["DNS:*.example.com"], "a.example.com.", True),
        (["DNS:other.example", "IP:127.0.0.2"], "127.0.0.1", False),
        (["IP:127.0.0.1"], "localhost", False),
        (["DNS:other.example"], "db.example.com", False),
    ],
)
def test_hostname_rules_follow_libpq(san: list[str], host: str, expected: bool) -> None:
    assert tls.hostname_matches({"san": san, "subject_cn": "db.example.com"}, host) is expected


def test_mismatch_text_is_libpqs() -> None:
    cert = {"san": ["DNS:a.example", "DNS:b.example", "IP:10.0.0.1"], "subject_cn": None}
    assert tls.mismatch_text(cert, "c.example") == (
        'server certificate for "a.example" (and 2 other names) does not match host name "c.example"'
    )
    assert tls.mismatch_text({"san": [], "subject_cn": "x"}, "y") == (
        'server certificate for "x" does not match host name "y"'
    )


# --------------------------------------------------------------------------- end to end


def test_check_command_fails_at_tls_with_the_rule(pg_nossl: PgCluster) -> None:
    result = CliRunner().invoke(cli, ["check", pg_nossl.url(sslmode="require"), "--json"], env=CLEAN_ENV)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["verdict"]["failed_probe"] == "tls"
    assert report["verdict"]["rule"] == "tls-server-no-ssl"
    assert {p["name"]: p["status"] for p in report["probes"]}["auth"] == "skip"


def test_check_command_on_a_silent_peer_is_bounded(silent_peer: Any) -> None:
    host, port = silent_peer
    started = time.monotonic()
    result = CliRunner().invoke(
        cli, ["check", f"postgresql://a:pw@{host}:{port}/app", "--timeout", "0.5", "--json"], env=CLEAN_ENV
    )
    assert time.monotonic() - started < 1.5
    assert result.exit_code == 1
    assert json.loads(result.stdout)["verdict"]["failed_probe"] == "tls"


# --------------------------------------------------------------------------- direct TLS (libpq >= 17)


def test_direct_tls_to_a_server_that_supports_it(pg_protocol_peer: Any) -> None:
    peer = pg_protocol_peer(NeonPresets.accepts)
    url = peer.url(host="localhost", sslmode="verify-full", sslrootcert=str(peer.ca_path), sslnegotiation="direct")
    result, _ = chain(url)
    assert result.status is Status.PASS, result.summary
    assert result.details["negotiation"] == "direct" and result.details["alpn"] == "postgresql"
    assert peer.last.direct_tls and not peer.last.ssl_requested and peer.last.alpn == "postgresql"


def test_direct_tls_against_a_real_server_works_from_17_and_says_why_before(pg: PgCluster) -> None:
    """Runs on every server version of the suite (CI: 15 and 18), each side of the line."""
    result, _ = chain(pg.url(host="localhost", sslnegotiation="direct", **pg.verify_full_params()))
    if pg.version >= 170000:
        assert result.status is Status.PASS, result.summary
        assert result.details["negotiation"] == "direct" and result.details["alpn"] == "postgresql"
    else:
        assert result.status is Status.FAIL
        assert "sslnegotiation=direct" in result.summary and "PostgreSQL 17" in result.summary
        assert "Remove sslnegotiation=direct" in (result.next_step or "")


def test_direct_tls_with_a_weak_sslmode_is_refused_like_libpq(pg: PgCluster) -> None:
    result, _ = chain(pg.url(sslnegotiation="direct", sslmode="prefer"))
    assert result.status is Status.FAIL
    assert "sslnegotiation=direct with sslmode=prefer" in result.summary


def test_sslrootcert_system_verifies_against_the_os_store(pg: PgCluster) -> None:
    from psycopg import pq

    if pq.version() < 160000:
        pytest.skip("libpq < 16 reads sslrootcert=system as a file name")
    result, _ = chain(pg.url(host="localhost", sslmode="verify-full", sslrootcert="system"))
    assert result.status is Status.FAIL
    assert "does not verify against the system's trusted roots (sslrootcert=system)" in result.summary
    assert rule_ids(result)[:1] == ["tls-cert-verify-failed"]


def test_a_peer_that_says_s_and_hangs_up(fake_peers: Any) -> None:
    """libpq falls back to plain text under prefer after a failed handshake, and gives up under require."""
    host, port = fake_peers.garbage(b"S", wait_for_request=True)
    prefer, _ = chain(f"postgresql://a:pw@{host}:{port}/app?sslmode=prefer")
    assert prefer.status is Status.WARN
    assert "SSL SYSCALL error: EOF detected" in prefer.summary and "retries without TLS" in prefer.summary
    require, _ = chain(f"postgresql://a:pw@{host}:{port}/app?sslmode=require")
    assert require.status is Status.FAIL and "the TLS handshake" in require.summary


def test_an_unreadable_root_certificate_file_fails_like_libpq(pg: PgCluster, tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    result, _ = chain(pg.url(host="localhost", sslmode="require", sslrootcert=str(junk)))
    assert result.status is Status.FAIL
    assert f"cannot read the root certificate file {junk}" in result.summary

    missing = tmp_path / "nope.pem"
    unverified, _ = chain(pg.url(host="localhost", sslmode="require", sslrootcert=str(missing)))
    assert unverified.status is Status.WARN and "without checking it" in unverified.summary
    strict, _ = chain(pg.url(host="localhost", sslmode="verify-ca", sslrootcert=str(missing)))
    assert strict.status is Status.FAIL and f"{missing} does not exist" in strict.summary
