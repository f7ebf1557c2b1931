"""The dns probe against a loopback DNS server, /etc/hosts and literals; never the machine's resolver."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.resolver
import pytest
from click.testing import CliRunner
from peers import NODATA, NXDOMAIN, SERVFAIL, SILENT, Nameserver
from pgcluster import PgCluster
from probekit import rule_ids

from neondoctor.cli import cli
from neondoctor.probes import dns as dns_probe
from neondoctor.probes import tcp, tls
from neondoctor.probes.base import CheckContext, CheckOptions, ProbeResult, Status
from neondoctor.target import parse_target

NEON_HOST = "ep-cool-darkness-123456.us-east-2.aws.neon.tech"
CLEAN_ENV = dict.fromkeys(("DATABASE_URL", "PGHOST", "PGHOSTADDR", "PGPORT", "PGSSLMODE", "PGSSLROOTCERT"))
Resolve = Callable[..., tuple[ProbeResult, CheckContext]]


@pytest.fixture(autouse=True)
def no_system_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail loudly if the probe asks the machine's resolver: getaddrinfo only for /etc/hosts names and literals."""
    real = socket.getaddrinfo
    asked: list[str] = []
    local = set(dns_probe.hosts_file_names()) | {"localhost"}

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = str(host).lower().rstrip(".")
        asked.append(name)
        if name not in local and not _is_literal(name):
            raise AssertionError(f"getaddrinfo({host!r}) would ask the machine's resolver")
        return real(host, *args, **kwargs)

    real_init = dns.resolver.Resolver.__init__

    def only_unconfigured(self: Any, filename: str = "/etc/resolv.conf", configure: bool = True) -> None:
        real_init(self, filename, configure)
        if configure:
            self.nameservers = ["192.0.2.1"]
            self.resolve = _forbidden  # type: ignore[method-assign]

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    monkeypatch.setattr(dns.resolver.Resolver, "__init__", only_unconfigured)
    yield asked


def _forbidden(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a DNS query went to the system's resolver")


def _is_literal(name: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in name else socket.AF_INET, name)
    except OSError:
        return False
    return True


@pytest.fixture
def resolve() -> Resolve:
    def run(url: str, **options: Any) -> tuple[ProbeResult, CheckContext]:
        ctx = CheckContext(parse_target(url), CheckOptions(**options))
        return dns_probe.run(ctx), ctx

    return run


def test_nxdomain_from_the_nameserver_is_dns_host_not_found(resolve: Resolve, dns_server: Any) -> None:
    ns: Nameserver = dns_server({"gone.example.invalid": NXDOMAIN})
    result, ctx = resolve("postgresql://alice:pw@gone.example.invalid/app", nameserver=ns)
    assert result.status is Status.FAIL
    assert "does not exist in DNS (NXDOMAIN" in result.summary and str(ns) in result.summary
    assert rule_ids(result)[:1] == ["dns-host-not-found"]
    assert "typo" in (result.next_step or "")
    assert ctx.addresses == []
    assert {(q.name, q.rdtype) for q in ns.queries} == {("gone.example.invalid", "A"), ("gone.example.invalid", "AAAA")}


def test_neon_nxdomain_says_copy_the_host_from_the_console(resolve: Resolve, dns_server: Any) -> None:
    result, _ = resolve(f"postgresql://alice:pw@{NEON_HOST}/neondb?sslmode=require", nameserver=dns_server({}))
    assert result.status is Status.FAIL and "NXDOMAIN" in result.summary
    assert "Neon console" in (result.next_step or "")


def test_servfail_nodata_and_a_silent_server_are_told_apart(resolve: Resolve, dns_server: Any) -> None:
    ns = dns_server({"broken.test.invalid": SERVFAIL, "empty.test.invalid": NODATA, "quiet.test.invalid": SILENT})
    servfail, _ = resolve("postgresql://a@broken.test.invalid/app", nameserver=ns, timeout=2)
    nodata, _ = resolve("postgresql://a@empty.test.invalid/app", nameserver=ns, timeout=2)
    started = time.monotonic()
    silent, _ = resolve("postgresql://a@quiet.test.invalid/app", nameserver=ns, timeout=0.5)
    elapsed = time.monotonic() - started

    assert [r.status for r in (servfail, nodata, silent)] == [Status.FAIL] * 3
    assert "failed to resolve" in servfail.summary and "SERVFAIL" in servfail.summary
    assert "no A or AAAA record" in nodata.summary and "NOERROR" in nodata.summary
    assert "did not answer" in silent.summary
    assert len({servfail.next_step, nodata.next_step, silent.next_step}) == 3
    assert elapsed < 1.5, f"a silent DNS server held the probe {elapsed:.1f} s with a 0.5 s step timeout"
    assert servfail.details["hosts"][0]["dns"]["A"]["status"] == "servfail"
    assert silent.details["hosts"][0]["dns"]["A"]["status"] == "timeout"


def test_refused_is_reported_with_its_rcode(resolve: Resolve, dns_server: Any) -> None:
    from peers import REFUSED

    result, _ = resolve("postgresql://a@db.test.invalid/app", nameserver=dns_server({"db.test.invalid": REFUSED}))
    assert result.status is Status.FAIL and "REFUSED" in result.summary


def test_cname_chain_is_reported_and_its_addresses_are_used(resolve: Resolve, dns_server: Any) -> None:
    ns = dns_server(
        {
            "db.test.invalid": {"CNAME": "alias.test.invalid"},
            "alias.test.invalid": {"CNAME": "real.test.invalid"},
            "real.test.invalid": ["127.0.0.1", "::1"],
        }
    )
    result, ctx = resolve("postgresql://a@db.test.invalid:6543/app", nameserver=ns)
    assert result.status is Status.PASS, result.summary
    host = result.details["hosts"][0]
    assert host["cname_chain"] == ["db.test.invalid", "alias.test.invalid", "real.test.invalid"]
    assert "db.test.invalid → alias.test.invalid → real.test.invalid" in result.summary
    assert {(a.family, a.ip, a.port) for a in ctx.addresses} == {("ipv4", "127.0.0.1", 6543), ("ipv6", "::1", 6543)}
    assert host["dns"]["A"]["ttl"] == 60
    assert "not asked" in host["getaddrinfo"]


def test_nameserver_answer_carries_the_chain_through_tcp_and_tls(
    pg: PgCluster, dns_server: Any, no_system_resolver: list[str]
) -> None:
    """The name only the loopback DNS server knows reaches the real server; SNI is the name, not the IP."""
    ns = dns_server({"db.test.invalid": "127.0.0.1"})
    ctx = CheckContext(
        parse_target(pg.url(host="db.test.invalid", sslmode="verify-ca", sslrootcert=str(pg.ca_path))),
        CheckOptions(nameserver=ns, timeout=2),
    )
    results = [probe.run(ctx) for probe in (dns_probe, tcp, tls)]
    assert [r.status for r in results] == [Status.PASS] * 3, [r.summary for r in results]
    assert results[2].details["sni"] == "db.test.invalid"
    assert results[2].details["verification"]["hostname"] == "mismatch"
    assert "db.test.invalid" not in no_system_resolver


def test_dot_invalid_without_nameserver_fails_without_any_query(resolve: Resolve) -> None:
    result, _ = resolve("postgresql://alice:pw@db.example.invalid/app")
    assert result.status is Status.FAIL
    assert rule_ids(result)[:1] == ["dns-host-not-found"]
    assert "RFC 6761" in json.dumps(result.details)


def test_ip_literals_skip_with_a_note(resolve: Resolve) -> None:
    for host, family in (("127.0.0.1", "ipv4"), ("[::1]", "ipv6")):
        result, ctx = resolve(f"postgresql://a@{host}:5433/app")
        assert result.status is Status.SKIP
        assert "is an IP address" in result.summary
        assert [(a.family, a.port) for a in ctx.addresses] == [(family, 5433)]


def test_neon_by_ip_warns_that_no_sni_is_sent(resolve: Resolve) -> None:
    ctx = CheckContext(parse_target("postgresql://a:pw@127.0.0.1/neondb?sslmode=require"), CheckOptions())
    ctx.facts["neon"] = True
    result = dns_probe.run(ctx)
    assert result.status is Status.WARN
    assert "no TLS SNI" in result.summary and "options=endpoint" in (result.next_step or "")
    assert rule_ids(result)[:1] == ["neon-endpoint-id-missing"]

    with_option = CheckContext(
        parse_target("postgresql://a:pw@127.0.0.1/neondb?sslmode=require&options=endpoint%3Dep-cool-123"),
        CheckOptions(),
    )
    with_option.facts["neon"] = True
    assert dns_probe.run(with_option).status is Status.SKIP


def test_unix_socket_hosts_skip(resolve: Resolve) -> None:
    for url in ("postgresql://a@/app", "postgresql://a@%2Fvar%2Frun%2Fpostgresql/app"):
        result, ctx = resolve(url)
        assert result.status is Status.SKIP and "Unix socket" in result.summary
        assert ctx.addresses == []


def test_hostaddr_is_used_without_dns(resolve: Resolve, dns_server: Any) -> None:
    ns = dns_server({})
    result, ctx = resolve(f"postgresql://a@{NEON_HOST}/neondb?hostaddr=127.0.0.1&sslmode=require", nameserver=ns)
    assert result.status is Status.SKIP
    assert "hostaddr=127.0.0.1" in result.summary and "only for TLS" in result.summary
    assert [a.ip for a in ctx.addresses] == ["127.0.0.1"]
    assert ctx.facts["address_hosts"][("127.0.0.1", 5432)] == NEON_HOST
    assert ns.queries == []


def test_localhost_comes_from_the_hosts_file_without_a_dns_query(resolve: Resolve, dns_server: Any) -> None:
    ns = dns_server({})
    result, ctx = resolve("postgresql://a@localhost:6000/app", nameserver=ns)
    assert result.status is Status.PASS
    assert "/etc/hosts" in result.summary and "127.0.0.1" in result.summary
    assert ("ipv4", "127.0.0.1", 6000) in {(a.family, a.ip, a.port) for a in ctx.addresses}
    assert ns.queries == []


def test_hosts_file_parser(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("# comment\n127.0.0.1 localhost Box.Local  # trailing\n::1 localhost ip6-localhost\n\nbroken\n")
    assert dns_probe.hosts_file_names(hosts) == {
        "localhost": ["127.0.0.1", "::1"],
        "box.local": ["127.0.0.1"],
        "ip6-localhost": ["::1"],
    }


def test_multi_host_resolves_each_and_warns_about_the_missing_one(resolve: Resolve, dns_server: Any) -> None:
    ns = dns_server({"a.test.invalid": "127.0.0.2"})
    result, ctx = resolve("postgresql://u@a.test.invalid:5001,gone.test.invalid:5002,127.0.0.1:5003/app", nameserver=ns)
    assert result.status is Status.WARN
    assert result.summary.startswith("1 of 3 hosts do not resolve")
    assert [(h["host"], h["status"]) for h in result.details["hosts"]] == [
        ("a.test.invalid", "pass"),
        ("gone.test.invalid", "fail"),
        ("127.0.0.1", "skip"),
    ]
    assert [(a.ip, a.port) for a in ctx.addresses] == [("127.0.0.2", 5001), ("127.0.0.1", 5003)]
    assert rule_ids(result)[:1] == ["dns-host-not-found"]


@pytest.mark.parametrize(
    ("gai", "expected_status", "expected_text"),
    [
        (["127.0.0.1"], Status.WARN, "libpq tries IPv4 only"),
        (["127.0.0.9"], Status.WARN, "something local overrides it"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), Status.FAIL, "system resolver"),
        (["::1", "127.0.0.1"], Status.PASS, "db.example.test → ::1, 127.0.0.1"),
    ],
)
def test_getaddrinfo_and_dns_disagreements(
    monkeypatch: pytest.MonkeyPatch, dns_server: Any, gai: Any, expected_status: Status, expected_text: str
) -> None:
    """Without --nameserver both are asked; here DNS is the loopback server and getaddrinfo a stand-in."""
    ns = str(dns_server({"db.example.test": ["127.0.0.1", "::1"]}))
    real_dns = dns_probe._Dns
    monkeypatch.setattr(dns_probe, "_Dns", lambda _nameserver, timeout: real_dns(ns, timeout))

    def fake_gai(host: str, port: int) -> list[str]:
        if isinstance(gai, Exception):
            raise gai
        return list(gai)

    monkeypatch.setattr(dns_probe, "_getaddrinfo", fake_gai)
    ctx = CheckContext(parse_target("postgresql://a@db.example.test/app"), CheckOptions())
    result = dns_probe.run(ctx)
    assert result.status is expected_status, result.summary
    assert expected_text in result.summary
    if expected_status is not Status.FAIL:
        assert [a.ip for a in ctx.addresses] == gai
    assert result.details["hosts"][0]["getaddrinfo"]["addresses"] == ([] if isinstance(gai, Exception) else gai)


def test_getaddrinfo_is_bounded_by_the_step_timeout(monkeypatch: pytest.MonkeyPatch, dns_server: Any) -> None:
    ns = str(dns_server({"db.example.test": "127.0.0.1"}))
    real_dns = dns_probe._Dns
    monkeypatch.setattr(dns_probe, "_Dns", lambda _nameserver, timeout: real_dns(ns, timeout))
    monkeypatch.setattr(dns_probe, "_getaddrinfo", lambda host, port: time.sleep(5))
    started = time.monotonic()
    result = dns_probe.run(CheckContext(parse_target("postgresql://a@db.example.test/app"), CheckOptions(timeout=0.3)))
    assert time.monotonic() - started < 1.0
    assert result.status is Status.FAIL and "timed out" in result.summary


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:54", ("::1", 54)),
        ("::1", ("::1", 53)),
    ],
)
def test_parse_nameserver(text: str, expected: tuple[str, int]) -> None:
    assert dns_probe.parse_nameserver(text) == expected


def test_check_command_stops_at_dns_with_the_rule(dns_server: Any) -> None:
    ns = dns_server({"gone.test.invalid": NXDOMAIN})
    result = CliRunner().invoke(
        cli,
        ["check", "postgresql://alice:s3cr3tpw@gone.test.invalid/app", "--nameserver", str(ns), "--json"],
        env=CLEAN_ENV,
    )
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["verdict"]["failed_probe"] == "dns"
    assert report["verdict"]["rule"] == "dns-host-not-found"
    statuses = {p["name"]: p["status"] for p in report["probes"]}
    assert statuses["dns"] == "fail" and statuses["tcp"] == statuses["tls"] == "skip"
    assert "s3cr3tpw" not in result.output
