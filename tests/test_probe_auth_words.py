"""What the auth line says, word for word: a login, the server's refusals, peers that are not PostgreSQL, stalls.

A scripted peer plays each server reply (real libpq talks to it); the real-server tests (test_check.py,
test_evidence.py) show the same replies from PostgreSQL itself where one can be made to give them.
"""

from __future__ import annotations

import re
import struct
from typing import Any

import pytest
from peers import AskPassword, Error, PgScript, Raw, Ready, Sleep, _message, neon_proxy

from neondoctor.probes import auth, dns, tcp, tls
from neondoctor.probes.base import CheckContext, CheckOptions, ProbeResult

NEON_HOST = "ep-cool-darkness-123456.us-east-2.aws.neon.tech"


def login(url: str, *, abandoned: bool = False, **options: Any) -> tuple[ProbeResult, CheckContext]:
    """dns → tcp → tls → auth, as the runner runs them; the auth line."""
    from neondoctor.target import parse_target

    ctx = CheckContext(parse_target(url), CheckOptions(**options))
    for probe in (dns, tcp, tls):
        probe.run(ctx)
    leftover = ctx.facts.pop("tcp_socket", None)
    if leftover is not None:
        leftover.close()
    if abandoned:
        ctx.facts["abandoned"] = True
    try:
        return auth.run(ctx), ctx
    finally:
        if ctx.session is not None:
            ctx.session.close()


def said(result: ProbeResult) -> tuple[str, str, str | None, bool, str | None]:
    return (str(result.status), result.summary, result.next_step, result.exact_next_step,
            result.matches[0]["id"] if result.matches else None)


def failed_with(peer: Any, reply: str) -> str:
    return f'connection failed: connection to server at "127.0.0.1", port {peer.port} failed: {reply}'


# --------------------------------------------------------------------------- logged in


def test_a_login_without_tls(pg_protocol_peer: Any) -> None:
    peer = pg_protocol_peer(PgScript(steps=(AskPassword(), Ready(server_version="16.4 (Debian 16.4-1)")), tls=False))
    result, ctx = login(peer.url(password="pw", sslmode="disable"))
    status, summary, step, exact, rule = said(result)
    assert (status, step, exact, rule) == ("pass", None, False, None)
    assert re.fullmatch(r"alice on app, PostgreSQL 16\.4, no TLS, connected in \d+ ms", summary), summary
    details = {k: v for k, v in result.details.items() if k not in ("connect_ms", "backend_pid")}
    assert details == {"server_version": "16.4 (Debian 16.4-1)", "server_version_num": 160004, "user": "alice",
                       "database": "app", "superuser": False, "tls": False}
    assert (ctx.facts["server_version"], ctx.facts["server_version_num"], ctx.facts["superuser"],
            ctx.facts["user"]) == ("16.4 (Debian 16.4-1)", 160004, False, "alice")


def test_a_superuser_login_on_a_standby_over_tls(pg_protocol_peer: Any) -> None:
    ready = Ready(server_version="17.2", parameters={"is_superuser": "on", "in_hot_standby": "on"})
    peer = pg_protocol_peer(PgScript(steps=(AskPassword(), ready)))
    result, ctx = login(peer.url(host="localhost", password="pw", sslmode="require"))
    protocol = ctx.facts["tls_version"]
    assert re.fullmatch(
        rf"alice on app, PostgreSQL 17\.2, TLS \({protocol}\), connected in \d+ ms; a read-only standby \(in "
        r"recovery\): writes will fail here", result.summary), result.summary
    assert str(result.status) == "pass"
    assert result.details["superuser"] is True and result.details["hot_standby"] is True
    assert result.details["tls"] is True and result.details["tls_version"] == protocol
    assert result.details["tls_cipher"] == ctx.facts["tls_cipher"] and result.details["hostaddr"] == "127.0.0.1"


def test_a_slow_first_connect_to_neon_is_the_compute_waking(pg_protocol_peer: Any) -> None:
    peer = pg_protocol_peer(neon_proxy(AskPassword(), Sleep(1.6), Ready()))
    result, _ = login(peer.url(host=NEON_HOST, hostaddr="127.0.0.1", password="pw", sslmode="require"))
    assert str(result.status) == "warn"
    assert result.summary.endswith(": slow first connect, likely the compute waking up from scale-to-zero")
    assert result.next_step == (
        "Allow for the wake-up: a connect_timeout of 10 s or more and a retry in the app, or disable scale-to-zero "
        "for this compute in the Neon console"
    )


def test_a_login_that_completes_after_the_cap_is_closed(pg_protocol_peer: Any) -> None:
    peer = pg_protocol_peer(PgScript(steps=(AskPassword(), Ready()), tls=False))
    result, ctx = login(peer.url(password="pw", sslmode="disable"), abandoned=True)
    assert said(result)[:2] == ("fail", "connected after the overall cap; connection closed")
    assert ctx.session is None


# --------------------------------------------------------------------------- the server refuses


@pytest.mark.parametrize(
    ("steps", "params", "summary", "step", "rule", "state", "layer"),
    [
        ((AskPassword(), Error('password authentication failed for user "alice"', "FATAL", "28P01")), {},
         'password authentication failed for user "alice" (a wrong password, or no role \'alice\' at all: '
         "PostgreSQL and Neon say the same for both)", None, "auth-password-failed", None, "auth"),
        ((Error("sorry, too many clients already", "FATAL", "53300"),), {},
         "sorry, too many clients already (no connection slot left for this role: a slots problem)", None,
         "slots-too-many-clients", None, "slots"),
        ((Error("something odd happened here", "FATAL", "XX000"),), {}, "something odd happened here",
         "Try the same string with psql to see whether the server accepts it", None, None, None),
        ((Error("the database system is shutting down", "FATAL", "57P03"),), {},
         "the database system is shutting down (shutdown in progress)",
         "The server is shutting down: a smart shutdown admits no new sessions while it waits for the open ones to "
         "end, so retrying will not help until it is started again. Connect to another server, or ask its admin "
         "(`pg_ctl status`; `pg_ctl stop -m fast` ends the wait, `pg_ctl start` brings it back)",
         "server-starting-up", "shutting-down", "server"),
        ((Error("the database system is not accepting connections", "FATAL", "57P03",
                {"D": "Hot standby mode is disabled."}),), {},
         "the database system is not accepting connections (a standby with hot_standby=off)",
         "This server is a standby with hot_standby=off: it replays WAL and admits no sessions at all, so retrying "
         "will not help. Connect to the primary, or set hot_standby = on on this standby and restart it",
         "server-starting-up", "standby-no-hot-standby", "server"),
        ((AskPassword(), Ready(parameters={"in_hot_standby": "off"})), {"target_session_attrs": "standby"},
         "server is not in hot standby mode (a primary, refused by target_session_attrs=standby)",
         "This server is a primary and target_session_attrs=standby wants a standby, so retrying will not help: "
         "point the string at a standby, or drop target_session_attrs",
         "server-standby-target-session-attrs", "primary", "server"),
        ((AskPassword(), Ready(parameters={"in_hot_standby": "on"})), {"target_session_attrs": "primary"},
         "server is in hot standby mode (a standby, refused by target_session_attrs=primary)",
         "This server is a read-only standby (in recovery) and target_session_attrs=primary wants a writable "
         "primary, so retrying will not help: point the string at the primary, or list it too (host=primary,standby)",
         "server-standby-target-session-attrs", "standby", "server"),
        ((Error("connection requires a valid client certificate", "FATAL", "28000"),), {},
         "connection requires a valid client certificate (no client certificate sent)",
         "The server requires a client certificate (pg_hba.conf clientcert=verify-ca/verify-full, or cert "
         "authentication) and this string sends none: add sslcert=/path/to/client.crt&sslkey=/path/to/client.key, "
         "a certificate signed by the CA in the server's ssl_ca_file, with CN=alice",
         "auth-client-cert-required", "client-cert-required", "auth"),
    ],
)
def test_a_refusal_in_the_servers_words_with_what_follows_from_it(
    pg_protocol_peer: Any, steps: tuple[Any, ...], params: dict[str, str], summary: str, step: str | None,
    rule: str | None, state: str | None, layer: str | None,
) -> None:
    peer = pg_protocol_peer(PgScript(steps=steps, tls=False))
    result, _ = login(peer.url(password="pw", sslmode="disable", **params))
    assert said(result) == ("fail", summary, step, state is not None, rule)
    assert result.details.get("server_state") == state and result.details.get("layer") == layer
    assert result.details["error"].startswith(failed_with(peer, ""))
    assert result.details["elapsed_ms"] == round(result.details["elapsed_ms"], 1)


# --------------------------------------------------------------------------- not PostgreSQL


def not_postgres_step(peer: Any) -> str:
    return (
        f"Check that 127.0.0.1:{peer.port} is really a PostgreSQL server (or Neon's proxy): a proxy, a load balancer "
        f"or another service on this port answers like this. On that machine, `ss -ltnp 'sport = :{peer.port}'` shows "
        "what listens"
    )


@pytest.mark.parametrize(
    ("steps", "seen", "more"),
    [
        ((Raw(b"HTTP/1.1 400 Bad\r\n\r\n"),),
         "the byte 'H' where an authentication request belongs (the start of 'HTTP/…': a web server?)", ""),
        ((Raw(b"Zzzzzzzzz"),), "the byte 'Z' where an authentication request belongs", ""),
        ((Raw(_message(b"R", struct.pack("!I", 99))), Sleep(3)),
         "an authentication method this client does not know (type 99; PostgreSQL's are 0 (ok), 2 (Kerberos), 3 "
         "(password), 5 (md5), 7-9 (GSSAPI, SSPI), 10-12 (SASL))",
         "; if it is a newer PostgreSQL or a pooler, upgrade libpq (psycopg) and retry"),
        ((Error("y" * 1001),), "a 1001-byte error message ('" + "y" * 120 + "'…)", ""),
        ((Error("y" * 1024),), "a 1 KB error message ('" + "y" * 120 + "'…)", ""),
        ((Error("y" * 20_000),), "a 20 KB error message ('" + "y" * 120 + "'…)", ""),
    ],
)
def test_a_peer_that_is_not_postgresql_is_named_for_what_it_sent(
    pg_protocol_peer: Any, steps: tuple[Any, ...], seen: str, more: str
) -> None:
    peer = pg_protocol_peer(PgScript(steps=steps, tls=False))
    result, _ = login(peer.url(password="pw", sslmode="disable"))
    assert said(result) == (
        "fail", f"127.0.0.1:{peer.port} does not speak PostgreSQL's protocol: it sent {seen}",
        not_postgres_step(peer) + more, True, None,
    )
    details = result.details
    assert details["layer"] == "protocol"
    assert len(details["error"]) == (details["error_chars"] if details["error_chars"] <= 4000 else 4001)
    assert details["elapsed_ms"] == round(details["elapsed_ms"], 1)


def test_a_huge_error_is_cut_in_the_details(pg_protocol_peer: Any) -> None:
    peer = pg_protocol_peer(PgScript(steps=(Error("z" * 20_000),), tls=False))
    result, _ = login(peer.url(password="pw", sslmode="disable"))
    assert len(result.details["error"]) == 4001 and result.details["error"].endswith("z…")
    assert result.details["error_chars"] > 20_000


# --------------------------------------------------------------------------- stalls


def test_a_login_that_hangs_after_a_quick_tcp_is_a_pooler_without_its_server(pg_protocol_peer: Any) -> None:
    peer = pg_protocol_peer(PgScript(steps=(Sleep(3),), tls=False))
    result, ctx = login(peer.url(password="pw", sslmode="disable"), timeout=1)
    tcp_ms = ctx.facts["tcp_connect_ms"]
    quick = f"TCP answered in {tcp_ms:.0f} ms"
    assert said(result)[:4] == (
        "fail",
        f"127.0.0.1:{peer.port} did not finish PostgreSQL's start-up within 1 s ({quick}; the login hung: a pooler "
        "that cannot reach its server?)",
        result.next_step, True,
    )
    assert re.fullmatch(
        rf"{quick}, but the login did not finish in 1\.\d s: what answers at once and then stalls is usually a "
        r"pooler or proxy \(PgBouncer, a tunnel\) that cannot reach its database server .*", result.next_step or ""
    ), result.next_step
    assert result.details == {"timeout_s": 1, "layer": "auth", "server_state": "login-hangs"}


def test_a_login_that_hangs_behind_a_pooler_host_and_tls(pg_protocol_peer: Any) -> None:
    peer = pg_protocol_peer(PgScript(steps=(Sleep(3),)))
    result, ctx = login(peer.url(host="db-pooler.test.invalid", hostaddr="127.0.0.1", password="pw",
                                 sslmode="require"), timeout=1)
    quick = f"TCP answered in {ctx.facts['tcp_connect_ms']:.0f} ms and TLS in {ctx.facts['tls_handshake_ms']:.0f} ms"
    assert (result.next_step or "").startswith(f"{quick}, but the login did not finish in 1.")
    assert "stalls is the pooler (PgBouncer on port 6432) that cannot reach" in (result.next_step or "")


def test_a_login_that_hangs_at_neon_is_the_compute(pg_protocol_peer: Any) -> None:
    peer = pg_protocol_peer(neon_proxy(Sleep(3)))
    result, _ = login(peer.url(host=NEON_HOST, hostaddr="127.0.0.1", password="pw", sslmode="require"), timeout=1)
    assert result.summary.endswith("; the login hung: the proxy is waiting for the compute)")
    assert re.search(
        r", but the login hung for 1\.\d s: Neon's proxy answered and is waiting for the compute \(waking from "
        r"scale-to-zero, or unreachable\)\. Retry with a longer --timeout and connect_timeout=15; if it persists, "
        r"check the compute in the Neon console$", result.next_step or ""), result.next_step


def test_a_stall_without_tcp_timing_says_only_that_it_is_slow(pg_protocol_peer: Any) -> None:
    from neondoctor.target import parse_target

    peer = pg_protocol_peer(PgScript(steps=(Sleep(3),), tls=False))
    for host, neon_words in (("127.0.0.1", ""), (NEON_HOST, " (a Neon compute waking up takes a few seconds)")):
        url = peer.url(host=host, hostaddr="127.0.0.1", password="pw", sslmode="disable")
        ctx = CheckContext(parse_target(url), CheckOptions(timeout=1))
        result = auth.run(ctx)
        assert said(result)[:4] == (
            "fail",
            f"{host}:{peer.port} did not finish PostgreSQL's start-up within 1 s (tcp reached it: it answers very "
            "slowly, or not at all)",
            f"Retry once with a larger --timeout{neon_words}; if it stays this slow, check that {host}:{peer.port} "
            "is really PostgreSQL and not a proxy or another service, and whether the server is overloaded",
            False,
        )
        assert result.details == {"timeout_s": 1, "layer": "auth"}


def test_a_stall_past_the_overall_cap_is_the_cap(pg_protocol_peer: Any) -> None:
    peer = pg_protocol_peer(PgScript(steps=(Sleep(3),), tls=False))
    result, ctx = login(peer.url(password="pw", sslmode="disable"), timeout=5, total_timeout=1)
    assert said(result)[:3] == (
        "fail", "did not finish: timed out (overall cap 1 s)",
        "Rerun with a larger --total-timeout; auth was still waiting when the cap was reached",
    )
    assert result.details == {"total_timeout_s": 1}
    assert ctx.facts["abandoned"] is True
