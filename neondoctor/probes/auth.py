"""auth: one real libpq connection, as the app would open it; slots and tables reuse it."""

from __future__ import annotations

import ipaddress
import math
import re
import time
from typing import Any

from neondoctor.probes.base import CheckContext, ProbeResult, Status

name = "auth"
APPLICATION_NAME = "neondoctor"
NEON_WAKE_UP_MS = 1500
_SERVER_MESSAGE = re.compile(r"(?:FATAL|ERROR|PANIC):\s+(?P<message>.+)")
_CLIENT_PREFIX = re.compile(r"^(?:connection failed: )?(?:connection to server (?:at|on) .*? failed: )?", re.DOTALL)


def run(ctx: CheckContext) -> ProbeResult:
    import psycopg

    kwargs = connect_kwargs(ctx)
    started = time.monotonic()
    try:
        conn = psycopg.connect(**kwargs)
    except psycopg.Error as exc:
        return _failure(ctx, str(exc), getattr(exc, "sqlstate", None), (time.monotonic() - started) * 1000)
    connect_ms = (time.monotonic() - started) * 1000
    if ctx.facts.get("abandoned"):
        conn.close()
        return ProbeResult(name, Status.FAIL, "connected after the overall cap; connection closed")
    ctx.session = conn
    return _success(ctx, conn, connect_ms, kwargs.get("hostaddr"))


def connect_kwargs(ctx: CheckContext) -> dict[str, Any]:
    """The target's parameters, bounded by the step timeout, aimed at the address dns and tcp found."""
    kwargs: dict[str, Any] = dict(ctx.target.connect_kwargs())
    kwargs["connect_timeout"] = str(max(2, math.ceil(ctx.step_timeout())))
    kwargs["application_name"] = APPLICATION_NAME
    kwargs["autocommit"] = True
    hostaddr = _resolved_address(ctx)
    if hostaddr:
        kwargs["hostaddr"] = hostaddr
    return kwargs


def _resolved_address(ctx: CheckContext) -> str | None:
    """Reuse the address dns resolved (and tcp reached), so libpq does not ask the resolver again."""
    hosts = ctx.target.hosts
    if len(hosts) != 1 or ctx.target.params.get("hostaddr") or not ctx.addresses:
        return None
    host = hosts[0][0]
    if not host or host.startswith("/") or _is_ip(host):
        return None
    reached = ctx.facts.get("tcp_address")
    if isinstance(reached, str) and reached:
        return reached
    if reached is not None and getattr(reached, "ip", None):
        return str(reached.ip)
    return ctx.addresses[0].ip


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def server_message(text: str) -> str:
    """The server's own words (after FATAL:/ERROR:), or the client's error without libpq's prefix."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in lines:
        match = _SERVER_MESSAGE.search(line)
        if match:
            return match.group("message").strip()
    first = lines[0] if lines else text.strip()
    return _CLIENT_PREFIX.sub("", first, count=1).strip() or first


def _failure(ctx: CheckContext, raw: str, sqlstate: str | None, elapsed_ms: float) -> ProbeResult:
    from neondoctor.checklist import explain_failure

    redactor = ctx.target.redactor
    text = redactor(raw)
    matches = explain_failure(text, ctx.options.rules_dirs)
    summary = server_message(text)
    top = matches[0] if matches else {}
    if top.get("hint"):
        summary += f" ({top['hint']})"
    elif top.get("layer") == "slots":
        summary += " (no connection slot left for this role: a slots problem)"
    details: dict[str, Any] = {"error": text, "elapsed_ms": round(elapsed_ms, 1)}
    if sqlstate:
        details["sqlstate"] = sqlstate
    if top.get("layer"):
        details["layer"] = top["layer"]
    return ProbeResult(
        name,
        Status.FAIL,
        summary,
        details=details,
        matches=matches,
        next_step=None if matches else "Try the same string with psql to see whether the server accepts it",
    )


def _success(ctx: CheckContext, conn: Any, connect_ms: float, hostaddr: str | None) -> ProbeResult:
    info = conn.info
    version = info.parameter_status("server_version") or str(info.server_version)
    user = info.parameter_status("session_authorization") or info.user
    tls = bool(conn.pgconn.ssl_in_use)
    details: dict[str, Any] = {
        "server_version": version,
        "server_version_num": info.server_version,
        "user": user,
        "database": info.dbname,
        "superuser": info.parameter_status("is_superuser") == "on",
        "tls": tls,
        "connect_ms": round(connect_ms, 1),
        "backend_pid": info.backend_pid,
    }
    for key in ("tls_version", "tls_cipher"):
        if ctx.facts.get(key):
            details[key] = ctx.facts[key]
    if hostaddr:
        details["hostaddr"] = hostaddr
    standby = info.parameter_status("in_hot_standby")
    if standby is not None:
        details["hot_standby"] = standby == "on"
    ctx.facts["server_version"] = version
    ctx.facts["server_version_num"] = info.server_version
    ctx.facts["superuser"] = details["superuser"]
    ctx.facts["user"] = user
    transport = "TLS" if tls else "no TLS"
    if tls and details.get("tls_version"):
        transport = f"TLS ({details['tls_version']})"
    summary = f"{user} on {info.dbname}, PostgreSQL {version.split()[0]}, {transport}, connected in {connect_ms:.0f} ms"
    neon = bool(ctx.target.neon) or bool(ctx.facts.get("neon"))
    if neon and connect_ms > NEON_WAKE_UP_MS:
        return ProbeResult(
            name,
            Status.WARN,
            f"{summary}: slow first connect, likely the compute waking up from scale-to-zero",
            details=details,
            next_step="Allow for the wake-up: a connect_timeout of 10 s or more and a retry in the app, or disable "
            "scale-to-zero for this compute in the Neon console",
        )
    return ProbeResult(name, Status.PASS, summary, details=details)


def query(ctx: CheckContext, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run one read-only query on the session, cancelled if it outlives the step timeout."""
    import threading

    conn = ctx.session
    timer = threading.Timer(ctx.step_timeout(), _cancel, (conn,))
    timer.daemon = True
    timer.start()
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        timer.cancel()


def _cancel(conn: Any) -> None:
    try:
        conn.cancel_safe(timeout=2.0)
    except Exception:
        return


def query_failed(ctx: CheckContext, probe: str, what: str, exc: Exception) -> ProbeResult:
    """A read-only query that failed: the check cannot tell, so it warns with the server's words."""
    from neondoctor.checklist import explain_failure

    text = ctx.target.redactor(str(exc).strip() or type(exc).__name__)
    if type(exc).__name__ == "QueryCanceled":
        text = f"the query took longer than {ctx.options.timeout:g} s and was cancelled ({text})"
    return ProbeResult(
        probe,
        Status.WARN,
        f"{what}: {server_message(text)}",
        details={"error": text, "sqlstate": getattr(exc, "sqlstate", None)},
        matches=explain_failure(text, ctx.options.rules_dirs),
        next_step="Run the check again; if it persists, the role may lack access to the catalogue "
        "(pg_stat_activity, pg_class) or the server is overloaded",
    )
