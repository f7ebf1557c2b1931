"""What `check` knows about Neon: SNI routing and the endpoint id, pooled vs direct hosts, cold starts.

Neon's proxy routes a connection by the endpoint id, which a client sends as TLS SNI (the first label
of the ep-… host name). Without SNI the proxy needs the id in the startup ``options``
(``endpoint=<id>``) or in front of the password (``endpoint=<id>;<password>``), else it answers
"Endpoint ID is not specified". A ``-pooler`` host is PgBouncer in transaction mode. An idle compute
is suspended after 5 minutes (the default) and wakes on the next connect, which then takes seconds.

Everything here is plain data and functions; probes and the runner decide when to use it.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from neondoctor.target import NeonHost, neon_host

if TYPE_CHECKING:
    from neondoctor.probes.base import CheckContext, ProbeResult
    from neondoctor.target import Target

SNI_MIN_LIBPQ = 140000
"""libpq sends SNI from 14 on (``sslsni``, on by default)."""
SUSPEND_SECONDS = 300
"""Neon suspends an idle compute after 5 minutes unless scale-to-zero is off."""
SLOW_FIRST_CONNECT_MS = 1500
"""A first connect slower than this on a Neon host is worth one comparison connect."""
TRANSIENT_RULES = ("neon-compute-unreachable", "server-starting-up")
"""Failures that a retry after a short wait can cure: the compute is waking or the server is starting.

Not transient in this sense: ``neon-too-many-connection-attempts`` (the proxy's rate limit: more attempts
feed it, and the finding is the burst itself), quota, disabled endpoint, password and IP allow-list errors.
"""
POOLED_BREAKS = (
    "session SET",
    "LISTEN/NOTIFY",
    "session advisory locks",
    "SQL-level PREPARE",
    "temporary tables across transactions",
    "startup parameters (options=-c …)",
)
_ENDPOINT_OPTION = re.compile(r"(?:^|\s)(?:--)?(?:endpoint|project)=(?P<id>[A-Za-z0-9-]+)")
_ENDPOINT_PASSWORD = re.compile(r"^(?:endpoint|project)=(?P<id>[A-Za-z0-9-]+)[;$]")
_ENDPOINT_ID = re.compile(r"\bep-[a-z0-9]+(?:-[a-z0-9]+)*", re.IGNORECASE)


def libpq_version_num() -> int:
    from psycopg import pq

    return int(pq.version())


def version_text(number: int) -> str:
    return f"{number // 10000}.{number % 100}" if number >= 100000 else f"{number // 10000}.{number // 100 % 100}"


def direct_twin(host: str) -> str:
    """The direct (not pooled) host of a ``-pooler`` host: the same name without ``-pooler``."""
    first, dot, rest = host.partition(".")
    return first.removesuffix("-pooler") + dot + rest


@dataclass(frozen=True)
class Sni:
    """Whether this client will send SNI, which Neon's proxy needs to find the endpoint."""

    libpq: str
    sent: bool
    name: str | None
    why_not: str | None
    """Why no SNI is sent: an IP, a Unix socket, sslsni=0, an old libpq; None when it is sent."""
    routed_by: str | None
    """How Neon learns the endpoint without SNI: 'options' or 'password', or None."""
    endpoint_id: str | None
    """The endpoint id this string names anywhere (host, options, password, a CNAME target)."""

    def to_json(self) -> dict[str, Any]:
        return {"libpq": self.libpq, "sent": self.sent, "name": self.name, "why_not": self.why_not,
                "routed_by": self.routed_by, "endpoint_id": self.endpoint_id}


def sni(target: Target, *, neon: NeonHost | None = None, libpq: int | None = None) -> Sni:
    from neondoctor.probes.dns import is_ip

    libpq = libpq if libpq is not None else libpq_version_num()
    host = (target.host or "").split(",")[0]
    why_not = None
    if not host or host.startswith("/"):
        why_not = "a Unix socket has no TLS"
    elif is_ip(host.strip("[]")):
        why_not = f"the host {host} is an IP address"
    elif target.params.get("sslsni", "1") == "0":
        why_not = "sslsni=0 turns it off"
    elif libpq < SNI_MIN_LIBPQ:
        why_not = f"libpq {version_text(libpq)} is older than 14"
    routed_by = None
    endpoint = None
    option = _ENDPOINT_OPTION.search(target.params.get("options", ""))
    password = _ENDPOINT_PASSWORD.match(target.password or "")
    if option:
        routed_by, endpoint = "options", option.group("id")
    elif password:
        routed_by, endpoint = "password", password.group("id")
    neon = neon or target.neon
    if neon is not None:
        endpoint = neon.endpoint_id
    return Sni(version_text(libpq), why_not is None, None if why_not else host, why_not, routed_by,
               endpoint.removesuffix("-pooler") if endpoint else None)


def endpoint_in_text(*texts: str | None) -> str | None:
    """An ep-… id written anywhere in the string (a comment, a plain ?endpoint= parameter, a CNAME)."""
    for text in texts:
        match = _ENDPOINT_ID.search(text or "")
        if match:
            return match.group(0).lower().removesuffix("-pooler")
    return None


def with_endpoint_option(target: Target, endpoint_id: str) -> str:
    """This string (password masked) with options=endpoint%3D<id> added to whatever options it has."""
    from neondoctor.redact import MASK
    from neondoctor.target import build_url

    params = dict(target.params)
    params.pop("password", None)
    existing = params.get("options", "")
    params["options"] = (existing + " " if existing else "") + f"endpoint={endpoint_id}"
    return build_url(params, password=MASK if target.password else None)


def sni_fix(target: Target, endpoint_id: str | None, why_not: str | None = None) -> str:
    """The exact fix for a Neon endpoint reached without SNI, for this string, best move first."""
    ident = endpoint_id or "<endpoint-id>"
    url = with_endpoint_option(target, ident).replace(quote(ident, safe=""), ident)
    ask = "" if endpoint_id else (
        " (your endpoint id is the first part of the Neon host name, ep-…; the console shows it under "
        "Branches → Computes)"
    )
    options = f"add options=endpoint%3D{ident} to the string: {url}{ask}"
    password = f"or, for clients that cannot send options, write the password as endpoint={ident};<password>"
    why = why_not or ""
    if why.startswith("sslsni"):
        return f"Remove sslsni=0 (Neon routes on SNI); or {options}; {password}"
    if why.startswith("libpq"):
        return f"Upgrade the client to libpq ≥ 14 (psycopg 3, psycopg2-binary ≥ 2.9), which sends SNI; or {options}; " \
            f"{password}"
    return f"{options[0].upper()}{options[1:]}; {password}"


def pooled_note(neon: NeonHost, host: str) -> str:
    return (
        "pooled host: PgBouncer in transaction mode, where " + ", ".join(POOLED_BREAKS)
        + f" do not hold; run migrations and pg_dump on the direct host {direct_twin(host)}"
    )


# --------------------------------------------------------------------------- cold starts


def wants_second_connect(ctx: CheckContext, result: ProbeResult) -> bool:
    return (
        is_neon(ctx)
        and result.name == "auth"
        and str(result.status) in ("pass", "warn")
        and float(result.details.get("connect_ms") or 0) > SLOW_FIRST_CONNECT_MS
        and not ctx.facts.get("second_connect_ms")
    )


def is_neon(ctx: CheckContext) -> bool:
    return bool(ctx.target.neon or ctx.facts.get("neon"))


def second_connect(ctx: CheckContext, result: ProbeResult) -> None:
    """One more session, closed at once: a fast second connect after a slow first one is a cold start."""
    import psycopg

    from neondoctor.probes.auth import connect_kwargs

    first_ms = float(result.details["connect_ms"])
    started = time.monotonic()
    try:
        conn = psycopg.connect(**connect_kwargs(ctx))
    except psycopg.Error:
        return
    second_ms = (time.monotonic() - started) * 1000
    with contextlib.suppress(Exception):
        conn.close()
    ctx.facts["second_connect_ms"] = second_ms
    result.details["second_connect_ms"] = round(second_ms, 1)
    advice = (
        "use pool_pre_ping=True (SQLAlchemy) or your pool's check, and keep idle connections shorter than "
        f"the {SUSPEND_SECONDS // 60}-minute suspend (pool_recycle / idle timeout under {SUSPEND_SECONDS} s)"
    )
    timeout = _connect_timeout(ctx.target)
    if second_ms * 2 < first_ms:
        woke_ms = first_ms - second_ms
        result.details["woke_ms"] = round(woke_ms, 1)
        result.summary = (
            f"{result.summary.split(':')[0]}: compute was suspended; woke in {woke_ms:.0f} ms "
            f"(first connect {first_ms:.0f} ms, second {second_ms:.0f} ms)"
        )
        if timeout is not None and timeout * 1000 < first_ms * 1.5:
            result.next_step = (
                f"connect_timeout={timeout:g} leaves too little for a wake-up of {first_ms / 1000:.1f} s: raise it to "
                f"{max(10, int(first_ms / 1000 * 2 + 1))}; and {advice}"
            )
        else:
            result.next_step = (
                ("No connect_timeout is set (libpq waits forever); set connect_timeout=10 so a wake-up fits; "
                 if timeout is None else f"connect_timeout={timeout:g} covers the wake-up; ")
                + advice
            )
    else:
        result.summary = (
            f"{result.summary.split(':')[0]}: slow connect twice ({first_ms:.0f} ms, then {second_ms:.0f} ms), "
            "so not a cold start"
        )
        result.next_step = (
            "The path to Neon is slow, not the compute: compare with a client in the same region as the "
            "project, and check VPN or proxy latency"
        )
    result.exact_next_step = True


def _connect_timeout(target: Target) -> float | None:
    raw = target.params.get("connect_timeout")
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value and value > 0 else None


def is_transient(result: ProbeResult) -> bool:
    return result.name == "auth" and str(result.status) == "fail" and bool(result.matches) and (
        result.matches[0].get("id") in TRANSIENT_RULES
    )


def retry_wait(attempt: int) -> float:
    """Seconds before retry number ``attempt`` (1-based): 0.5, 1, 2, 4 … as Neon's docs advise backoff."""
    return min(8.0, 0.5 * 2 ** (attempt - 1))


# --------------------------------------------------------------------------- after a probe


def endpoint_missing_fix(ctx: CheckContext, result: ProbeResult) -> None:
    """Neon said "Endpoint ID is not specified": name the exact fix for this string."""
    if not result.matches or result.matches[0].get("id") != "neon-endpoint-id-missing":
        return
    target = ctx.target
    info = sni(target)
    endpoint = info.endpoint_id or endpoint_in_text(target.params.get("options"), target.source)
    neon = ctx.facts.get("neon")
    if endpoint is None and isinstance(neon, NeonHost):
        endpoint = neon.endpoint_id
    why = info.why_not or (
        f"the host {target.host} is not the ep-… name, so the SNI names nothing Neon knows" if target.host else None
    )
    result.details["sni"] = info.to_json()
    result.next_step = (f"No SNI reached Neon ({why}). " if why else "") + sni_fix(target, endpoint, info.why_not)
    result.exact_next_step = True


def neon_from_cname(ctx: CheckContext, result: ProbeResult) -> None:
    """A custom name whose CNAME chain ends at a Neon host: Neon, reached by a name it does not route on."""
    if ctx.target.neon is not None or result.name != "dns":
        return
    chains: list[list[str]] = []
    _collect_chains(result.details, chains)
    for chain in chains:
        neon = next((n for n in (neon_host(name) for name in chain) if n), None)
        if neon is not None:
            ctx.facts["neon"] = neon
            ctx.facts["neon_cname"] = chain
            return


def _collect_chains(value: Any, out: list[list[str]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "cname_chain" and isinstance(item, list):
                out.append([str(name) for name in item])
            else:
                _collect_chains(item, out)
    elif isinstance(value, list):
        for item in value:
            _collect_chains(item, out)
