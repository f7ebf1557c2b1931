"""What the tls line says, word for word, when the peer is not a TLS-speaking PostgreSQL server (fake peers).

Each case pins the summary, the next step and the libpq text the rules matched (the excerpt `check -v` shows).
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import pytest
from peers import PgScript, Ready
from test_probe_tls import chain

from neondoctor.probes import dns, tcp, tls
from neondoctor.probes.base import CheckContext, CheckOptions, ProbeResult
from neondoctor.target import parse_target

NEON_HOST = "ep-cool-darkness-123456.us-east-2.aws.neon.tech"
NO_SSL = "server does not support SSL, but SSL was required"


@pytest.fixture(autouse=True)
def no_default_root_cert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY"):
        monkeypatch.delenv(name, raising=False)


def after_a_pause(url: str) -> ProbeResult:
    """dns → tcp, a pause in which a peer that speaks first has spoken, → tls."""
    ctx = CheckContext(parse_target(url), CheckOptions())
    dns.run(ctx)
    tcp.run(ctx)
    time.sleep(0.1)
    return tls.run(ctx)


def said(result: Any) -> tuple[str, str, str | None, str | None, str | None]:
    top = result.matches[0] if result.matches else {}
    return str(result.status), result.summary, result.next_step, top.get("id"), top.get("excerpt")


# --------------------------------------------------------------------------- 'N': no TLS


@pytest.fixture
def no_tls(pg_protocol_peer: Any) -> Any:
    return pg_protocol_peer(PgScript(steps=(Ready(),), tls=False))


@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full"])
def test_no_tls_under_a_mode_that_requires_it(no_tls: Any, mode: str) -> None:
    result, ctx = chain(no_tls.url(sslmode=mode, sslrootcert=str(no_tls.ca_path)))
    assert said(result) == (
        "fail",
        f"the server does not support TLS (it answered 'N' to the SSLRequest), but sslmode={mode} requires it",
        "Turn TLS on in the server (ssl = on with a certificate in postgresql.conf), or make sure this is the right "
        "server; sslmode=prefer would connect without encryption",
        "tls-server-no-ssl",
        NO_SSL,
    )
    assert result.exact_next_step is False and ctx.facts["tls_supported"] is False
    assert result.details["server_answer"] == "N" and result.details["negotiation"] == "postgres"


@pytest.mark.parametrize("mode", ["prefer", "allow"])
def test_no_tls_under_a_mode_that_falls_back_warns_of_plain_text(no_tls: Any, mode: str) -> None:
    result, _ = chain(no_tls.url(sslmode=mode))
    assert said(result) == (
        "warn",
        f"the server does not support TLS: with sslmode={mode} libpq connects without encryption (the password and "
        "all data travel in plain text)",
        "Turn TLS on in the server, then use sslmode=require (or verify-full) so it cannot silently fall back",
        "tls-server-no-ssl",
        NO_SSL,
    )


def test_no_tls_with_sslmode_disable_passes_with_a_note(no_tls: Any) -> None:
    result, _ = chain(no_tls.url(sslmode="disable"))
    assert said(result) == (
        "pass", "the server does not offer TLS, and sslmode=disable does not ask for it (plain text)", None, None, None
    )
    assert result.details["notes"] == [
        "sslmode=disable: fine on a trusted network or a Unix socket, unwise anywhere else"
    ]


def test_no_tls_with_channel_binding_required(no_tls: Any) -> None:
    result, _ = chain(no_tls.url(sslmode="prefer", channel_binding="require"))
    status, summary, step, _, excerpt = said(result)
    assert (status, summary, step, excerpt) == (
        "fail",
        "the server does not support TLS (it answered 'N' to the SSLRequest), and channel_binding=require needs TLS: "
        "SCRAM channel binding is bound to the TLS session",
        "Turn TLS on in the server (ssl = on with a certificate), or drop channel_binding=require for this server; "
        "a Neon string keeps both sslmode=require and channel_binding=require",
        "channel binding required, but SSL not in use",
    )
    assert result.exact_next_step is True


def test_no_tls_on_a_neon_host_is_not_neons_proxy(no_tls: Any) -> None:
    result, _ = chain(no_tls.url(host=NEON_HOST, hostaddr="127.0.0.1", sslmode="require"))
    status, summary, step, _, excerpt = said(result)
    assert (status, summary, step, excerpt) == (
        "fail",
        f"127.0.0.1:{no_tls.port} answered 'N' (no TLS), but Neon always speaks TLS: this is not Neon's proxy",
        "Check the host and port; something between you and Neon intercepts the connection",
        "connection is insecure (try using `sslmode=require`)",
    )


# --------------------------------------------------------------------------- not PostgreSQL at all


@pytest.mark.parametrize(
    ("payload", "wait", "spoke", "kind", "preview"),
    [
        (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", True,
         "answered the SSLRequest", "an HTTP reply", r"HTTP/1.1 400 Bad Request\r\nContent-Length"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", False, "spoke first", "an SSH banner", r"SSH-2.0-OpenSSH_9.2\r\n"),
        (b"\x15\x03\x01\x00\x02\x02\x46", True, "answered the SSLRequest",
         "a TLS record (a server that expects TLS straight away)", r"\x15\x03\x01\x00\x02\x02F"),
        (b"\x16\x03\x03\x00\x01\x00", False, "spoke first",
         "a TLS record (a server that expects TLS straight away)", r"\x16\x03\x03\x00\x01\x00"),
        (b"J\x00\x00\x00\x0a8.0.36\x00", False, "spoke first", "a MySQL greeting", r"J\x00\x00\x00\n8.0.36\x00"),
        (b"+OK\r\n", True, "answered the SSLRequest", "a text protocol greeting (Redis, SMTP, FTP?)", r"+OK\r\n"),
        (b"-ERR unknown command\r\n", False, "spoke first", "a text protocol greeting (Redis, SMTP, FTP?)",
         r"-ERR unknown command\r\n"),
        (b"220 mail.example ESMTP\r\n", False, "spoke first", "a text protocol greeting (Redis, SMTP, FTP?)",
         r"220 mail.example ESMTP\r\n"),
        (b"ZZ\x00\x00\x0a", True, "answered the SSLRequest", "a MySQL greeting", r"ZZ\x00\x00\n"),
        (b"ZZ\x00\x01\x0a", True, "answered the SSLRequest", "unexpected bytes", r"ZZ\x00\x01\n"),
        (b"J\x00\x00\x01\x0a", False, "spoke first", "unexpected bytes", r"J\x00\x00\x01\n"),
        (b"1234", False, "spoke first", "unexpected bytes", "1234"),
    ],
)
def test_a_peer_that_is_not_postgresql_is_named_by_what_it_sent(
    fake_peers: Any, payload: bytes, wait: bool, spoke: str, kind: str, preview: str
) -> None:
    host, port = fake_peers.garbage(payload, wait_for_request=wait)
    result = after_a_pause(f"postgresql://a:pw@{host}:{port}/app")
    status, summary, step, rule, excerpt = said(result)
    assert (status, summary, step) == (
        "fail",
        f"127.0.0.1:{port} is not a PostgreSQL server: it {spoke} with {kind}: '{preview}'",
        "Check the port in the connection string: PostgreSQL and Neon listen on 5432",
    )
    if payload[0] >= 0x20:
        assert (rule, excerpt) == (
            "tcp-not-postgres",
            f'connection to server at "127.0.0.1", port {port} failed: received invalid response to SSL '
            f"negotiation: {chr(payload[0])}",
        )
    assert result.details["server_bytes"] == payload[:64].decode("latin-1").encode("unicode_escape").decode()
    assert result.details["server_answer"] == ("garbage" if wait else "spoke-first")
    assert result.details["reused_tcp_connection"] is True and result.details["connections"] == 1


def test_the_bytes_shown_stop_at_64_and_the_summary_at_40(fake_peers: Any) -> None:
    payload = b"HTTP/1.1 400 " + b"x" * 100
    host, port = fake_peers.garbage(payload, wait_for_request=True)
    result, _ = chain(f"postgresql://a:pw@{host}:{port}/app")
    assert result.details["server_bytes"] == "HTTP/1.1 400 " + "x" * 51
    assert result.summary.endswith("an HTTP reply: 'HTTP/1.1 400 " + "x" * 27 + "'")


def test_a_peer_that_hangs_up_is_told_with_the_host_name_libpq_shows(fake_peers: Any) -> None:
    _, port = fake_peers.garbage(b"", wait_for_request=True)
    result, _ = chain(f"postgresql://a:pw@localhost:{port}/app")
    assert said(result) == (
        "fail",
        f"127.0.0.1:{port} closed the connection instead of answering the SSLRequest: not a PostgreSQL server, or "
        "one that drops this client",
        "Check the port; a server or proxy that hangs up at once may also be refusing your IP address",
        said(result)[3],
        f'connection to server at "localhost" (127.0.0.1), port {port} failed: server closed the connection '
        "unexpectedly",
    )
    assert result.details["host"] == "localhost" and result.details["server_answer"] == "eof"


def test_an_error_reply_to_the_ssl_request_is_quoted(fake_peers: Any) -> None:
    body = b"SFATAL\0C08P01\0Munsupported frontend protocol 1234.5679\0\0"
    host, port = fake_peers.garbage(b"E" + struct.pack("!I", len(body) + 4) + body, wait_for_request=True)
    result, _ = chain(f"postgresql://a:pw@{host}:{port}/app")
    status, summary, step, _, excerpt = said(result)
    assert (status, summary, step) == (
        "fail",
        "the server answered the SSLRequest with an error: unsupported frontend protocol 1234.5679",
        "Read the server's message; an old server or a non-standard proxy may not support TLS negotiation",
    )
    assert excerpt is None
    assert result.details["server_error"] == {
        "S": "FATAL", "C": "08P01", "M": "unsupported frontend protocol 1234.5679"
    }


def test_an_error_reply_is_matched_against_the_rules(fake_peers: Any) -> None:
    body = b"SFATAL\0C57P03\0Mthe database system is starting up\0\0"
    host, port = fake_peers.garbage(b"E" + struct.pack("!I", len(body) + 4) + body, wait_for_request=True)
    result, _ = chain(f"postgresql://a:pw@{host}:{port}/app")
    assert said(result)[3:] == ("server-starting-up", "the database system is starting up")


def test_an_error_reply_without_a_message(fake_peers: Any) -> None:
    body = b"SFATAL\0C08P01\0\0"
    host, port = fake_peers.garbage(b"E" + struct.pack("!I", len(body) + 4) + body, wait_for_request=True)
    result, _ = chain(f"postgresql://a:pw@{host}:{port}/app")
    assert result.summary == "the server answered the SSLRequest with an error: an error"
    assert result.details["server_error"] == {"S": "FATAL", "C": "08P01"}


def test_a_silent_peer_is_a_stuck_server_not_a_firewall(silent_peer: Any) -> None:
    host, port = silent_peer
    result, ctx = chain(f"postgresql://a:pw@{host}:{port}/app", timeout=0.5)
    ms = ctx.facts["tcp_connect_ms"]
    assert said(result) == (
        "fail",
        f"127.0.0.1:{port} accepted TCP in {ms:.0f} ms but did not answer the SSLRequest within 0.5 s: not a firewall "
        "(those drop the connection itself), but a peer that is slow or stuck",
        "The host accepts connections but answers slowly: a server still starting (a cold start) or overloaded, or a "
        "proxy waiting for its backend; retry with a longer --timeout (and connect_timeout), and check the server's "
        "state and that this port is PostgreSQL's",
        "tcp-timeout",
        f'connection to server at "127.0.0.1", port {port} failed: timeout expired',
    )
    assert result.exact_next_step is True and result.details["timeout_s"] == 0.5


# --------------------------------------------------------------------------- handshake and direct TLS


@pytest.mark.parametrize("mode", ["prefer", "allow"])
def test_a_failed_handshake_under_a_fallback_mode_warns(fake_peers: Any, mode: str) -> None:
    host, port = fake_peers.garbage(b"S", wait_for_request=True)
    result, _ = chain(f"postgresql://a:pw@{host}:{port}/app?sslmode={mode}")
    status, summary, step, _, excerpt = said(result)
    assert (status, summary, step, excerpt) == (
        "warn",
        f"the TLS handshake with 127.0.0.1:{port} failed: SSL SYSCALL error: EOF detected; with sslmode={mode} "
        "libpq then retries without TLS (plain text)",
        "The server accepted the SSLRequest but not the handshake: check its ssl settings (ssl_min_protocol_version, "
        "certificate files) or a middlebox on the path",
        f'connection to server at "127.0.0.1", port {port} failed: SSL SYSCALL error: EOF detected',
    )
    assert result.exact_next_step is False


def test_a_failed_handshake_under_require_fails(fake_peers: Any) -> None:
    host, port = fake_peers.garbage(b"S", wait_for_request=True)
    result, _ = chain(f"postgresql://a:pw@{host}:{port}/app?sslmode=require")
    assert (str(result.status), result.summary) == (
        "fail", f"the TLS handshake with 127.0.0.1:{port} failed: SSL SYSCALL error: EOF detected"
    )


def test_direct_tls_to_a_peer_that_wants_the_ssl_request_first(fake_peers: Any) -> None:
    host, port = fake_peers.garbage(b"", wait_for_request=True)
    result, _ = chain(f"postgresql://a:pw@{host}:{port}/app?sslmode=require&sslnegotiation=direct")
    status, summary, step, _, _ = said(result)
    assert status == "fail"
    assert summary.startswith(f"direct TLS (sslnegotiation=direct) with 127.0.0.1:{port} failed: SSL SYSCALL error")
    assert summary.endswith("; the server does not take TLS straight away (PostgreSQL 17 or newer does)")
    assert step == "Remove sslnegotiation=direct (the default, sslnegotiation=postgres, works with every server)"
    assert result.exact_next_step is True and result.details["server_answer"] == "direct TLS"


@pytest.mark.parametrize("mode", ["prefer", "allow", "disable"])
def test_direct_tls_with_a_mode_that_allows_plain_text_is_refused_like_libpq(fake_peers: Any, mode: str) -> None:
    host, port = fake_peers.garbage(b"", wait_for_request=True)
    result, _ = chain(f"postgresql://a:pw@{host}:{port}/app?sslmode={mode}&sslnegotiation=direct")
    status, summary, step, _, excerpt = said(result)
    assert (status, summary, step, excerpt) == (
        "fail",
        f"libpq refuses sslnegotiation=direct with sslmode={mode}: direct TLS has no plain-text fallback",
        "Use sslmode=require (or verify-full) with sslnegotiation=direct, or drop sslnegotiation",
        f'weak sslmode "{mode}" may not be used with sslnegotiation=direct (use "require", "verify-ca", or '
        '"verify-full")',
    )


def test_a_certificate_time_that_is_not_openssls_gmt_is_refused() -> None:
    assert tls.cert_time("Jun  1 12:00:00 2030 GMT").isoformat() == "2030-06-01T12:00:00+00:00"
    for text in ("Jun  1 12:00:00 2030 UTC", "Foo  1 12:00:00 2030 GMT"):
        with pytest.raises(ValueError, match="is not OpenSSL's GMT time"):
            tls.cert_time(text)


def test_a_peer_that_hangs_up_before_the_ssl_request(fake_peers: Any) -> None:
    host, port = fake_peers.garbage(b"")
    result = after_a_pause(f"postgresql://a:pw@{host}:{port}/app")
    assert (str(result.status), result.details["server_answer"]) == ("fail", "eof")
    assert result.summary.startswith(f"127.0.0.1:{port} closed the connection instead of answering the SSLRequest")


@pytest.mark.parametrize("answer", [b"N", b"S"])
def test_a_yes_or_no_followed_by_more_bytes_is_not_postgresql(fake_peers: Any, answer: bytes) -> None:
    host, port = fake_peers.garbage(answer + b"xyz", wait_for_request=True)
    result, _ = chain(f"postgresql://a:pw@{host}:{port}/app")
    assert (str(result.status), result.details["server_answer"]) == ("fail", "garbage")
    assert result.summary == (
        f"127.0.0.1:{port} is not a PostgreSQL server: it answered the SSLRequest with unexpected bytes: "
        f"'{answer.decode()}xyz'"
    )
