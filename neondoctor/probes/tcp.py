"""tcp: connect to every resolved address and tell refused, timed out and unreachable apart.

The first socket that connects is kept open in ``ctx.facts["tcp_socket"]`` for tls, so a healthy
check costs the server two connections: this one (with TLS on it) and the psycopg session.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import time
from dataclasses import dataclass
from typing import Any

from neondoctor.probes.base import Address, CheckContext, ProbeResult, Status
from neondoctor.probes.dns import explain

name = "tcp"

_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}
_WORST_FIRST = ("refused", "timeout", "unreachable", "error")
_RULE_TEXT = {
    "refused": "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?",
    "timeout": "timeout expired",
}


@dataclass
class Attempt:
    """One TCP connect to one address, and how it ended."""

    address: Address
    host: str
    outcome: str
    """connected | refused | timeout | unreachable | error"""
    ms: float
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "ip": self.address.ip,
            "family": self.address.family,
            "port": self.address.port,
            "host": self.host,
            "outcome": self.outcome,
            "ms": round(self.ms, 1),
            **({"error": self.error} if self.error else {}),
        }


def endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def connect(address: Address, timeout: float) -> socket.socket:
    family = socket.AF_INET6 if address.family == "ipv6" else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((address.ip, address.port))
    except BaseException:
        sock.close()
        raise
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _attempt(address: Address, host: str, timeout: float) -> tuple[Attempt, socket.socket | None]:
    started = time.monotonic()
    try:
        sock = connect(address, timeout)
    except TimeoutError:
        return Attempt(address, host, "timeout", _ms(started), f"no answer within {timeout:.1f} s"), None
    except ConnectionRefusedError as exc:
        return Attempt(address, host, "refused", _ms(started), exc.strerror or "Connection refused"), None
    except OSError as exc:
        outcome = "unreachable" if exc.errno in _UNREACHABLE else "error"
        return Attempt(address, host, outcome, _ms(started), exc.strerror or str(exc)), None
    return Attempt(address, host, "connected", _ms(started)), sock


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000


def libpq_text(attempt: Attempt) -> str:
    """The error as libpq (>= 14) words it, so the rules apply."""
    where = f'"{attempt.host}"' + ("" if attempt.host == attempt.address.ip else f" ({attempt.address.ip})")
    reason = _RULE_TEXT.get(attempt.outcome) or attempt.error or attempt.outcome
    return f"connection to server at {where}, port {attempt.address.port} failed: {reason}"


def _next_step(attempt: Attempt, ctx: CheckContext) -> str:
    where = endpoint(attempt.address.ip, attempt.address.port)
    neon = ctx.target.neon is not None
    if attempt.outcome == "refused":
        if neon:
            return f"Nothing listens on {where}: Neon listens on port 5432; check the port in the connection string"
        return (
            f"Nothing listens on {where}: check the port, that the server is running, and that its "
            "listen_addresses includes this interface"
        )
    if attempt.outcome == "timeout":
        return (
            f"The connection request to {where} got no answer in {attempt.ms / 1000:.1f} s: packets are silently "
            f"dropped by a firewall, security group or network that blocks port {attempt.address.port} (a server that "
            "is merely slow or starting still accepts TCP at once); try from another network or ask your network admin"
        )
    if attempt.outcome == "unreachable":
        return (
            f"This machine has no route to {attempt.address.ip} ({attempt.address.family}): check the network; "
            "for IPv6-only trouble connect over IPv4 (hostaddr=<IPv4 address>)"
        )
    return f"Connecting to {where} failed: {attempt.error}"


def _ipv6_only_step(attempt: Attempt, ctx: CheckContext) -> str:
    """Only IPv6 was tried and refused: a server listening on IPv4 only? For ::1, 127.0.0.1 answers the question."""
    port = attempt.address.port
    if attempt.address.ip == "::1":
        try:
            probe = connect(Address("ipv4", "127.0.0.1", port), min(1.0, ctx.step_timeout()))
        except OSError:
            probe = None
        if probe is not None:
            with contextlib.suppress(OSError):
                probe.close()
            named = attempt.host != attempt.address.ip
            lead = "The name resolves only to IPv6 (::1), and the server" if named else "The server"
            return (
                lead + f" listens on IPv4 only: 127.0.0.1:{port} accepts, [::1]:{port} refuses. Use "
                "host=127.0.0.1 (or an A record for the name), or add '::1' (or '*') to the server's listen_addresses "
                "and restart it"
            )
    return (
        f"The host resolves only to IPv6 and nothing listens on [{attempt.address.ip}]:{port}: if the server listens "
        "on IPv4 only, add '::' (or '*') to its listen_addresses, or connect to its IPv4 address (hostaddr=...) or "
        "give the name an A record"
    )


def run(ctx: CheckContext) -> ProbeResult:
    if not ctx.addresses:
        return ProbeResult(name, Status.SKIP, "no TCP address to connect to (Unix socket or nothing resolved)")
    from neondoctor.probes.tls import warm_up

    warm_up(ctx)
    hosts: dict[tuple[str, int], str] = ctx.facts.get("address_hosts") or {}
    attempts: list[Attempt] = []
    kept: socket.socket | None = None
    for address in ctx.addresses:
        host = hosts.get((address.ip, address.port)) or address.ip
        attempt, sock = _attempt(address, host, ctx.step_timeout())
        attempts.append(attempt)
        if sock is None:
            continue
        if kept is None and not ctx.facts.get("abandoned"):
            kept = sock
            ctx.facts["tcp_socket"] = sock
            ctx.facts["tcp_address"] = address
            ctx.facts["tcp_connect_ms"] = round(attempt.ms, 1)
        else:
            with contextlib.suppress(OSError):
                sock.close()

    details = {"attempts": [a.to_json() for a in attempts]}
    connected = [a for a in attempts if a.outcome == "connected"]
    failed = [a for a in attempts if a.outcome != "connected"]

    def shown(a: Attempt) -> str:
        return endpoint(a.address.ip, a.address.port)

    if not failed:
        text = ", ".join(f"{shown(a)} in {a.ms:.1f} ms" for a in connected)
        return ProbeResult(name, Status.PASS, f"connected to {text}", details=details)
    if not connected:
        worst = min(failed, key=lambda a: _WORST_FIRST.index(a.outcome))
        text = "; ".join(f"{shown(a)} {_describe(a)}" for a in failed)
        next_step = _next_step(worst, ctx)
        if worst.outcome == "refused" and all(a.address.family == "ipv6" for a in attempts):
            text += "; the name gave only IPv6 addresses"
            next_step = _ipv6_only_step(worst, ctx)
        return ProbeResult(
            name,
            Status.FAIL,
            ctx.target.redactor(f"cannot connect: {text}"),
            details=details,
            matches=explain(ctx, libpq_text(worst)),
            next_step=next_step,
            exact_next_step=worst.outcome in ("refused", "timeout", "unreachable"),
        )
    first_ok = attempts.index(connected[0])
    before = attempts[:first_ok]
    families = {a.address.family for a in failed}
    text = "; ".join(f"{shown(a)} {_describe(a)}" for a in failed)
    text += "; " + ", ".join(f"{shown(a)} connected in {a.ms:.1f} ms" for a in connected)
    if before:
        lost = sum(a.ms for a in before)
        text += f". libpq tries the addresses in this order, so it loses {lost:.0f} ms before one that works"
    else:
        text += ". libpq connects to the first address, so the failing ones only matter if it goes away"
    next_step = _next_step(failed[0], ctx)
    if "ipv6" in families and connected[0].address.family == "ipv4":
        next_step = (
            f"IPv6 does not work from here: add hostaddr={connected[0].address.ip} to use the IPv4 path "
            "directly, or fix the machine's IPv6 route"
        )
    return ProbeResult(name, Status.WARN, ctx.target.redactor(text), details=details, next_step=next_step)


def _describe(attempt: Attempt) -> str:
    return {
        "refused": "refused",
        "timeout": f"timed out after {attempt.ms / 1000:.1f} s",
        "unreachable": f"unreachable ({attempt.error})",
    }.get(attempt.outcome, f"failed ({attempt.error})")
