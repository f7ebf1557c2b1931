"""What the tcp line says, word for word: refused, timed out, unreachable, other errors, and mixes of addresses."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_probe_tcp import run_tcp

from neondoctor.probes import tcp
from neondoctor.probes.base import Address

NEON_HOST = "ep-cool-darkness-123456.us-east-2.aws.neon.tech"
REFUSED_TEXT = "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?"


def said(result: Any) -> tuple[str, str, str | None, bool, str | None, str | None]:
    top = result.matches[0] if result.matches else {}
    return (str(result.status), result.summary, result.next_step, result.exact_next_step, top.get("id"),
            top.get("excerpt"))


def attempts(result: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in a.items() if k != "ms"} for a in result.details["attempts"]]


@pytest.fixture
def listener() -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def stand_in_connect(monkeypatch: pytest.MonkeyPatch, failures: dict[str, BaseException]) -> None:
    """connect() raises the given error for these IPs (a network this machine cannot make) and is real otherwise."""
    real = tcp.connect

    def connect(address: Address, timeout: float) -> socket.socket:
        if address.ip in failures:
            raise failures[address.ip]
        return real(address, timeout)

    monkeypatch.setattr(tcp, "connect", connect)


def test_refused(closed_port: Any) -> None:
    host, port = closed_port
    result, _ = run_tcp(f"postgresql://a:pw@{host}:{port}/app")
    assert said(result) == (
        "fail",
        f"cannot connect: 127.0.0.1:{port} refused",
        f"Nothing listens on 127.0.0.1:{port}: check the port, that the server is running, and that its "
        "listen_addresses includes this interface",
        True,
        "tcp-connection-refused",
        f'connection to server at "127.0.0.1", port {port} failed: {REFUSED_TEXT}',
    )
    assert attempts(result) == [
        {"ip": "127.0.0.1", "family": "ipv4", "port": port, "host": "127.0.0.1", "outcome": "refused",
         "error": "Connection refused"}
    ]


def test_refused_on_a_neon_host_names_neons_port(closed_port: Any) -> None:
    _, port = closed_port
    result, _ = run_tcp(f"postgresql://a:pw@{NEON_HOST}:{port}/app?hostaddr=127.0.0.1")
    status, _summary, step, exact, _, excerpt = said(result)
    assert (status, step, exact) == (
        "fail", f"Nothing listens on 127.0.0.1:{port}: Neon listens on port 5432; check the port in the connection "
        "string", True,
    )
    assert excerpt == f'connection to server at "{NEON_HOST}" (127.0.0.1), port {port} failed: {REFUSED_TEXT}'


def test_silently_dropped_syns(blackhole: tuple[str, int]) -> None:
    host, port = blackhole
    result, _ = run_tcp(f"postgresql://a@{host}:{port}/app", timeout=0.4)
    ms = result.details["attempts"][0]["ms"]
    assert said(result) == (
        "fail",
        f"cannot connect: 127.0.0.1:{port} timed out after 0.4 s",
        f"The connection request to 127.0.0.1:{port} got no answer in {ms / 1000:.1f} s: packets are silently dropped "
        f"by a firewall, security group or network that blocks port {port} (a server that is merely slow or starting "
        "still accepts TCP at once); try from another network or ask your network admin",
        True,
        "tcp-timeout",
        f'connection to server at "127.0.0.1", port {port} failed: timeout expired',
    )
    assert attempts(result)[0]["error"] == "no answer within 0.4 s"


def test_unreachable_and_other_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in_connect(monkeypatch, {
        "2001:db8::1": OSError(errno.ENETUNREACH, "Network is unreachable"),
        "192.0.2.1": OSError(errno.EACCES, "Permission denied"),
        "192.0.2.2": OSError("no errno here"),
    })
    unreachable, _ = run_tcp("postgresql://a@h.invalid/app", addresses=[Address("ipv6", "2001:db8::1", 5432)])
    assert said(unreachable)[:4] == (
        "fail",
        "cannot connect: [2001:db8::1]:5432 unreachable (Network is unreachable)",
        "This machine has no route to 2001:db8::1 (ipv6): check the network; for IPv6-only trouble connect over IPv4 "
        "(hostaddr=<IPv4 address>)",
        True,
    )
    assert said(unreachable)[5] == (
        'connection to server at "2001:db8::1", port 5432 failed: Network is unreachable'
    )
    denied, _ = run_tcp("postgresql://a@h.invalid/app", addresses=[Address("ipv4", "192.0.2.1", 5432)])
    assert said(denied)[:4] == (
        "fail", "cannot connect: 192.0.2.1:5432 failed (Permission denied)",
        "Connecting to 192.0.2.1:5432 failed: Permission denied", False,
    )
    assert attempts(denied)[0]["outcome"] == "error"
    bare, _ = run_tcp("postgresql://a@h.invalid/app", addresses=[Address("ipv4", "192.0.2.2", 5432)])
    assert bare.summary == "cannot connect: 192.0.2.2:5432 failed (no errno here)"


def test_the_worst_failure_decides_the_next_step(monkeypatch: pytest.MonkeyPatch, closed_port: Any) -> None:
    _, port = closed_port
    stand_in_connect(monkeypatch, {"192.0.2.1": TimeoutError(), "2001:db8::1": OSError(errno.EHOSTUNREACH, "No route")})
    addresses = [Address("ipv6", "2001:db8::1", port), Address("ipv4", "192.0.2.1", port),
                 Address("ipv4", "127.0.0.1", port)]
    result, _ = run_tcp("postgresql://a@h.invalid/app", addresses=addresses)
    _status, summary, step, _, rule, _ = said(result)
    assert summary == (
        f"cannot connect: [2001:db8::1]:{port} unreachable (No route); 192.0.2.1:{port} timed out after 0.0 s; "
        f"127.0.0.1:{port} refused"
    )
    assert step is not None and step.startswith(f"Nothing listens on 127.0.0.1:{port}")
    assert rule == "tcp-connection-refused"
    timeout_first, _ = run_tcp("postgresql://a@h.invalid/app", addresses=addresses[:2])
    assert timeout_first.next_step is not None and timeout_first.next_step.startswith(
        f"The connection request to 192.0.2.1:{port} got no answer")


def test_a_failing_ipv6_address_before_a_working_ipv4_one(monkeypatch: pytest.MonkeyPatch, listener: int) -> None:
    stand_in_connect(monkeypatch, {"2001:db8::1": OSError(errno.ENETUNREACH, "Network is unreachable")})
    addresses = [Address("ipv6", "2001:db8::1", listener), Address("ipv4", "127.0.0.1", listener)]
    result, ctx = run_tcp("postgresql://a@h.invalid/app", addresses=addresses)
    lost, took = (a["ms"] for a in result.details["attempts"])
    assert said(result)[:4] == (
        "warn",
        f"[2001:db8::1]:{listener} unreachable (Network is unreachable); 127.0.0.1:{listener} connected in "
        f"{took:.1f} ms. libpq tries the addresses in this order, so it loses {lost:.0f} ms before one that works",
        "IPv6 does not work from here: add hostaddr=127.0.0.1 to use the IPv4 path directly, or fix the machine's "
        "IPv6 route",
        False,
    )
    assert ctx.facts["tcp_address"] == addresses[1] and ctx.facts["tcp_connect_ms"] == round(took, 1)


def test_a_failing_address_after_the_one_that_works(monkeypatch: pytest.MonkeyPatch, listener: int) -> None:
    stand_in_connect(monkeypatch, {"192.0.2.1": OSError(errno.EACCES, "Permission denied")})
    addresses = [Address("ipv4", "127.0.0.1", listener), Address("ipv4", "192.0.2.1", listener)]
    result, _ctx = run_tcp("postgresql://a@h.invalid/app", addresses=addresses)
    took = result.details["attempts"][0]["ms"]
    assert said(result)[:3] == (
        "warn",
        f"192.0.2.1:{listener} failed (Permission denied); 127.0.0.1:{listener} connected in {took:.1f} ms. libpq "
        "connects to the first address, so the failing ones only matter if it goes away",
        f"Connecting to 192.0.2.1:{listener} failed: Permission denied",
    )


def test_every_address_working_lists_each_and_keeps_the_first(listener: int) -> None:
    with socket.create_server(("127.0.0.1", 0)) as second_listener:
        other = second_listener.getsockname()[1]
        addresses = [Address("ipv4", "127.0.0.1", listener), Address("ipv4", "127.0.0.1", other)]
        result, ctx = run_tcp("postgresql://a@h.invalid/app", addresses=addresses)
    first, second = (a["ms"] for a in result.details["attempts"])
    assert said(result)[:3] == (
        "pass", f"connected to 127.0.0.1:{listener} in {first:.1f} ms, 127.0.0.1:{other} in {second:.1f} ms", None
    )
    assert ctx.facts["tcp_address"] == addresses[0]


@pytest.mark.parametrize(
    ("host", "lead"),
    [("localhost", "The name resolves only to IPv6 (::1), and the server"), ("::1", "The server")],
)
def test_ipv6_refused_where_ipv4_answers_says_the_server_listens_on_ipv4_only(
    monkeypatch: pytest.MonkeyPatch, listener: int, host: str, lead: str
) -> None:
    stand_in_connect(monkeypatch, {"::1": ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")})
    ctx_hosts = {("::1", listener): host}
    result, _ = run_tcp("postgresql://a@h.invalid/app", addresses=[Address("ipv6", "::1", listener)],
                        hosts=ctx_hosts)
    assert said(result)[:4] == (
        "fail",
        f"cannot connect: [::1]:{listener} refused; the name gave only IPv6 addresses",
        f"{lead} listens on IPv4 only: 127.0.0.1:{listener} accepts, [::1]:{listener} refuses. Use host=127.0.0.1 (or "
        "an A record for the name), or add '::1' (or '*') to the server's listen_addresses and restart it",
        True,
    )


def test_ipv6_refused_with_nothing_on_ipv4_either(monkeypatch: pytest.MonkeyPatch, closed_port: Any) -> None:
    _, port = closed_port
    stand_in_connect(monkeypatch, {"::1": ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
                                   "2001:db8::5": ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")})
    for ip in ("::1", "2001:db8::5"):
        result, _ = run_tcp("postgresql://a@h.invalid/app", addresses=[Address("ipv6", ip, port)])
        assert result.next_step == (
            f"The host resolves only to IPv6 and nothing listens on [{ip}]:{port}: if the server listens on IPv4 only, "
            "add '::' (or '*') to its listen_addresses, or connect to its IPv4 address (hostaddr=...) or give the "
            "name an A record"
        )


def test_ipv6_refused_with_a_silent_ipv4_waits_a_second_at_most(
    monkeypatch: pytest.MonkeyPatch, blackhole: tuple[str, int]
) -> None:
    _, port = blackhole
    stand_in_connect(monkeypatch, {"::1": ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")})
    started = time.monotonic()
    result, _ = run_tcp("postgresql://a@h.invalid/app", addresses=[Address("ipv6", "::1", port)], timeout=5)
    assert time.monotonic() - started < 1.6
    assert (result.next_step or "").startswith("The host resolves only to IPv6 and nothing listens on [::1]")
