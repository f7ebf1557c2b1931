"""dns: resolve each host the way libpq will (getaddrinfo), and ask DNS itself to explain failures.

libpq resolves with getaddrinfo, which reads /etc/hosts and the system resolver; that is what tcp
connects to. A direct DNS query (A, AAAA, the CNAME chain) tells NXDOMAIN, NODATA, SERVFAIL and a
silent server apart, which getaddrinfo folds into one or two messages. With ``--nameserver`` the
DNS answers are what tcp uses and getaddrinfo is only asked about names in /etc/hosts, so the
machine's own resolver is never touched.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neondoctor.probes.base import Address, CheckContext, ProbeResult, Status

name = "dns"

HOSTS_PATH = Path("/etc/hosts")
DNS_PORT = 53
_GAI_STRERROR = {
    "nxdomain": "Name or service not known",
    "nodata": "No address associated with hostname",
    "timeout": "Temporary failure in name resolution",
    "servfail": "Temporary failure in name resolution",
    "error": "Name or service not known",
}
_ENDPOINT_OPTION = re.compile(r"(?:^|\s)(?:endpoint|project)=[A-Za-z0-9-]+")


def parse_nameserver(text: str) -> tuple[str, int]:
    """``IP``, ``IP:PORT``, ``[IPv6]:PORT`` or ``IPv6`` → (ip, port); ValueError when it is none of these."""
    text = text.strip()
    port = DNS_PORT
    bracketed = re.fullmatch(r"\[(?P<ip>[^\]]+)\](?::(?P<port>\d+))?", text)
    if bracketed:
        host, raw_port = bracketed.group("ip"), bracketed.group("port")
    elif text.count(":") == 1:
        host, raw_port = text.split(":")
    else:
        host, raw_port = text, None
    if raw_port is not None:
        if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
            raise ValueError(f"invalid nameserver port in {text!r}")
        port = int(raw_port)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"nameserver must be an IP address, optionally with :PORT, not {text!r}") from None
    return host, port


def hosts_file_names(path: Path | None = None) -> dict[str, list[str]]:
    """Names in /etc/hosts (lower case) → their addresses."""
    names: dict[str, list[str]] = {}
    try:
        text = (path or HOSTS_PATH).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return names
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        for entry in fields[1:]:
            names.setdefault(entry.lower().rstrip("."), []).append(fields[0])
    return names


class _Job:
    """A call run in a daemon thread, so a stuck resolver cannot keep the process alive or waiting."""

    def __init__(self, func: Callable[[], Any]) -> None:
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self._func = func
        threading.Thread(target=self._work, daemon=True, name="neondoctor-dns").start()

    def _work(self) -> None:
        try:
            self._value = self._func()
        except BaseException as exc:
            self._error = exc
        finally:
            self._done.set()

    def result(self, deadline: float) -> Any:
        if not self._done.wait(max(0.0, deadline - time.monotonic())):
            raise TimeoutError
        if self._error is not None:
            raise self._error
        return self._value


@dataclass
class _HostReport:
    """The answers for one host of the string."""

    host: str
    port: int
    kind: str
    """name | hosts-file | ip | hostaddr | socket"""
    status: Status = Status.PASS
    summary: str = ""
    addresses: list[Address] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    failure_text: str | None = None
    next_step: str | None = None
    notes: list[str] = field(default_factory=list)


def _family(ip: str) -> str:
    return "ipv6" if ":" in ip else "ipv4"


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _unique(ips: list[str]) -> list[str]:
    return list(dict.fromkeys(ips))


def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _unique([str(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)])


def _gai(host: str, port: int, deadline: float, job: _Job | None = None) -> dict[str, Any]:
    job = job or _Job(lambda: _getaddrinfo(host, port))
    try:
        return {"addresses": job.result(deadline), "error": None}
    except TimeoutError:
        return {"addresses": [], "error": "timed out", "status": "timeout"}
    except socket.gaierror as exc:
        return {"addresses": [], "error": exc.strerror or str(exc), "errno": exc.errno}
    except (OSError, UnicodeError) as exc:
        return {"addresses": [], "error": str(exc)}


class _Dns:
    """A dnspython resolver for the system's configuration or the ``--nameserver`` given."""

    def __init__(self, nameserver: str | None, timeout: float) -> None:
        import dns.resolver

        if nameserver:
            ip, port = parse_nameserver(nameserver)
            self.resolver = dns.resolver.Resolver(configure=False)
            self.resolver.nameservers = [ip]
            self.resolver.port = port
            self.servers = [f"{ip}:{port}" if port != DNS_PORT else ip]
        else:
            self.resolver = dns.resolver.Resolver()
            self.servers = [str(ns) for ns in self.resolver.nameservers]
        self.resolver.cache = None
        self.resolver.timeout = timeout
        self.resolver.lifetime = timeout

    def query(self, host: str, rdtype: str) -> dict[str, Any]:
        import dns.exception
        import dns.rcode
        import dns.resolver

        search = "." not in host.rstrip(".")
        try:
            answer = self.resolver.resolve(host, rdtype, search=search, raise_on_no_answer=True)
        except dns.resolver.NXDOMAIN:
            return {"status": "nxdomain", "error": "NXDOMAIN: the name does not exist"}
        except dns.resolver.NoAnswer:
            return {"status": "nodata", "error": f"NOERROR but no {rdtype} record"}
        except dns.resolver.NoNameservers as exc:
            rcodes = sorted(
                {dns.rcode.to_text(err[4].rcode()) for err in exc.kwargs.get("errors", []) if err[4] is not None}
            )
            rcode = "/".join(rcodes) or "SERVFAIL"
            return {"status": "servfail", "rcode": rcode, "error": f"the DNS server answered {rcode}"}
        except dns.exception.Timeout:
            return {"status": "timeout", "error": f"no answer within {self.resolver.lifetime:.1f} s"}
        except dns.resolver.NoResolverConfiguration:
            return {"status": "error", "error": "no DNS server configured (/etc/resolv.conf)"}
        except (dns.exception.DNSException, ValueError, UnicodeError) as exc:
            return {"status": "error", "error": str(exc) or type(exc).__name__}
        chain = [answer.qname.to_text(omit_final_dot=True)]
        chain += [rrset[0].target.to_text(omit_final_dot=True) for rrset in answer.chaining_result.cnames]
        addresses = [rdata.address for rdata in answer.rrset] if answer.rrset is not None else []
        return {
            "status": "ok",
            "addresses": addresses,
            "ttl": answer.rrset.ttl if answer.rrset is not None else None,
            "cname_chain": chain if len(chain) > 1 else [],
        }


def _dns_verdict(answers: dict[str, dict[str, Any]]) -> str:
    """ok | nxdomain | nodata | timeout | servfail | error for the A and AAAA answers together."""
    states = {a["status"] for a in answers.values()}
    if "ok" in states:
        return "ok"
    for state in ("nxdomain", "servfail", "timeout", "error"):
        if state in states:
            return state
    return "nodata"


def _dns_failure(report: _HostReport, verdict: str, servers: list[str], ctx: CheckContext) -> None:
    host = report.host
    where = ", ".join(servers) or "the system resolver"
    neon = ctx.target.neon is not None
    report.status = Status.FAIL
    report.failure_text = f'could not translate host name "{host}" to address: {_GAI_STRERROR[verdict]}'
    if verdict == "nxdomain":
        report.summary = f"{host} does not exist in DNS (NXDOMAIN from {where})"
        report.next_step = (
            "Copy the host again from the Neon console (Connect): a deleted endpoint or a host missing part of "
            "its name (region, '-pooler', 'c-N') does not exist"
            if neon
            else "Check the host name for typos and copy it again from your provider's dashboard"
        )
    elif verdict == "nodata":
        report.summary = f"{host} exists in DNS but has no A or AAAA record (NOERROR, no data from {where})"
        report.next_step = "Check the DNS zone: the name (or the end of its CNAME chain) needs an A or AAAA record"
    elif verdict == "timeout":
        waited = next((a["error"] for a in report.details.get("dns", {}).values() if a["status"] == "timeout"), "")
        report.summary = f"the DNS server ({where}) did not answer for {host}" + (f" ({waited})" if waited else "")
        report.next_step = (
            "Check the network path to the DNS server (VPN, firewall on port 53), or try another resolver with "
            "--nameserver"
        )
    elif verdict == "servfail":
        rcodes = sorted({a["rcode"] for a in report.details.get("dns", {}).values() if "rcode" in a})
        report.summary = f"the DNS server ({where}) failed to resolve {host} ({'/'.join(rcodes) or 'SERVFAIL'})"
        report.next_step = (
            "The resolver or the zone's name servers are broken or refuse the query: try again, or use another "
            "resolver with --nameserver"
        )
    else:
        errors = sorted({a["error"] for a in report.details.get("dns", {}).values() if a.get("error")})
        report.summary = f"cannot resolve {host}: {'; '.join(errors)}"
        report.next_step = "Check the host name and the resolver configuration (/etc/resolv.conf)"


def _resolve_name(report: _HostReport, ctx: CheckContext, resolver: _Dns | None, gai_wanted: bool) -> None:
    step = ctx.step_timeout()
    deadline = time.monotonic() + step
    host, port = report.host, report.port
    gai_job = _Job(lambda: _getaddrinfo(host, port)) if gai_wanted else None
    dns_jobs: dict[str, _Job] = {}
    if resolver is not None:
        dns_jobs = {rdtype: _Job(lambda t=rdtype: resolver.query(host, t)) for rdtype in ("A", "AAAA")}
    answers: dict[str, dict[str, Any]] = {}
    for rdtype, job in dns_jobs.items():
        try:
            answers[rdtype] = job.result(deadline + 0.2)
        except TimeoutError:
            answers[rdtype] = {"status": "timeout", "error": f"no answer within {step:.1f} s"}
    if answers:
        report.details["dns"] = answers
        chain = next((a["cname_chain"] for a in answers.values() if a.get("cname_chain")), [])
        if chain:
            report.details["cname_chain"] = chain
            report.notes.append("CNAME chain: " + " → ".join(chain))
    verdict = _dns_verdict(answers) if answers else None
    dns_ips = [ip for rdtype in ("AAAA", "A") for ip in answers.get(rdtype, {}).get("addresses", [])]

    if gai_job is None:
        report.details["getaddrinfo"] = "not asked: --nameserver given, so the system resolver is left alone"
        if verdict != "ok":
            _dns_failure(report, verdict or "error", resolver.servers if resolver else [], ctx)
            return
        report.addresses = [Address(_family(ip), ip, port) for ip in _unique(dns_ips)]
        report.summary = f"{host} → {', '.join(_unique(dns_ips))}"
        return

    gai = _gai(host, port, deadline, gai_job)
    report.details["getaddrinfo"] = gai
    gai_ips: list[str] = gai["addresses"]
    if not gai_ips:
        if verdict in (None, "ok"):
            if verdict is None:
                gai_verdict = "timeout" if gai.get("status") == "timeout" else "error"
                _dns_failure(report, gai_verdict, [], ctx)
                report.summary = f"cannot resolve {host}: {gai['error']}"
                return
            report.status = Status.FAIL
            report.summary = (
                f"DNS answers {', '.join(_unique(dns_ips))} for {host}, but the system resolver that libpq uses "
                f"(getaddrinfo) fails: {gai['error']}"
            )
            report.failure_text = f'could not translate host name "{host}" to address: {gai["error"]}'
            report.next_step = (
                "Check /etc/nsswitch.conf, /etc/resolv.conf and any VPN's DNS settings: the system resolver "
                "disagrees with DNS"
            )
            return
        _dns_failure(report, verdict, resolver.servers if resolver else [], ctx)
        return

    report.addresses = [Address(_family(ip), ip, port) for ip in gai_ips]
    report.summary = f"{host} → {', '.join(gai_ips)}"
    if verdict is None:
        return
    if verdict != "ok":
        report.status = Status.WARN
        report.summary += f" (the system resolver answers, but a direct DNS query got {verdict.upper()})"
        report.next_step = (
            "The name comes from /etc/hosts, a search domain or a local resolver: make sure that is intended"
        )
        return
    only_gai = sorted(set(gai_ips) - set(dns_ips))
    only_dns = sorted(set(dns_ips) - set(gai_ips))
    if only_gai or only_dns:
        report.details["disagreement"] = {"only_getaddrinfo": only_gai, "only_dns": only_dns}
    dns_v6 = any(_family(ip) == "ipv6" for ip in dns_ips)
    gai_v6 = any(_family(ip) == "ipv6" for ip in gai_ips)
    if only_gai:
        report.status = Status.WARN
        report.summary += f" (DNS says {', '.join(_unique(dns_ips))}: something local overrides it)"
        report.next_step = "Check /etc/hosts, a local DNS cache or a VPN's resolver for a stale entry"
    elif dns_v6 and not gai_v6:
        report.status = Status.WARN
        report.summary += " (DNS has IPv6 (AAAA) addresses the system resolver does not return: libpq tries IPv4 only)"
        report.next_step = "Usually harmless; if IPv6 is required, check the machine's IPv6 set-up"


def _local_name(report: _HostReport, ctx: CheckContext, listed: list[str]) -> None:
    deadline = time.monotonic() + ctx.step_timeout()
    gai = _gai(report.host, report.port, deadline)
    report.details["hosts_file"] = listed
    report.details["getaddrinfo"] = gai
    if not gai["addresses"]:
        report.status = Status.FAIL
        report.summary = f"cannot resolve {report.host}: {gai['error']}"
        report.failure_text = f'could not translate host name "{report.host}" to address: {gai["error"]}'
        report.next_step = "Check /etc/hosts and /etc/nsswitch.conf"
        return
    report.addresses = [Address(_family(ip), ip, report.port) for ip in gai["addresses"]]
    report.summary = f"{report.host} → {', '.join(gai['addresses'])} (from /etc/hosts, no DNS query)"


def neon_without_sni(ctx: CheckContext) -> bool:
    if not (ctx.target.neon or ctx.facts.get("neon")):
        return False
    if _ENDPOINT_OPTION.search(ctx.target.params.get("options", "")):
        return False
    return not re.match(r"(?:endpoint|project)=", ctx.target.password or "")


def _one_host(
    index: int, host: str, port: int, ctx: CheckContext, resolver: _Dns | None, local: dict[str, list[str]]
) -> _HostReport:
    hostaddrs = [h.strip() for h in (ctx.target.params.get("hostaddr") or "").split(",")]
    hostaddr = hostaddrs[index] if index < len(hostaddrs) else ""
    if hostaddr:
        report = _HostReport(host or hostaddr, port, "hostaddr", Status.SKIP)
        report.addresses = [Address(_family(hostaddr), hostaddr, port)]
        report.summary = f"hostaddr={hostaddr} given: libpq connects there without DNS" + (
            f" and uses {host} only for TLS (SNI, certificate check)" if host else ""
        )
        return report
    if not host or host.startswith("/"):
        report = _HostReport(host or "(default socket)", port, "socket", Status.SKIP)
        report.summary = f"Unix socket {host or '/var/run/postgresql'}: no DNS, TCP or TLS involved"
        return report
    if is_ip(host):
        report = _HostReport(host, port, "ip", Status.SKIP)
        report.addresses = [Address(_family(host), host, port)]
        report.summary = f"{host} is an IP address: nothing to resolve"
        if neon_without_sni(ctx):
            report.status = Status.WARN
            report.summary += "; but by IP libpq sends no TLS SNI, so Neon cannot tell which endpoint you mean"
            report.failure_text = "Endpoint ID is not specified"
            report.next_step = (
                "Connect with the Neon host name (ep-….neon.tech), or add options=endpoint%3D<endpoint-id> to the URL"
            )
        return report
    lowered = host.lower().rstrip(".")
    if lowered == "localhost" or lowered in local:
        report = _HostReport(host, port, "hosts-file")
        _local_name(report, ctx, local.get(lowered, []))
        return report
    report = _HostReport(host, port, "name")
    if resolver is None and (lowered == "invalid" or lowered.endswith(".invalid")):
        report.details["dns"] = {"A": {"status": "nxdomain", "error": "'.invalid' names never exist (RFC 6761)"}}
        report.details["getaddrinfo"] = "not asked: '.invalid' names never resolve (RFC 6761)"
        _dns_failure(report, "nxdomain", ["RFC 6761: .invalid is reserved"], ctx)
        return report
    _resolve_name(report, ctx, resolver, gai_wanted=not ctx.options.nameserver)
    return report


def explain(ctx: CheckContext, text: str | None) -> list[dict[str, Any]]:
    """Rule matches for a failure text in libpq's words (none while the rule engine is absent)."""
    if not text:
        return []
    try:
        from neondoctor.checklist import explain_failure
    except ImportError:
        return []
    return ctx.target.redactor.obj(explain_failure(text, ctx.options.rules_dirs))


def _needs_dns(host: str, ctx: CheckContext, local: dict[str, list[str]]) -> bool:
    lowered = host.lower().rstrip(".")
    if not host or host.startswith("/") or is_ip(host) or lowered == "localhost" or lowered in local:
        return False
    return bool(ctx.options.nameserver) or not (lowered == "invalid" or lowered.endswith(".invalid"))


def run(ctx: CheckContext) -> ProbeResult:
    local = hosts_file_names()
    resolver: _Dns | None = None
    note = ""
    if any(_needs_dns(host, ctx, local) for host, _ in ctx.target.hosts):
        import dns.exception

        try:
            resolver = _Dns(ctx.options.nameserver, ctx.step_timeout())
        except ValueError as exc:
            return ProbeResult(name, Status.FAIL, str(exc), next_step="Pass --nameserver IP or IP:PORT")
        except dns.exception.DNSException as exc:  # NoResolverConfiguration: no usable /etc/resolv.conf
            note = f"no DNS resolver configuration ({type(exc).__name__}): only getaddrinfo was asked"

    reports = [_one_host(i, host, port, ctx, resolver, local) for i, (host, port) in enumerate(ctx.target.hosts)]
    addresses = [address for report in reports for address in report.addresses]
    ctx.addresses = addresses
    ctx.facts["address_hosts"] = {(a.ip, a.port): r.host for r in reports for a in r.addresses}

    details: dict[str, Any] = {
        "resolver": "nameserver " + ctx.options.nameserver if ctx.options.nameserver else "system",
        "hosts": [
            {
                "host": r.host,
                "port": r.port,
                "kind": r.kind,
                "status": str(r.status),
                "summary": r.summary,
                "addresses": [{"family": a.family, "ip": a.ip} for a in r.addresses],
                **r.details,
                **({"notes": r.notes} if r.notes else {}),
            }
            for r in reports
        ],
    }
    if note:
        details["note"] = note
    statuses = [r.status for r in reports]
    failed = [r for r in reports if r.status is Status.FAIL]
    warned = [r for r in reports if r.status is Status.WARN]
    text = "; ".join(r.summary for r in reports)
    if len(reports) == 1 and reports[0].notes:
        text += " (" + "; ".join(reports[0].notes) + ")"
    if failed and not addresses and not any(r.kind == "socket" for r in reports):
        status = Status.FAIL
        focus = failed[0]
    elif failed:
        status, focus = Status.WARN, failed[0]
        text = f"{len(failed)} of {len(reports)} hosts do not resolve: " + text
    elif warned:
        status, focus = Status.WARN, warned[0]
    elif all(s is Status.SKIP for s in statuses):
        status, focus = Status.SKIP, None
    else:
        status, focus = Status.PASS, None
    matches = explain(ctx, focus.failure_text) if focus else []
    return ProbeResult(
        name,
        status,
        ctx.target.redactor(text),
        details=ctx.target.redactor.obj(details),
        matches=matches,
        next_step=ctx.target.redactor(focus.next_step) if focus and focus.next_step else None,
        exact_next_step=bool(focus and focus.next_step),
    )
