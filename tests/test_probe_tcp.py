"""The tcp probe: refused, timed out (a full accept queue drops SYNs), unreachable, and a mix of them."""

from __future__ import annotations

import errno
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from pgcluster import PgCluster, ipv6_loopback_works
from probekit import rule_ids

from neondoctor.cli import cli
from neondoctor.probes import dns as dns_probe
from neondoctor.probes import tcp
from neondoctor.probes.base import Address, CheckContext, CheckOptions, ProbeResult, Status
from neondoctor.target import parse_target

CLEAN_ENV = dict.fromkeys(("DATABASE_URL", "PGHOST", "PGHOSTADDR", "PGPORT", "PGSSLMODE", "PGSSLROOTCERT"))


def run_tcp(
    url: str, addresses: list[Address] | None = None, hosts: dict[tuple[str, int], str] | None = None,
    **options: Any,
) -> tuple[ProbeResult, CheckContext]:
    ctx = CheckContext(parse_target(url), CheckOptions(**options))
    if addresses is None:
        dns_probe.run(ctx)
    else:
        ctx.addresses = addresses
        ctx.facts["address_hosts"] = hosts or {}
    try:
        return tcp.run(ctx), ctx
    finally:
        kept = ctx.facts.pop("tcp_socket", None)
        if kept is not None:
            kept.close()


@pytest.fixture
def ipv4_only_listener() -> Iterator[int]:
    """A port that listens on 127.0.0.1 but is refused on ::1 (like a server with listen_addresses=127.0.0.1)."""
    if not ipv6_loopback_works():
        pytest.skip("no IPv6 loopback")
    for _ in range(20):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as v6:
            try:
                v6.bind(("::1", port))
            except OSError:
                listener.close()
                continue
        listener.listen(8)
        try:
            yield port
        finally:
            listener.close()
        return
    pytest.skip("no port free on both families")


def test_closed_port_is_refused(closed_port: Any) -> None:
    host, port = closed_port
    result, ctx = run_tcp(f"postgresql://a:pw@{host}:{port}/app")
    assert result.status is Status.FAIL
    assert result.summary == f"cannot connect: {host}:{port} refused"
    assert rule_ids(result)[:1] == ["tcp-connection-refused"]
    assert "check the port" in (result.next_step or "")
    assert result.details["attempts"][0]["outcome"] == "refused"
    assert "tcp_socket" not in ctx.facts


def test_healthy_server_connects_and_keeps_the_socket_for_tls(pg: PgCluster) -> None:
    ctx = CheckContext(parse_target(pg.url(host="localhost")), CheckOptions())
    dns_probe.run(ctx)
    result = tcp.run(ctx)
    kept = ctx.facts.pop("tcp_socket")
    try:
        assert result.status is Status.PASS
        assert result.summary.startswith(f"connected to 127.0.0.1:{pg.port} in ")
        attempt = result.details["attempts"][0]
        assert attempt["outcome"] == "connected" and attempt["host"] == "localhost" and attempt["ms"] >= 0
        assert kept.getpeername()[:2] == ("127.0.0.1", pg.port)
        assert ctx.facts["tcp_address"] == Address("ipv4", "127.0.0.1", pg.port)
    finally:
        kept.close()


def test_silently_dropped_syns_time_out_within_the_step(blackhole: tuple[str, int]) -> None:
    host, port = blackhole
    started = time.monotonic()
    result, _ = run_tcp(f"postgresql://a@{host}:{port}/app", timeout=0.4)
    elapsed = time.monotonic() - started
    assert result.status is Status.FAIL
    assert "timed out after 0.4 s" in result.summary
    assert rule_ids(result)[:1] == ["tcp-timeout"]
    assert "firewall" in (result.next_step or "")
    assert elapsed < 1.0


def test_ipv6_refused_but_ipv4_fine_is_a_warning(ipv4_only_listener: int, dns_server: Any) -> None:
    ns = dns_server({"db.test.invalid": ["::1", "127.0.0.1"]})
    result, _ = run_tcp(f"postgresql://a@db.test.invalid:{ipv4_only_listener}/app", nameserver=ns)
    assert result.status is Status.WARN, result.summary
    assert f"[::1]:{ipv4_only_listener} refused" in result.summary
    assert f"127.0.0.1:{ipv4_only_listener} connected" in result.summary
    assert "libpq tries the addresses in this order" in result.summary
    assert "hostaddr=127.0.0.1" in (result.next_step or "")
    assert [a["outcome"] for a in result.details["attempts"]] == ["refused", "connected"]


def test_unreachable_is_told_apart(monkeypatch: pytest.MonkeyPatch, pg: PgCluster) -> None:
    """ENETUNREACH needs a network with no route; a stand-in connect() raises it for the IPv6 address only."""
    real_connect = tcp.connect

    def connect(address: Address, timeout: float) -> socket.socket:
        if address.family == "ipv6":
            raise OSError(errno.ENETUNREACH, "Network is unreachable")
        return real_connect(address, timeout)

    monkeypatch.setattr(tcp, "connect", connect)
    both = [Address("ipv6", "2001:db8::1", pg.port), Address("ipv4", "127.0.0.1", pg.port)]
    mixed, _ = run_tcp(pg.url(), addresses=both)
    assert mixed.status is Status.WARN
    assert "unreachable (Network is unreachable)" in mixed.summary
    assert "IPv6 does not work from here" in (mixed.next_step or "")

    only_v6, _ = run_tcp(pg.url(), addresses=both[:1])
    assert only_v6.status is Status.FAIL
    assert rule_ids(only_v6)[:1] == ["tcp-network-unreachable"]
    assert "no route" in (only_v6.next_step or "")


def test_every_address_is_tried_and_only_one_socket_is_kept(pg: PgCluster) -> None:
    if not pg.ipv6:
        pytest.skip("cluster has no IPv6 listener")
    addresses = [Address("ipv6", "::1", pg.port), Address("ipv4", "127.0.0.1", pg.port)]
    time.sleep(0.3)  # let the backends of earlier tests finish logging before the window opens
    mark = pg.log_mark()
    result, ctx = run_tcp(pg.url(), addresses=addresses)
    assert result.status is Status.PASS
    assert [a["outcome"] for a in result.details["attempts"]] == ["connected", "connected"]
    assert ctx.facts["tcp_address"].ip == "::1"
    time.sleep(0.3)
    log = pg.log_since(mark)
    received = [line for line in log.splitlines() if "connection received" in line]
    assert len(received) == 2, log
    assert not [line for line in log.splitlines() if ("ERROR" in line or "FATAL" in line)], log


def test_no_addresses_skips() -> None:
    result = tcp.run(CheckContext(parse_target("postgresql://a@/app"), CheckOptions()))
    assert result.status is Status.SKIP


def test_check_command_fails_at_tcp_with_the_rule(closed_port: Any) -> None:
    host, port = closed_port
    url = f"postgresql://alice:pw9secret@{host}:{port}/app"
    result = CliRunner().invoke(cli, ["check", url, "--json"], env=CLEAN_ENV)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["verdict"]["failed_probe"] == "tcp"
    assert report["verdict"]["rule"] == "tcp-connection-refused"
    statuses = {p["name"]: p["status"] for p in report["probes"]}
    assert statuses["dns"] == "skip" and statuses["tcp"] == "fail" and statuses["tls"] == "skip"
    assert next(p for p in report["probes"] if p["name"] == "tls")["summary"] == "blocked by tcp"
    assert "pw9secret" not in result.output
