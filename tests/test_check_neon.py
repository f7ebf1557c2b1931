"""`check` on Neon: SNI and the endpoint id, pooled vs direct, cold starts and --retries, against the scripted
Neon proxy on loopback (Neon host names resolve to 127.0.0.1 through the loopback DNS server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from peers import (
    NEON_COMPUTE_UNREACHABLE,
    NEON_TOO_MANY_CONNECTIONS,
    AskPassword,
    Error,
    NeonPresets,
    PgProtocolPeer,
    PgScript,
    Ready,
    Sleep,
    neon_proxy,
)
from test_check import NEON_HOST, check

from neondoctor import neon
from neondoctor.target import parse_target

ENDPOINT = "ep-cool-darkness-123456"
POOLER_HOST = "ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech"
SECRET = "npg_NeonSecret42"


@dataclass(frozen=True)
class FirstOnly:
    """A step the scripted proxy plays for the first connection that reaches it only (a compute that wakes once)."""

    step: Any


class OnceThenFine(PgProtocolPeer):
    def __init__(self, script: PgScript, **kwargs: Any) -> None:
        super().__init__(script, **kwargs)
        self._fired: set[int] = set()

    def _run_step(self, wire: Any, seen: Any, step: Any) -> bool:
        if isinstance(step, FirstOnly):
            with self._lock:
                if id(step) in self._fired:
                    return True
                self._fired.add(id(step))
            return super()._run_step(wire, seen, step.step)
        return super()._run_step(wire, seen, step)


@pytest.fixture
def once_peer() -> Iterator[Callable[[PgScript], OnceThenFine]]:
    peers: list[OnceThenFine] = []

    def make(script: PgScript) -> OnceThenFine:
        peer = OnceThenFine(script).start()
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.stop()


def neon_url(peer: PgProtocolPeer, host: str = NEON_HOST, **params: Any) -> str:
    return peer.url(password=SECRET, host=host, sslmode="verify-full", sslrootcert=peer.ca_path, **params)


def logins(peer: PgProtocolPeer) -> int:
    return len([c for c in peer.connections if c.params])


def test_neon_host_sends_sni_and_says_so(pg_protocol_peer: Callable[..., PgProtocolPeer],
                                          dns_server: Callable[..., str]) -> None:
    peer = pg_protocol_peer(NeonPresets.accepts)
    run = check(neon_url(peer), "--nameserver", dns_server({NEON_HOST: "127.0.0.1"}), "--json", secret=SECRET)
    assert run.statuses()["auth"] == "pass"
    url = run.probe("url")
    assert url["details"]["sni"]["sent"] is True and url["details"]["libpq_version"]
    assert f"sends SNI {NEON_HOST}: Neon routes to endpoint {ENDPOINT}" in " ".join(url["details"]["notes"])
    assert peer.last.sni == NEON_HOST


def test_sslsni_0_on_a_neon_host_gets_the_exact_fix(pg_protocol_peer: Callable[..., PgProtocolPeer],
                                                    dns_server: Callable[..., str]) -> None:
    peer = pg_protocol_peer(NeonPresets.endpoint_not_specified)
    run = check(neon_url(peer, sslsni="0"), "--nameserver", dns_server({NEON_HOST: "127.0.0.1"}), "--json",
                secret=SECRET)
    assert run.probe("url")["status"] == "warn"
    assert "sslsni=0 turns it off" in run.probe("url")["summary"]
    failed = run.report["failed_probe"]
    assert failed in ("tls", "auth")
    assert run.rule_ids(failed)[0] == "neon-endpoint-id-missing"
    step = run.report["verdict"]["next_step"]
    assert f"options=endpoint%3D{ENDPOINT}" in step and f"endpoint={ENDPOINT};<password>" in step
    assert "sslsni=0" in step
    assert all(c.sni is None for c in peer.connections)


def test_a_tunnel_to_localhost_asks_for_the_endpoint_id_by_name(
    pg_protocol_peer: Callable[..., PgProtocolPeer],
) -> None:
    peer = pg_protocol_peer(NeonPresets.endpoint_not_specified)
    run = check(neon_url(peer, host="127.0.0.1"), "--json", secret=SECRET)
    assert run.report["failed_probe"] == "auth"
    step = run.report["verdict"]["next_step"]
    assert "the host 127.0.0.1 is an IP address" in step
    assert "options=endpoint%3D%3Cendpoint-id%3E" in step or "options=endpoint%3D<endpoint-id>" in step
    assert "your endpoint id is the first part of the Neon host name" in step


def test_the_endpoint_in_options_routes_a_tunnel(pg_protocol_peer: Callable[..., PgProtocolPeer]) -> None:
    peer = pg_protocol_peer(NeonPresets.accepts)
    run = check(neon_url(peer, host="127.0.0.1", options=f"endpoint={ENDPOINT}"), "--json", secret=SECRET)
    assert run.statuses()["auth"] == "pass"
    assert peer.last.params.get("options") == f"endpoint={ENDPOINT}"
    notes = " ".join(run.probe("url")["details"]["notes"])
    assert f"Neon routes by the endpoint id {ENDPOINT} in options (no SNI" in notes


def test_a_custom_cname_to_neon_gets_the_id_from_the_chain(pg_protocol_peer: Callable[..., PgProtocolPeer],
                                                           dns_server: Callable[..., str]) -> None:
    peer = pg_protocol_peer(NeonPresets.endpoint_not_specified)
    custom = "db.neon.invalid"
    nameserver = dns_server({custom: {"CNAME": NEON_HOST}, NEON_HOST: "127.0.0.1"})
    run = check(neon_url(peer, host=custom), "--nameserver", nameserver, "--json", secret=SECRET)
    assert run.report["failed_probe"] == "auth"
    step = run.report["verdict"]["next_step"]
    assert f"the host {custom} is not the ep-… name" in step
    assert f"options=endpoint%3D{ENDPOINT}" in step


def test_a_pooled_host_says_what_breaks_and_names_the_direct_twin() -> None:
    run = check(f"postgresql://alice:{SECRET}@{POOLER_HOST}/neondb?sslmode=require", "--json", "--only", "url",
                secret=SECRET)
    notes = " ".join(run.probe("url")["details"]["notes"])
    for words in ("PgBouncer in transaction mode", "session SET", "LISTEN/NOTIFY", "advisory locks",
                  "SQL-level PREPARE", "temporary tables", "startup parameters", "migrations and pg_dump",
                  f"direct host {NEON_HOST}"):
        assert words in notes


def test_a_cold_start_is_told_from_one_extra_connect(once_peer: Callable[[PgScript], OnceThenFine],
                                                     dns_server: Callable[..., str]) -> None:
    peer = once_peer(neon_proxy(AskPassword(), FirstOnly(Sleep(1.8)), Ready(server_version="17.5")))
    run = check(neon_url(peer, connect_timeout="2"), "--nameserver", dns_server({NEON_HOST: "127.0.0.1"}), "--json",
                secret=SECRET)
    auth = run.probe("auth")
    assert "compute was suspended; woke in" in auth["summary"], auth["summary"]
    assert auth["details"]["second_connect_ms"] < 1000
    assert logins(peer) == 2
    step = run.report["verdict"]["next_step"]
    assert "connect_timeout=2 leaves too little" in step and "pool_pre_ping" in step and "300 s" in step


def test_retries_cure_a_compute_that_was_waking(once_peer: Callable[[PgScript], OnceThenFine],
                                                 dns_server: Callable[..., str]) -> None:
    peer = once_peer(neon_proxy(FirstOnly(Error(NEON_COMPUTE_UNREACHABLE)), AskPassword(), Ready()))
    nameserver = dns_server({NEON_HOST: "127.0.0.1"})
    run = check(neon_url(peer), "--nameserver", nameserver, "--retries", "2", "--json", secret=SECRET)
    auth = run.probe("auth")
    assert auth["status"] == "warn", auth
    assert auth["details"]["attempts"] == 2
    assert "retry the first connect with backoff" in run.report["verdict"]["next_step"]
    assert "after 1 retry; first: Couldn't connect to compute node" in auth["summary"]


def test_without_retries_the_waking_compute_is_the_finding(once_peer: Callable[[PgScript], OnceThenFine],
                                                           dns_server: Callable[..., str]) -> None:
    peer = once_peer(neon_proxy(FirstOnly(Error(NEON_COMPUTE_UNREACHABLE)), AskPassword(), Ready()))
    run = check(neon_url(peer), "--nameserver", dns_server({NEON_HOST: "127.0.0.1"}), "--json", secret=SECRET)
    assert run.report["failed_probe"] == "auth"
    assert run.rule_ids("auth")[0] == "neon-compute-unreachable"


def test_the_rate_limit_is_not_retried(pg_protocol_peer: Callable[..., PgProtocolPeer],
                                       dns_server: Callable[..., str]) -> None:
    peer = pg_protocol_peer(neon_proxy(Error(NEON_TOO_MANY_CONNECTIONS)))
    run = check(neon_url(peer), "--nameserver", dns_server({NEON_HOST: "127.0.0.1"}), "--retries", "3", "--json",
                secret=SECRET)
    assert run.report["failed_probe"] == "auth"
    assert run.rule_ids("auth")[0] == "neon-too-many-connection-attempts"
    assert logins(peer) == 1


def test_sni_facts_for_old_clients_and_addresses() -> None:
    target = parse_target(f"postgresql://alice:{SECRET}@{NEON_HOST}/neondb?sslmode=require")
    old = neon.sni(target, libpq=130011)
    assert not old.sent and old.why_not == "libpq 13.11 is older than 14" and old.endpoint_id == ENDPOINT
    assert neon.sni(target, libpq=160002).sent
    by_password = parse_target(f"postgresql://alice:endpoint%3D{ENDPOINT}%3B{SECRET}@10.0.0.1/neondb")
    info = neon.sni(by_password)
    assert info.why_not == "the host 10.0.0.1 is an IP address" and info.routed_by == "password"
    assert neon.direct_twin(POOLER_HOST) == NEON_HOST
