"""tls: SSLRequest, then a TLS handshake with SNI; report the certificate and what sslmode makes of it."""

from __future__ import annotations

from neondoctor.probes.base import CheckContext, ProbeResult, Status

name = "tls"


def run(ctx: CheckContext) -> ProbeResult:
    return ProbeResult(name, Status.SKIP, "not implemented yet")
