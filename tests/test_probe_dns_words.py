"""What the dns line says, word for word, for each answer (loopback DNS server, stand-in getaddrinfo)."""

from __future__ import annotations

import socket
import time
from typing import Any

import dns.resolver
import pytest
from peers import NODATA, NXDOMAIN, REFUSED, SERVFAIL, SILENT
from test_probe_dns import no_system_resolver  # noqa: F401  (autouse: never the machine's resolver)

from neondoctor.probes import dns as dns_probe
from neondoctor.probes.base import CheckContext, CheckOptions, ProbeResult
from neondoctor.target import parse_target

NEON_HOST = "ep-cool-darkness-123456.us-east-2.aws.neon.tech"
GAI = 'could not translate host name "{host}" to address: {why}'


@pytest.fixture
def resolve() -> Any:
    def run(url: str, **options: Any) -> tuple[ProbeResult, CheckContext]:
        ctx = CheckContext(parse_target(url), CheckOptions(**options))
        return dns_probe.run(ctx), ctx

    return run


def said(result: ProbeResult) -> tuple[str, str, str | None, bool, str | None, str | None]:
    top = result.matches[0] if result.matches else {}
    return (str(result.status), result.summary, result.next_step, result.exact_next_step, top.get("id"),
            top.get("excerpt"))


@pytest.mark.parametrize(
    ("host", "step"),
    [
        ("gone.test.invalid", "Check the host name for typos and copy it again from your provider's dashboard"),
        (NEON_HOST, "Copy the host again from the Neon console (Connect): a deleted endpoint or a host missing part "
                    "of its name (region, '-pooler', 'c-N') does not exist"),
    ],
)
def test_nxdomain(resolve: Any, dns_server: Any, host: str, step: str) -> None:
    ns = dns_server({host: NXDOMAIN})
    result, _ = resolve(f"postgresql://a:pw@{host}/app", nameserver=ns)
    assert said(result) == (
        "fail", f"{host} does not exist in DNS (NXDOMAIN from {ns})", step, True, "dns-host-not-found",
        GAI.format(host=host, why="Name or service not known"),
    )
    assert result.details["resolver"] == f"nameserver {ns}"
    assert result.details["hosts"][0]["getaddrinfo"] == (
        "not asked: --nameserver given, so the system resolver is left alone"
    )


def test_nodata(resolve: Any, dns_server: Any) -> None:
    ns = dns_server({"empty.test.invalid": NODATA})
    result, _ = resolve("postgresql://a@empty.test.invalid/app", nameserver=ns)
    status, summary, step, _, _, excerpt = said(result)
    assert (status, summary, step, excerpt) == (
        "fail", f"empty.test.invalid exists in DNS but has no A or AAAA record (NOERROR, no data from {ns})",
        "Check the DNS zone: the name (or the end of its CNAME chain) needs an A or AAAA record",
        GAI.format(host="empty.test.invalid", why="No address associated with hostname"),
    )
    assert result.details["hosts"][0]["dns"]["A"] == {"status": "nodata", "error": "NOERROR but no A record"}


def test_a_silent_dns_server(resolve: Any, dns_server: Any) -> None:
    ns = dns_server({"quiet.test.invalid": SILENT})
    result, _ = resolve("postgresql://a@quiet.test.invalid/app", nameserver=ns, timeout=0.5)
    status, summary, step, _, _, excerpt = said(result)
    assert (status, summary, step, excerpt) == (
        "fail", f"the DNS server ({ns}) did not answer for quiet.test.invalid (no answer within 0.5 s)",
        "Check the network path to the DNS server (VPN, firewall on port 53), or try another resolver with "
        "--nameserver",
        GAI.format(host="quiet.test.invalid", why="Temporary failure in name resolution"),
    )


@pytest.mark.parametrize(("answer", "rcode"), [(SERVFAIL, "SERVFAIL"), (REFUSED, "REFUSED")])
def test_a_failing_dns_server(resolve: Any, dns_server: Any, answer: Any, rcode: str) -> None:
    ns = dns_server({"broken.test.invalid": answer})
    result, _ = resolve("postgresql://a@broken.test.invalid/app", nameserver=ns, timeout=2)
    status, summary, step, _, _, excerpt = said(result)
    assert (status, summary, step, excerpt) == (
        "fail", f"the DNS server ({ns}) failed to resolve broken.test.invalid ({rcode})",
        "The resolver or the zone's name servers are broken or refuse the query: try again, or use another "
        "resolver with --nameserver",
        GAI.format(host="broken.test.invalid", why="Temporary failure in name resolution"),
    )
    assert result.details["hosts"][0]["dns"]["A"] == {
        "status": "servfail", "rcode": rcode, "error": f"the DNS server answered {rcode}"
    }


def test_a_cname_chain_is_shown_on_the_line(resolve: Any, dns_server: Any) -> None:
    ns = dns_server({"db.test.invalid": {"CNAME": "alias.test.invalid"}, "alias.test.invalid": "127.0.0.1"})
    result, _ = resolve("postgresql://a@db.test.invalid/app", nameserver=ns)
    assert said(result)[:4] == (
        "pass", "db.test.invalid → 127.0.0.1 (CNAME chain: db.test.invalid → alias.test.invalid)", None, False
    )
    host = result.details["hosts"][0]
    assert host["cname_chain"] == ["db.test.invalid", "alias.test.invalid"]
    assert host["dns"]["A"]["cname_chain"] == ["db.test.invalid", "alias.test.invalid"]
    assert host["dns"]["A"]["addresses"] == ["127.0.0.1"] and host["dns"]["A"]["ttl"] == 60


def test_dot_invalid_without_a_nameserver(resolve: Any) -> None:
    result, _ = resolve("postgresql://a@db.invalid/app")
    assert said(result)[:3] == (
        "fail", "db.invalid does not exist in DNS (NXDOMAIN from RFC 6761: .invalid is reserved)",
        "Check the host name for typos and copy it again from your provider's dashboard",
    )
    assert result.details["resolver"] == "system"


def test_hostaddr_unix_socket_and_ip_lines(resolve: Any) -> None:
    with_host, ctx = resolve("postgresql://a@db.test.invalid:5433/app?hostaddr=127.0.0.1")
    assert said(with_host)[:2] == (
        "skip", "hostaddr=127.0.0.1 given: libpq connects there without DNS and uses db.test.invalid only for TLS "
        "(SNI, certificate check)",
    )
    assert ctx.facts["address_hosts"] == {("127.0.0.1", 5433): "db.test.invalid"}
    bare, _ = resolve("postgresql://a@/app?hostaddr=::1")
    assert bare.summary == "hostaddr=::1 given: libpq connects there without DNS"
    assert bare.details["hosts"][0]["addresses"] == [{"family": "ipv6", "ip": "::1"}]
    socket_dir, _ = resolve("postgresql://a@%2Ftmp/app")
    assert said(socket_dir)[:2] == ("skip", "Unix socket /tmp: no DNS, TCP or TLS involved")
    default, _ = resolve("postgresql://a@/app")
    assert default.summary == "Unix socket /var/run/postgresql: no DNS, TCP or TLS involved"
    assert default.details["hosts"][0]["host"] == "(default socket)"
    ip, _ = resolve("postgresql://a@127.0.0.1/app")
    assert said(ip)[:2] == ("skip", "127.0.0.1 is an IP address: nothing to resolve")


def test_neon_by_ip_without_an_endpoint(resolve: Any) -> None:
    by_host, _ = resolve(f"postgresql://a@{NEON_HOST}/neondb?hostaddr=127.0.0.1")
    assert str(by_host.status) == "skip"
    ctx = CheckContext(parse_target("postgresql://a@127.0.0.1/neondb"), CheckOptions())
    ctx.facts["neon"] = True
    again = dns_probe.run(ctx)
    assert said(again) == (
        "warn",
        "127.0.0.1 is an IP address: nothing to resolve; but by IP libpq sends no TLS SNI, so Neon cannot tell which "
        "endpoint you mean",
        "Connect with the Neon host name (ep-….neon.tech), or add options=endpoint%3D<endpoint-id> to the URL",
        True, "neon-endpoint-id-missing", "Endpoint ID is not specified",
    )
    for named in ("options=endpoint%3Dep-x-1", "options=-c%20x%3D1%20project%3Dep-x-1"):
        ctx = CheckContext(parse_target(f"postgresql://a@127.0.0.1/neondb?{named}"), CheckOptions())
        ctx.facts["neon"] = True
        assert str(dns_probe.run(ctx).status) == "skip"
    ctx = CheckContext(parse_target("postgresql://a:endpoint=ep-x-1;pw@127.0.0.1/neondb"), CheckOptions())
    ctx.facts["neon"] = True
    assert str(dns_probe.run(ctx).status) == "skip"


def test_one_host_of_three_missing(resolve: Any, dns_server: Any) -> None:
    ns = dns_server({"a.test.invalid": "127.0.0.2"})
    result, _ = resolve("postgresql://u@a.test.invalid:5001,gone.test.invalid:5002,127.0.0.1:5003/app", nameserver=ns)
    assert said(result)[:4] == (
        "warn",
        f"1 of 3 hosts do not resolve: a.test.invalid → 127.0.0.2; gone.test.invalid does not exist in DNS (NXDOMAIN "
        f"from {ns}); 127.0.0.1 is an IP address: nothing to resolve",
        "Check the host name for typos and copy it again from your provider's dashboard",
        True,
    )


def test_a_nameserver_that_is_not_an_address(resolve: Any) -> None:
    result, _ = resolve("postgresql://a@db.test.invalid/app", nameserver="dns.example:53")
    assert said(result)[:3] == (
        "fail", "nameserver must be an IP address, optionally with :PORT, not 'dns.example:53'",
        "Pass --nameserver IP or IP:PORT",
    )


# --------------------------------------------------------------------------- getaddrinfo against DNS


@pytest.fixture
def both(monkeypatch: pytest.MonkeyPatch, dns_server: Any) -> Any:
    """Without --nameserver: DNS is the loopback server, getaddrinfo a stand-in giving ``answer``."""

    def set_up(records: dict[str, Any], answer: Any) -> ProbeResult:
        ns = str(dns_server(records))
        real_dns = dns_probe._Dns
        monkeypatch.setattr(dns_probe, "_Dns", lambda _nameserver, timeout: real_dns(ns, timeout))

        def fake_gai(host: str, port: int) -> list[str]:
            if isinstance(answer, BaseException):
                raise answer
            if answer == "sleep":
                time.sleep(3)
            return list(answer)

        monkeypatch.setattr(dns_probe, "_getaddrinfo", fake_gai)
        return dns_probe.run(CheckContext(parse_target("postgresql://a@db.example.test/app"), CheckOptions(timeout=1)))

    return set_up


DUAL = {"db.example.test": ["127.0.0.1", "::1"]}


def test_dns_and_the_system_resolver_agree(both: Any) -> None:
    result = both(DUAL, ["::1", "127.0.0.1"])
    assert said(result)[:3] == ("pass", "db.example.test → ::1, 127.0.0.1", None)
    assert "disagreement" not in result.details["hosts"][0]


def test_the_system_resolver_drops_ipv6(both: Any) -> None:
    result = both(DUAL, ["127.0.0.1"])
    assert said(result)[:3] == (
        "warn",
        "db.example.test → 127.0.0.1 (DNS has IPv6 (AAAA) addresses the system resolver does not return: libpq "
        "tries IPv4 only)",
        "Usually harmless; if IPv6 is required, check the machine's IPv6 set-up",
    )
    assert result.details["hosts"][0]["disagreement"] == {"only_getaddrinfo": [], "only_dns": ["::1"]}


def test_a_local_override(both: Any) -> None:
    result = both(DUAL, ["127.0.0.9", "::1"])
    assert said(result)[:3] == (
        "warn", "db.example.test → 127.0.0.9, ::1 (DNS says ::1, 127.0.0.1: something local overrides it)",
        "Check /etc/hosts, a local DNS cache or a VPN's resolver for a stale entry",
    )
    assert result.details["hosts"][0]["disagreement"] == {"only_getaddrinfo": ["127.0.0.9"], "only_dns": ["127.0.0.1"]}


def test_only_dns_answers(both: Any) -> None:
    result = both(DUAL, socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert said(result) == (
        "fail",
        "DNS answers ::1, 127.0.0.1 for db.example.test, but the system resolver that libpq uses (getaddrinfo) "
        "fails: Name or service not known",
        "Check /etc/nsswitch.conf, /etc/resolv.conf and any VPN's DNS settings: the system resolver disagrees with "
        "DNS",
        True, "dns-host-not-found", GAI.format(host="db.example.test", why="Name or service not known"),
    )
    assert result.details["hosts"][0]["getaddrinfo"] == {
        "addresses": [], "error": "Name or service not known", "errno": socket.EAI_NONAME
    }


def test_only_the_system_resolver_answers(both: Any) -> None:
    result = both({"db.example.test": NXDOMAIN}, ["127.0.0.1"])
    assert said(result)[:3] == (
        "warn", "db.example.test → 127.0.0.1 (the system resolver answers, but a direct DNS query got NXDOMAIN)",
        "The name comes from /etc/hosts, a search domain or a local resolver: make sure that is intended",
    )


def test_neither_answers(both: Any) -> None:
    result = both({"db.example.test": NXDOMAIN}, socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert said(result)[:2] == ("fail", result.summary)
    assert result.summary.startswith("db.example.test does not exist in DNS (NXDOMAIN from 127.0.0.1:")


@pytest.fixture
def no_dns_config(monkeypatch: pytest.MonkeyPatch) -> None:
    def unconfigured(_nameserver: Any, _timeout: float) -> Any:
        raise dns.resolver.NoResolverConfiguration("no nameservers")

    monkeypatch.setattr(dns_probe, "_Dns", unconfigured)


@pytest.mark.parametrize(
    ("answer", "summary", "step", "why"),
    [
        (["127.0.0.1"], "db.example.test → 127.0.0.1", None, None),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
         "cannot resolve db.example.test: Name or service not known",
         "Check the host name and the resolver configuration (/etc/resolv.conf)", "Name or service not known"),
        (UnicodeError("label empty or too long"), "cannot resolve db.example.test: label empty or too long",
         "Check the host name and the resolver configuration (/etc/resolv.conf)", "Name or service not known"),
        ("sleep", "cannot resolve db.example.test: timed out",
         "Check the network path to the DNS server (VPN, firewall on port 53), or try another resolver with "
         "--nameserver", "Temporary failure in name resolution"),
    ],
)
def test_without_a_dns_configuration_only_getaddrinfo_is_asked(
    monkeypatch: pytest.MonkeyPatch, no_dns_config: None, answer: Any, summary: str, step: str | None,
    why: str | None,
) -> None:
    def fake_gai(host: str, port: int) -> list[str]:
        if isinstance(answer, BaseException):
            raise answer
        if answer == "sleep":
            time.sleep(3)
        return list(answer)

    monkeypatch.setattr(dns_probe, "_getaddrinfo", fake_gai)
    started = time.monotonic()
    result = dns_probe.run(CheckContext(parse_target("postgresql://a@db.example.test/app"), CheckOptions(timeout=0.3)))
    assert time.monotonic() - started < 1.0
    _, shown, next_step, _, _, excerpt = said(result)
    assert (shown, next_step) == (summary, step)
    assert excerpt == (GAI.format(host="db.example.test", why=why) if why else None)
    assert result.details["note"] == (
        "no DNS resolver configuration (NoResolverConfiguration): only getaddrinfo was asked"
    )


def test_a_hosts_file_name_that_getaddrinfo_cannot_resolve(monkeypatch: pytest.MonkeyPatch, resolve: Any) -> None:
    def fake_gai(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(dns_probe, "_getaddrinfo", fake_gai)
    result, _ = resolve("postgresql://a@localhost/app")
    assert said(result)[:3] == (
        "fail", "cannot resolve localhost: Name or service not known", "Check /etc/hosts and /etc/nsswitch.conf"
    )


def test_a_hosts_file_name(resolve: Any) -> None:
    result, ctx = resolve("postgresql://a@LocalHost/app")
    ips = [a.ip for a in ctx.addresses]
    assert said(result)[:3] == ("pass", f"LocalHost → {', '.join(ips)} (from /etc/hosts, no DNS query)", None)
    assert result.details["hosts"][0]["kind"] == "hosts-file"


def test_a_name_dns_cannot_carry(resolve: Any, dns_server: Any) -> None:
    host = "a" * 64 + ".test.invalid"
    result, _ = resolve(f"postgresql://a@{host}/app", nameserver=dns_server({}))
    assert said(result)[:3] == (
        "fail", f"cannot resolve {host}: A DNS label is > 63 octets long.",
        "Check the host name and the resolver configuration (/etc/resolv.conf)",
    )


def test_the_details_of_each_host(resolve: Any, dns_server: Any) -> None:
    ns = dns_server({"a.test.invalid": ["127.0.0.2", "::1"]})
    result, ctx = resolve("postgresql://u@a.test.invalid:5001,127.0.0.1:5003/app", nameserver=ns)
    first, second = result.details["hosts"]
    assert result.details["resolver"] == f"nameserver {ns}" and "note" not in result.details
    assert {k: v for k, v in first.items() if k != "dns"} == {
        "host": "a.test.invalid", "port": 5001, "kind": "name", "status": "pass",
        "summary": "a.test.invalid → ::1, 127.0.0.2",
        "addresses": [{"family": "ipv6", "ip": "::1"}, {"family": "ipv4", "ip": "127.0.0.2"}],
        "getaddrinfo": "not asked: --nameserver given, so the system resolver is left alone",
    }
    assert second == {"host": "127.0.0.1", "port": 5003, "kind": "ip", "status": "skip",
                      "summary": "127.0.0.1 is an IP address: nothing to resolve",
                      "addresses": [{"family": "ipv4", "ip": "127.0.0.1"}]}
    assert said(result)[:3] == (
        "pass", "a.test.invalid → ::1, 127.0.0.2; 127.0.0.1 is an IP address: nothing to resolve", None
    )
    assert ctx.facts["address_hosts"] == {("::1", 5001): "a.test.invalid", ("127.0.0.2", 5001): "a.test.invalid",
                                          ("127.0.0.1", 5003): "127.0.0.1"}
    only_skips, _ = resolve("postgresql://u@127.0.0.1,[::1]/app")
    assert said(only_skips)[:2] == (
        "skip", "127.0.0.1 is an IP address: nothing to resolve; ::1 is an IP address: nothing to resolve"
    )


def test_a_unix_socket_beside_a_missing_host_is_a_warning(resolve: Any, dns_server: Any) -> None:
    result, _ = resolve("postgresql://u@%2Ftmp,gone.test.invalid/app", nameserver=dns_server({}))
    assert said(result)[:2] == (
        "warn", f"1 of 2 hosts do not resolve: Unix socket /tmp: no DNS, TCP or TLS involved; gone.test.invalid does "
        f"not exist in DNS (NXDOMAIN from {result.details['resolver'].removeprefix('nameserver ')})",
    )
