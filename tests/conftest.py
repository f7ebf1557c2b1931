"""Shared fixtures: real PostgreSQL clusters (session-scoped, shared by config) and fake loopback peers.

Clusters: ``pg`` (TLS via the test CA), ``pg_nossl``, and ``pg_factory(**config)`` for anything else;
a test that changes a shared cluster (``set_hba``, settings) must put it back (``with cluster.hba(...)``).
Peers: ``silent_peer``, ``garbage_peer``, ``closed_port`` (each unpacks as ``host, port``),
``pg_protocol_peer(script)``, ``dns_server(records)`` (a ``"127.0.0.1:PORT"`` string), ``fake_peers``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pgcluster
import pytest
from peers import ClosedPort, DnsServer, GarbagePeer, Nameserver, PgProtocolPeer, PgScript, SilentPeer
from pgcluster import MISSING_BINARIES, PgCluster, on_ci, start_cluster

PgFactory = Callable[..., PgCluster]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """On SIGTERM (a CI timeout), unwind like Ctrl-C so fixture teardown stops the clusters."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture(autouse=True)
def _fresh_caches_under_mutmut() -> None:
    """Under mutmut, a cached result would hide a function from every test but the first (its stats map each
    test to the functions it reaches, then runs only those tests for a mutant): start each test uncached."""
    if "MUTANT_UNDER_TEST" in os.environ:
        for module in [m for name, m in sys.modules.items() if name.startswith("neondoctor")]:
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


MIN_MAJORS_ON_CI = 2


def _bindir_params() -> list[Any]:
    bindirs = pgcluster.find_bindirs()
    if not bindirs:
        return [pytest.param(None, id="no-pg")]
    return [pytest.param(bindir, id=f"pg{pgcluster.server_major(bindir)}") for bindir in bindirs]


@pytest.fixture(scope="session", params=_bindir_params())
def pg_bindir(request: pytest.FixtureRequest) -> Path:
    """The server binaries; every real-database test runs once per major version found (pg15, pg18, ...)."""
    bindir = request.param
    if bindir is None:
        if on_ci():
            pytest.fail(MISSING_BINARIES, pytrace=False)
        pytest.skip(MISSING_BINARIES)
    majors = len(pgcluster.find_bindirs())
    if on_ci() and majors < MIN_MAJORS_ON_CI:
        pytest.fail(
            f"CI runs the real-database tests on at least {MIN_MAJORS_ON_CI} PostgreSQL major versions, found "
            f"{majors}: .ci/install-postgres-npm installs the newest",
            pytrace=False,
        )
    return bindir


def _config_key(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=repr)


@pytest.fixture(scope="session")
def pg_factory(pg_bindir: Path) -> Iterator[PgFactory]:
    """``pg_factory(**config)`` → a running cluster; the same config gives the same (shared) cluster."""
    clusters: dict[str, PgCluster] = {}

    def factory(**config: Any) -> PgCluster:
        key = _config_key(config)
        cluster = clusters.get(key)
        if cluster is None or not cluster.running:
            cluster = clusters[key] = start_cluster(bindir=pg_bindir, **config)
        return cluster

    yield factory
    for cluster in clusters.values():
        cluster.stop()


@pytest.fixture(scope="session")
def pg(pg_factory: PgFactory) -> PgCluster:
    """Healthy cluster: TLS signed by the test CA (``pg.ca_path``), scram, alice/bob, database ``app``."""
    return pg_factory(ssl="ca")


@pytest.fixture(scope="session")
def pg_nossl(pg_factory: PgFactory) -> PgCluster:
    """Like ``pg`` with TLS off."""
    return pg_factory(ssl=False)


class FakePeers:
    """Makes peers for one test and stops them all at its end."""

    def __init__(self) -> None:
        self._running: list[Any] = []

    def _keep(self, peer: Any) -> Any:
        self._running.append(peer)
        return peer.start()

    def silent(self, host: str = "127.0.0.1") -> SilentPeer:
        return self._keep(SilentPeer(host))

    def garbage(self, payload: bytes = b"HTTP/1.1 400 Bad Request\r\n\r\n", **kwargs: Any) -> GarbagePeer:
        return self._keep(GarbagePeer(payload, **kwargs))

    def closed(self, host: str = "127.0.0.1") -> ClosedPort:
        return self._keep(ClosedPort(host))

    def pg(self, script: PgScript, **kwargs: Any) -> PgProtocolPeer:
        return self._keep(PgProtocolPeer(script, **kwargs))

    def dns(self, records: Mapping[str, Any] | None = None, **kwargs: Any) -> Nameserver:
        return Nameserver(self._keep(DnsServer(records, **kwargs)))

    def stop_all(self) -> None:
        for peer in reversed(self._running):
            peer.stop()
        self._running.clear()


@pytest.fixture
def fake_peers() -> Iterator[FakePeers]:
    made = FakePeers()
    yield made
    made.stop_all()


@pytest.fixture
def silent_peer(fake_peers: FakePeers) -> SilentPeer:
    """Accepts and never answers; ``host, port = silent_peer``."""
    return fake_peers.silent()


@pytest.fixture
def garbage_peer(fake_peers: FakePeers) -> GarbagePeer:
    """Sends an HTTP 400 and hangs up; for another payload use ``fake_peers.garbage(b"...")``."""
    return fake_peers.garbage()


@pytest.fixture
def closed_port(fake_peers: FakePeers) -> ClosedPort:
    """Nothing listening (connection refused); ``host, port = closed_port``."""
    return fake_peers.closed()


@pytest.fixture
def pg_protocol_peer(fake_peers: FakePeers) -> Callable[..., PgProtocolPeer]:
    """``pg_protocol_peer(script, cert_names=...)`` → a running scripted server (see ``peers.NeonPresets``)."""
    return fake_peers.pg


@pytest.fixture
def dns_server(fake_peers: FakePeers) -> Callable[..., Nameserver]:
    """``dns_server(records)`` → ``"127.0.0.1:PORT"`` (with ``.queries``) of a running loopback DNS server."""
    return fake_peers.dns


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """On CI a skipped test is a failure: the real-database tests must run there."""
    if not on_ci():
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and exitstatus == pytest.ExitCode.OK:
        for report in skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            reporter.write_line(f"CI: skipped test is a failure here: {report.nodeid}: {reason}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def blackhole() -> Iterator[tuple[str, int]]:
    """A loopback port whose accept queue is full: the kernel drops new SYNs, as a firewall's DROP does."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers: list[socket.socket] = []
    try:
        for _ in range(16):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.settimeout(0.2)
            fillers.append(filler)
            try:
                filler.connect(address)
            except TimeoutError:
                yield address
                return
        pytest.skip("could not fill the accept queue on this kernel")
    finally:
        for sock in fillers:
            sock.close()
        listener.close()


@pytest.fixture
def only_rules_written_here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No built-in rules and a fresh rules cache: a run sees only the rule files a test writes under tmp_path,
    which is the working directory (paths print as written, e.g. mine/r.yaml)."""
    from neondoctor import rules as rules_module

    (tmp_path / "builtin").mkdir()
    monkeypatch.setattr(rules_module, "builtin_dir", lambda: tmp_path / "builtin")
    monkeypatch.delenv("NEONDOCTOR_RULES", raising=False)
    monkeypatch.delenv("NEONDOCTOR_NO_CACHE", raising=False)
    monkeypatch.setenv("NEONDOCTOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)
    return tmp_path
