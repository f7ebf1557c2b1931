"""Peers that are not PostgreSQL servers (or break its protocol): the verdict says what the peer did.

A real server cannot show these, so the scripted peer plays them. Each case asserts what a user
sees: the failing probe, the words of the summary and of the next step (never "run neondoctor
check", the command just run), exit 1, and a bounded time.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner
from peers import Error, Flood, PgScript, Raw, Sleep, Trickle, _fields, _message

from neondoctor.cli import cli
from neondoctor.exitcodes import ExitCode


def _error_response(chars: int) -> bytes:
    return _message(b"E", _fields([("S", "FATAL"), ("C", "XX000"), ("M", "x" * chars)]))


_NOTICE = _message(b"N", _fields([("S", "NOTICE"), ("C", "00000"), ("M", "hello")]))
_AUTH_OK = b"R\0\0\0\x08\0\0\0\0"
IS_IT_POSTGRES = "is really a PostgreSQL server"

CASES: dict[str, tuple[PgScript, tuple[str, ...], tuple[str, ...]]] = {
    "10 MB error message": (
        PgScript(steps=(Raw(_error_response(10 << 20)),), tls=False),
        ("does not speak PostgreSQL's protocol", "error message libpq could not read", "longer than 30,000 bytes"),
        (IS_IT_POSTGRES,),
    ),
    "20 KB error message": (
        PgScript(steps=(Error("y" * 20_000),), tls=False),
        ("does not speak PostgreSQL's protocol", "a 20 KB error message"),
        (IS_IT_POSTGRES,),
    ),
    "unknown authentication type": (
        PgScript(steps=(Raw(_message(b"R", struct.pack("!I", 99))), Sleep(3)), tls=False),
        ("an authentication method this client does not know (type 99",),
        (IS_IT_POSTGRES, "upgrade libpq"),
    ),
    "bogus message length": (
        PgScript(steps=(Raw(b"R" + struct.pack("!I", 0x7FFFFFF0) + b"\0\0\0\0"), Sleep(3)), tls=False),
        ("a malformed authentication request",),
        (IS_IT_POSTGRES,),
    ),
    "flood of notices": (
        PgScript(steps=(Flood(_NOTICE, 100_000), Sleep(3)), tls=False),
        ("a notice before any authentication request",),
        (IS_IT_POSTGRES,),
    ),
}


def run_check(url: str, timeout: float = 2) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["check", "--json", "--timeout", f"{timeout:g}", url], env={"NO_COLOR": "1"})
    elapsed = time.monotonic() - started
    return result.exit_code, json.loads(result.stdout), elapsed


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_peer_that_breaks_the_protocol_is_named_for_what_it_did(
    pg_protocol_peer: Callable[..., Any], case: str
) -> None:
    script, summary_words, next_words = CASES[case]
    peer = pg_protocol_peer(script)
    code, report, elapsed = run_check(peer.url(password="pw"))
    verdict = report["verdict"]
    assert code == ExitCode.FINDINGS
    assert verdict["failed_probe"] == "auth"
    assert verdict["summary"].startswith("Failed at auth: ")
    assert "tcp problem" not in verdict["summary"]
    for words in summary_words:
        assert words in verdict["summary"], verdict["summary"]
    for words in next_words:
        assert words in verdict["next_step"], verdict["next_step"]
    assert f":{peer.port}" in verdict["next_step"]
    assert "neondoctor check" not in verdict["next_step"]
    auth = next(p for p in report["probes"] if p["name"] == "auth")
    assert auth["details"]["layer"] == "protocol"
    assert len(json.dumps(report)) < 20_000, "the peer's bytes are not copied whole into the report"
    assert elapsed < 4.0, f"{case} took {elapsed:.1f} s"


def test_garbage_after_ssl_accepted_is_not_called_postgres(pg_protocol_peer: Callable[..., Any]) -> None:
    peer = pg_protocol_peer(PgScript(steps=(), tls=False, ssl_reply=b"S" + b"HTTP/1.1 400 Bad Request\r\n\r\n"))
    code, report, elapsed = run_check(peer.url(password="pw"))
    verdict = report["verdict"]
    assert code == ExitCode.FINDINGS
    assert verdict["failed_probe"] in ("tls", "auth")
    assert "not a PostgreSQL server" in verdict["summary"] or "does not speak PostgreSQL" in verdict["summary"]
    assert "a tcp problem" not in verdict["summary"], "tcp worked in this very run"
    assert "neondoctor check" not in verdict["next_step"]
    assert elapsed < 4.0


@pytest.mark.parametrize("timeout", [1.0, 1.5, 2.0])
def test_a_trickling_peer_does_not_hold_auth_past_the_step_timeout(
    pg_protocol_peer: Callable[..., Any], timeout: float
) -> None:
    peer = pg_protocol_peer(PgScript(steps=(Trickle(_AUTH_OK * 20, 0.5),), tls=False))
    code, report, elapsed = run_check(peer.url(password="pw", sslmode="disable"), timeout=timeout)
    auth = next(p for p in report["probes"] if p["name"] == "auth")
    assert code == ExitCode.FINDINGS
    assert auth["status"] == "fail"
    assert auth["duration_ms"] < (timeout + 0.4) * 1000, auth["duration_ms"]
    assert f"did not finish PostgreSQL's start-up within {timeout:g} s" in auth["summary"]
    assert "tcp problem" not in report["verdict"]["summary"]
    assert "larger --timeout" in report["verdict"]["next_step"]
    assert elapsed < timeout + 1.5


# Real texts: psycopg 3.3.9 with libpq 18.6 against the scripted peer in tests/peers.py (this lab).
_PREFIX = 'connection failed: connection to server at "127.0.0.1", port 34639 failed: '


@pytest.mark.parametrize(
    ("libpq_text", "words"),
    [
        ("received invalid response to SSL negotiation: H", "'H' in answer to the SSL request"),
        ("expected authentication request from server, but received H", "a web server?"),
        ('lost synchronization with server: got message type "S", length 2147483632', "bogus length (2,147,483,632"),
        ("authentication method 99 not supported", "type 99"),
        ("", "error message libpq could not read"),
    ],
)
def test_libpq_words_for_a_broken_protocol_name_what_the_peer_did(libpq_text: str, words: str) -> None:
    from neondoctor.probes.auth import protocol_violation

    seen = protocol_violation(_PREFIX + libpq_text)
    assert seen is not None and words in seen


@pytest.mark.parametrize(
    "libpq_text",
    [
        'FATAL:  password authentication failed for user "alice"',
        "SSL error: unexpected eof while reading",
        "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally",
        "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?",
    ],
)
def test_what_real_servers_say_is_not_called_a_protocol_violation(libpq_text: str) -> None:
    from neondoctor.probes.auth import protocol_violation

    assert protocol_violation(_PREFIX + libpq_text) is None
