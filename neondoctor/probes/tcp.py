"""tcp: connect to every resolved address and tell refused, timed out and unreachable apart."""

from __future__ import annotations

import socket

from neondoctor.probes.base import CheckContext, ProbeResult, Status

name = "tcp"


def run(ctx: CheckContext) -> ProbeResult:
    if not ctx.addresses:
        return ProbeResult(name, Status.SKIP, "no TCP address to connect to")
    errors = []
    for address in ctx.addresses:
        try:
            sock = socket.create_connection((address.ip, address.port), timeout=ctx.step_timeout())
        except OSError as exc:
            errors.append(f"{address.ip}:{address.port}: {exc}")
            continue
        sock.close()
        return ProbeResult(name, Status.PASS, f"connected to {address.ip}:{address.port}")
    return ProbeResult(name, Status.FAIL, "; ".join(errors))
