"""dns: resolve the target's hosts the way libpq will (getaddrinfo), and ask DNS directly to explain."""

from __future__ import annotations

import socket

from neondoctor.probes.base import Address, CheckContext, ProbeResult, Status

name = "dns"


def run(ctx: CheckContext) -> ProbeResult:
    addresses: list[Address] = []
    for host, port in ctx.target.hosts:
        if not host or host.startswith("/"):
            continue
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            return ProbeResult(name, Status.FAIL, ctx.target.redactor(f"{host}: {exc}"))
        for family, _, _, _, sockaddr in infos:
            addresses.append(Address("ipv6" if family == socket.AF_INET6 else "ipv4", sockaddr[0], port))
    ctx.addresses = addresses
    return ProbeResult(name, Status.PASS, f"{len(addresses)} address(es)")
