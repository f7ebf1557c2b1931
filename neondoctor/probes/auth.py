"""auth: one real libpq connection, as the app would open it; slots and tables reuse it.

A peer that is not a PostgreSQL server (or breaks the protocol) is named for what it did, from the
words libpq uses for it, instead of being matched to rules written for real servers. The step keeps
its deadline even when the peer trickles bytes: libpq's own connect_timeout is whole seconds, at
least 2, so the connect runs in a worker that is abandoned at the step deadline.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from neondoctor.probes.base import CheckContext, ProbeResult, Status

name = "auth"
APPLICATION_NAME = "neondoctor"
NEON_WAKE_UP_MS = 1500
DEADLINE_SLACK_S = 0.25
LONG_MESSAGE_CHARS = 1000
DETAIL_CHARS = 4000
_SERVER_MESSAGE = re.compile(r"(?:FATAL|ERROR|PANIC):\s+(?P<message>.+)")
_CLIENT_PREFIX = re.compile(r"^(?:connection failed: )?(?:connection to server (?:at|on) .*? failed: )?", re.DOTALL)


def run(ctx: CheckContext) -> ProbeResult:
    import psycopg

    kwargs = connect_kwargs(ctx)
    seconds = ctx.step_timeout()
    started = time.monotonic()
    try:
        conn = _connect_within(kwargs, seconds)
    except psycopg.Error as exc:
        return _failure(ctx, str(exc), getattr(exc, "sqlstate", None), (time.monotonic() - started) * 1000)
    except TimeoutError:
        return _slow_start(ctx, seconds)
    connect_ms = (time.monotonic() - started) * 1000
    if ctx.facts.get("abandoned"):
        conn.close()
        return ProbeResult(name, Status.FAIL, "connected after the overall cap; connection closed")
    ctx.session = conn
    return _success(ctx, conn, connect_ms, kwargs.get("hostaddr"))


def _connect_within(kwargs: dict[str, Any], seconds: float) -> Any:
    """psycopg.connect, given up after ``seconds`` (+ a little slack) whatever the peer does.

    A connection that completes after we gave up is closed by the worker itself.
    """
    import threading

    import psycopg

    box: dict[str, Any] = {}
    gave_up = threading.Event()

    def work() -> None:
        try:
            conn = psycopg.connect(**kwargs)
        except BaseException as exc:
            box["error"] = exc
            return
        if gave_up.is_set():
            conn.close()
        else:
            box["conn"] = conn

    worker = threading.Thread(target=work, name="auth-connect", daemon=True)
    worker.start()
    worker.join(seconds + DEADLINE_SLACK_S)
    if worker.is_alive():
        gave_up.set()
        if "conn" in box:
            box.pop("conn").close()
        raise TimeoutError
    if "error" in box:
        raise box["error"]
    return box["conn"]


def _slow_start(ctx: CheckContext, seconds: float) -> ProbeResult:
    host, port = _peer(ctx)
    if seconds < ctx.options.timeout and ctx.expired():
        ctx.facts["abandoned"] = True
        return ProbeResult(
            name,
            Status.FAIL,
            f"did not finish: timed out (overall cap {ctx.options.total_timeout:g} s)",
            details={"total_timeout_s": ctx.options.total_timeout},
            next_step=f"Rerun with a larger --total-timeout; {name} was still waiting when the cap was reached",
        )
    hangs = _login_hangs(ctx, seconds * 1000)
    if hangs is not None:
        return ProbeResult(
            name,
            Status.FAIL,
            f"{host}:{port} did not finish PostgreSQL's start-up within {seconds:.3g} s ({hangs.note})",
            details={"timeout_s": round(seconds, 2), "layer": "auth", "server_state": hangs.state},
            next_step=hangs.next_step,
            exact_next_step=True,
        )
    return ProbeResult(
        name,
        Status.FAIL,
        f"{host}:{port} did not finish PostgreSQL's start-up within {seconds:.3g} s (tcp reached it: it answers "
        "very slowly, or not at all)",
        details={"timeout_s": round(seconds, 2), "layer": "auth"},
        next_step="Retry once with a larger --timeout"
        + (" (a Neon compute waking up takes a few seconds)" if ctx.target.neon or ctx.facts.get("neon") else "")
        + f"; if it stays this slow, check that {host}:{port} is really PostgreSQL and not a proxy or another "
        "service, and whether the server is overloaded",
    )


def connect_kwargs(ctx: CheckContext) -> dict[str, Any]:
    """The target's parameters, bounded by the step timeout, aimed at the address dns and tcp found."""
    kwargs: dict[str, Any] = dict(ctx.target.connect_kwargs())
    # One second beyond the step: the step's own deadline (_connect_within) is the one that fires, exactly.
    kwargs["connect_timeout"] = str(max(2, math.ceil(ctx.step_timeout())) + 1)
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
    violation = protocol_violation(text)
    if violation is not None:
        return _not_postgres(ctx, violation, text, elapsed_ms)
    message = server_message(text)
    if len(message) > LONG_MESSAGE_CHARS:
        return _not_postgres(ctx, f"a {_size(len(message))} error message ({message[:120]!r}…)", text, elapsed_ms)
    matches = explain_failure(text, ctx.options.rules_dirs)
    summary = server_message(text)
    top = matches[0] if matches else {}
    found = read_evidence(ctx, text, elapsed_ms)
    if found is not None and found.note:
        summary += f" ({found.note})"
    elif top.get("hint"):
        summary += f" ({top['hint']})"
    elif top.get("layer") == "slots":
        summary += " (no connection slot left for this role: a slots problem)"
    details: dict[str, Any] = {"error": text, "elapsed_ms": round(elapsed_ms, 1)}
    if sqlstate:
        details["sqlstate"] = sqlstate
    if top.get("layer"):
        details["layer"] = top["layer"]
    if found is not None:
        details["server_state"] = found.state
        return ProbeResult(name, Status.FAIL, summary, details=details, matches=matches, next_step=found.next_step,
                           exact_next_step=True)
    return ProbeResult(
        name,
        Status.FAIL,
        summary,
        details=details,
        matches=matches,
        next_step=None if matches else "Try the same string with psql to see whether the server accepts it",
    )


@dataclass
class Evidence:
    """What a failed login says about the server's state, and the next step it implies."""

    state: str
    """standby-no-hot-standby | shutting-down | standby | primary | no-socket | login-hangs"""
    next_step: str
    note: str | None = None


_NO_RETRY = "retrying will not help"


def read_evidence(ctx: CheckContext, text: str, elapsed_ms: float) -> Evidence | None:
    """What the failure says about the server's state, and the step that follows from it (retry only where it helps)."""
    lowered = text.lower()
    if "not accepting connections" in lowered and "hot standby mode is disabled" in lowered:
        return Evidence(
            "standby-no-hot-standby",
            "This server is a standby with hot_standby=off: it replays WAL and admits no sessions at all, so "
            f"{_NO_RETRY}. Connect to the primary, or set hot_standby = on on this standby and restart it",
            "a standby with hot_standby=off",
        )
    if "the database system is shutting down" in lowered:
        return Evidence(
            "shutting-down",
            "The server is shutting down: a smart shutdown admits no new sessions while it waits for the open "
            f"ones to end, so {_NO_RETRY} until it is started again. Connect to another server, or ask its admin "
            "(`pg_ctl status`; `pg_ctl stop -m fast` ends the wait, `pg_ctl start` brings it back)",
            "shutdown in progress",
        )
    attrs = ctx.target.params.get("target_session_attrs") or "any"
    if "session is read-only" in lowered or "server is in hot standby mode" in lowered:
        return Evidence(
            "standby",
            f"This server is a read-only standby (in recovery) and target_session_attrs={attrs} wants a writable "
            "primary, so "
            f"{_NO_RETRY}: point the string at the primary, or list it too (host=primary,standby)",
            f"a standby, refused by target_session_attrs={attrs}",
        )
    if "session is not read-only" in lowered or "server is not in hot standby mode" in lowered:
        return Evidence(
            "primary",
            f"This server is a primary and target_session_attrs={attrs} wants a standby, so {_NO_RETRY}: point the "
            "string at a standby, or drop target_session_attrs",
            f"a primary, refused by target_session_attrs={attrs}",
        )
    client = _client_certificate(ctx, lowered)
    if client is not None:
        return client
    socket_missing = _SOCKET_MISSING.search(text)
    if socket_missing:
        return _no_socket(socket_missing.group("socket"))
    if "timeout expired" in lowered:
        return _login_hangs(ctx, elapsed_ms)
    return None


def _client_certificate(ctx: CheckContext, lowered: str) -> Evidence | None:
    cn = ctx.facts.get("client_cert_cn")
    user = ctx.target.user
    if "connection requires a valid client certificate" in lowered:
        if cn is None:
            return Evidence(
                "client-cert-required",
                "The server requires a client certificate (pg_hba.conf clientcert=verify-ca/verify-full, or cert "
                "authentication) and this string sends none: add "
                "sslcert=/path/to/client.crt&sslkey=/path/to/client.key, a certificate signed by the CA in the "
                f"server's ssl_ca_file, with CN={user or '<user>'}",
                "no client certificate sent",
            )
        return Evidence(
            "client-cert-rejected",
            f"The server did not accept the client certificate (CN={cn}): it must be signed by the CA in the server's "
            "ssl_ca_file; check which CA issued it",
            "the client certificate was not accepted",
        )
    failed = "password authentication failed" in lowered or "certificate authentication failed" in lowered
    if failed and cn is not None and user and cn != user:
        return Evidence(
            "client-cert-other-user",
            f"The client certificate is for CN={cn}, but you log in as {user}: with clientcert=verify-full (or cert "
            "authentication) the server compares the two and says only that authentication failed (its log says "
            f"'CN mismatch'). Use {user}'s certificate, log in as {cn}, or map the names in pg_ident.conf",
            f"the client certificate is {cn}'s",
        )
    return None


_AUTH_TYPES = "PostgreSQL's are 0 (ok), 2 (Kerberos), 3 (password), 5 (md5), 7-9 (GSSAPI, SSPI), 10-12 (SASL)"


@functools.cache
def _violations() -> tuple[tuple[re.Pattern[str], Any], ...]:
    """libpq's protocol-violation messages and their meaning (compiled on the first failure, not at import)."""
    return (
        (
            re.compile(r"expected authentication request from server, but received (?P<c>.)", re.DOTALL),
            lambda m: "a notice before any authentication request (a flood of notices?)"
            if m.group("c") == "N"
            else f"the byte {m.group('c')!r} where an authentication request belongs"
            + (" (the start of 'HTTP/…': a web server?)" if m.group("c") == "H" else ""),
        ),
        (
            re.compile(r"authentication method (?P<n>\d+) not supported"),
            lambda m: f"an authentication method this client does not know (type {m.group('n')}; {_AUTH_TYPES})",
        ),
        (
            re.compile(r"received invalid authentication request"),
            lambda m: "a malformed authentication request (a message length that does not fit its type)",
        ),
        (
            re.compile(r"lost synchronization with server: got message type \"(?P<c>.)\", length (?P<n>-?\d+)"),
            lambda m: f"a message of type {m.group('c')!r} with a bogus length ({int(m.group('n')):,} bytes)",
        ),
        (
            re.compile(r"message contents do not agree with length in message type \"(?P<c>.)\""),
            lambda m: f"a message of type {m.group('c')!r} whose contents do not agree with its length",
        ),
        (
            re.compile(r"unexpected response from server; first received character was \"(?P<c>.)\""),
            lambda m: f"the byte {m.group('c')!r}, which starts no PostgreSQL message",
        ),
        (
            re.compile(r"received invalid response to (?P<what>SSL|GSSAPI) negotiation: (?P<c>.)"),
            lambda m: f"{m.group('c')!r} in answer to the {m.group('what')} request (PostgreSQL answers 'S' or 'N')",
        ),
        (
            re.compile(
                r"SSL error: (?:wrong version number|packet length too long)|received unencrypted data after SSL"
            ),
            lambda m: "not the PostgreSQL protocol after SSL was accepted: it said 'S' (go ahead with TLS) and then "
            "sent bytes that are not TLS",
        ),
        (
            re.compile(r"unexpected message from server during startup|invalid message format|"
                       r"server sent data \(\\?\"D\\?\" message\) without prior row description"),
            lambda m: "a message PostgreSQL never sends at that point of the start-up",
        ),
    )


def protocol_violation(text: str) -> str | None:
    """What the peer did, in words, when libpq's error says it broke PostgreSQL's protocol; else None."""
    for pattern, describe in _violations():
        match = pattern.search(text)
        if match:
            return describe(match)
    if re.search(r"failed:\s*$", text.strip().splitlines()[-1] if text.strip() else "") or re.fullmatch(
        r"(?:connection failed: )?connection to server at [^\n]*failed:\s*", text.strip()
    ):
        return (
            "an error message libpq could not read: longer than 30,000 bytes or malformed "
            "(a PostgreSQL server's errors are a few hundred bytes)"
        )
    return None


_SOCKET_MISSING = re.compile(r'on socket "(?P<socket>[^"]+)" failed: No such file or directory')


def _no_socket(path: str) -> Evidence:
    directory, _, filename = path.rpartition("/")
    try:
        names = os.listdir(directory or "/")
        others = sorted(n for n in names if n.startswith(".s.PGSQL.") and not n.endswith(".lock"))
    except FileNotFoundError:
        return Evidence(
            "no-socket",
            f"The directory {directory} does not exist: point host at the directory the server's "
            "unix_socket_directories names (Debian and Ubuntu: /var/run/postgresql; Homebrew: /tmp)",
            "no such directory",
        )
    except OSError:
        others = []
    if others:
        ports = ", ".join(n.removeprefix(".s.PGSQL.") for n in others)
        return Evidence(
            "no-socket",
            f"No server listens on {filename} in {directory}, but one does on port {ports} there: put that port in "
            "the string (port=…)",
            f"a server in {directory} listens on port {ports}",
        )
    return Evidence(
        "no-socket",
        f"No server has a socket in {directory}: start the server (`pg_ctl start`, `systemctl start postgresql`), "
        "or point host at the directory its unix_socket_directories names (Debian and Ubuntu: /var/run/postgresql)",
        f"no server socket in {directory}",
    )


def _login_hangs(ctx: CheckContext, elapsed_ms: float) -> Evidence | None:
    """TCP (and TLS) answered at once but the login never finished: a proxy or pooler waiting for its server.

    A PostgreSQL server that is starting or recovering answers a login at once with its state; what hangs
    here is whatever stands between: PgBouncer, Neon's proxy (waking a compute), a TCP proxy.
    """
    tcp_ms = ctx.facts.get("tcp_connect_ms")
    tls_ms = ctx.facts.get("tls_handshake_ms")
    if not isinstance(tcp_ms, int | float) or tcp_ms > 1000:
        return None
    quick = f"TCP answered in {tcp_ms:.0f} ms" + (f" and TLS in {tls_ms:.0f} ms" if isinstance(tls_ms, int | float)
                                                   else "")
    waited = f"{elapsed_ms / 1000:.1f} s"
    if ctx.target.neon or ctx.facts.get("neon"):
        return Evidence(
            "login-hangs",
            f"{quick}, but the login hung for {waited}: Neon's proxy answered and is waiting for the compute "
            "(waking from scale-to-zero, or unreachable). Retry with a longer --timeout and connect_timeout=15; if it "
            "persists, check the compute in the Neon console",
            f"{quick}; the login hung: the proxy is waiting for the compute",
        )
    pooler = ctx.target.port == 6432 or "pooler" in (ctx.target.host or "") or "bouncer" in (ctx.target.host or "")
    what = "the pooler (PgBouncer on port 6432)" if pooler else "usually a pooler or proxy (PgBouncer, a tunnel)"
    return Evidence(
        "login-hangs",
        f"{quick}, but the login did not finish in {waited}: what answers at once and then stalls is {what} that "
        "cannot reach its database server (a PostgreSQL server answers a login at once, even while starting). "
        "Check the server behind it (PgBouncer: its log, `SHOW SERVERS;` on the admin console, the [databases] "
        "host and port), not this string; a larger --timeout helps only if that server is merely slow",
        f"{quick}; the login hung: a pooler that cannot reach its server?",
    )


def _size(chars: int) -> str:
    for unit, size in (("MB", 1 << 20), ("KB", 1 << 10)):
        if chars >= size:
            return f"{chars / size:.0f} {unit}"
    return f"{chars}-byte"


def _peer(ctx: CheckContext) -> tuple[str, int]:
    reached = ctx.facts.get("tcp_address")
    host = getattr(reached, "ip", None) or (reached if isinstance(reached, str) else None) or ctx.target.host
    shown = str(host or "localhost")
    return (f"[{shown}]" if ":" in shown else shown), ctx.target.port


def _not_postgres(ctx: CheckContext, seen: str, text: str, elapsed_ms: float) -> ProbeResult:
    host, port = _peer(ctx)
    next_step = (
        f"Check that {host}:{port} is really a PostgreSQL server (or Neon's proxy): a proxy, a load balancer or "
        f"another service on this port answers like this. On that machine, `ss -ltnp 'sport = :{port}'` shows "
        "what listens"
    )
    if "authentication method this client does not know" in seen:
        next_step += "; if it is a newer PostgreSQL or a pooler, upgrade libpq (psycopg) and retry"
    return ProbeResult(
        name,
        Status.FAIL,
        f"{host}:{port} does not speak PostgreSQL's protocol: it sent {seen}",
        details={
            "error": text[:DETAIL_CHARS] + ("…" if len(text) > DETAIL_CHARS else ""),
            "error_chars": len(text),
            "elapsed_ms": round(elapsed_ms, 1),
            "layer": "protocol",
        },
        next_step=next_step,
        exact_next_step=True,
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
    if standby is None:
        standby = _in_recovery(conn)
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
    if details.get("hot_standby"):
        summary += "; a read-only standby (in recovery): writes will fail here"
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


def _in_recovery(conn: Any) -> str | None:
    """``on``/``off`` from pg_is_in_recovery() for servers before 14, which do not report in_hot_standby."""
    if conn.info.server_version >= 140000:
        return None
    try:
        row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    except Exception:
        return None
    return "on" if row and row[0] else "off"


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
