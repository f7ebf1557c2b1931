"""url: the parser's findings decide whether the checklist can start.

A string written for one client (SQLAlchemy's ``postgresql+psycopg2://``, a ``jdbc:`` URL, Prisma's
``?schema=…&pgbouncer=true``) is the app's real string: the checklist runs on what it means (the
libpq-ready form) and the url line carries a note on which tools would reject it as written. Real
mistakes (an unexpanded ``${VAR}``, ``postgres+driver://``, a string libpq rejects before connecting)
stay failures.
"""

from __future__ import annotations

import re
from typing import Any

from neondoctor import neon
from neondoctor.probes.base import CheckContext, ProbeResult, Status
from neondoctor.target import SQLALCHEMY_DRIVERS, Finding, Severity

name = "url"
SSLROOTCERT_SYSTEM_MIN_LIBPQ = 160000
_UNEXPANDED = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-=?+][^}]*)?\}|^\$[A-Za-z_][A-Za-z0-9_]*$")


def run(ctx: CheckContext) -> ProbeResult:
    target = ctx.target
    notes = _form_notes(target)
    accepted = "libpq accepts its libpq-ready form" if notes else "libpq accepts it"
    form_ids = {"url-driver-prefix", "url-prisma-parameter", "url-jdbc-form", "url-jdbc-parameter",
                "url-postgres-scheme"} if notes else {"url-postgres-scheme"}
    if target.driver in SQLALCHEMY_DRIVERS:
        form_ids.add("url-driver-prefix")
    errors = [f for f in target.findings if f.severity is Severity.ERROR and f.id not in form_ids]
    warnings = [f for f in target.findings if f.severity is Severity.WARNING and f.id not in form_ids]
    sni = neon.sni(target)
    details: dict[str, Any] = {
        "source": target.source,
        "dsn": target.dsn(),
        "form": target.form,
        "findings": [f"{f.id} ({f.severity})" for f in target.findings],
        "libpq_version": sni.libpq,
        "sni": sni.to_json(),
    }
    if notes:
        details["notes"] = notes
    own = _own_failure(ctx, errors)
    if own is not None:
        own.details = {**details, **own.details}
        return own
    if errors:
        first = errors[0]
        return ProbeResult(
            name,
            Status.FAIL,
            first.message,
            details=details,
            matches=[_as_match(f) for f in errors],
            next_step=_endpoint_fix(ctx, first) or first.fix,
            exact_next_step=True,
        )
    if target.neon is not None or sni.routed_by:
        ctx.facts["neon"] = target.neon or True
        notes += _neon_notes(ctx, sni)
        if notes:
            details["notes"] = notes
    where = _where(ctx)
    without_sni = _neon_without_sni(ctx, sni)
    if without_sni is not None:
        warnings.insert(0, without_sni)
    if warnings:
        return ProbeResult(
            name,
            Status.WARN,
            f"{where}; {warnings[0].message}",
            details=details,
            matches=[_as_match(f) for f in warnings],
            next_step=warnings[0].fix,
        )
    return ProbeResult(name, Status.PASS, f"{where}; {accepted}", details=details)


def _form_notes(target: Any) -> list[str]:
    """Notes for a string written for one client: what it means is checked, the form is only noted."""
    ids = {f.id for f in target.findings}
    if "url-sqlalchemy-postgres-scheme" in ids or "url-unknown-scheme" in ids:
        return []
    notes: list[str] = []
    if target.driver:
        if target.driver not in SQLALCHEMY_DRIVERS:
            return []
        notes.append(
            f"{target.scheme}+{target.driver}:// is SQLAlchemy's form: create_engine() takes it; psql, pg_dump, "
            "psycopg.connect() and other libpq clients reject it (checked here as the libpq-ready URL)"
        )
    if target.form == "jdbc":
        notes.append(
            "jdbc:postgresql:// is Java's JDBC form: the JDBC driver takes it; libpq, psql and Python drivers "
            "reject it (checked here as the libpq-ready URL"
            + (", where pgjdbc's ssl=true is sslmode=verify-full)" if any(
                f.id == "url-jdbc-parameter" and f.message.startswith("'ssl'") for f in target.findings)
               and target.params.get("sslmode") == "verify-full" else ")")
        )
    prisma = [f.message.split("=", 1)[0].strip("'") for f in target.findings if f.id == "url-prisma-parameter"]
    if prisma:
        notes.append(
            f"{', '.join(prisma)}: Prisma's own parameters; Prisma takes them, libpq, psql and Python drivers reject "
            "the string with them (checked here without them)"
        )
    if "url-postgres-scheme" in ids:
        notes.append("postgres:// works for libpq, psql, node-postgres and Prisma; SQLAlchemy ≥ 1.4 rejects it "
                     "(use postgresql:// there)")
    return notes


def _own_failure(ctx: CheckContext, errors: list[Finding]) -> ProbeResult | None:
    """Failures the parser cannot see: a variable nobody expanded, a pair libpq refuses before connecting."""
    target = ctx.target
    for key, value in target.params.items():
        if key != "password" and _UNEXPANDED.search(value):
            variable = _UNEXPANDED.search(value).group(0)  # type: ignore[union-attr]
            return ProbeResult(
                name,
                Status.FAIL,
                f"{key} is {variable!r}: a variable that nobody expanded (the app would get the same text)",
                details={"unexpanded": {key: variable}},
                matches=[_as_match(f) for f in errors],
                next_step=f"Expand {variable} where DATABASE_URL is built (the shell, docker compose's .env, the CI "
                "secret), or write the value itself; `echo \"$DATABASE_URL\"` must show no ${…}",
                exact_next_step=True,
            )
    if target.password and _UNEXPANDED.search(target.password):
        return ProbeResult(
            name,
            Status.FAIL,
            "the password is a variable that nobody expanded (${…}): the server would get that text",
            matches=[_as_match(f) for f in errors],
            next_step="Expand the variable where DATABASE_URL is built, or write the (percent-encoded) password",
            exact_next_step=True,
        )
    mode = target.params.get("sslmode")
    if (
        target.params.get("sslrootcert") == "system"
        and mode not in (None, "verify-full")
        and neon.libpq_version_num() >= SSLROOTCERT_SYSTEM_MIN_LIBPQ
    ):
        return ProbeResult(
            name,
            Status.FAIL,
            f'libpq rejects this string before connecting: weak sslmode "{mode}" may not be used with '
            'sslrootcert=system (use "verify-full")',
            matches=[_as_match(f) for f in errors],
            next_step="Use sslmode=verify-full with sslrootcert=system (the OS trust store), or drop sslrootcert to "
            f"keep sslmode={mode}",
            exact_next_step=True,
        )
    return None


def _endpoint_fix(ctx: CheckContext, finding: Finding) -> str | None:
    if finding.id != "url-driver-parameter" or not finding.message.startswith("'endpoint="):
        return None
    return neon.sni_fix(ctx.target, neon.endpoint_in_text(finding.message))


def _neon_notes(ctx: CheckContext, sni: neon.Sni) -> list[str]:
    target = ctx.target
    host = target.host or ""
    notes = []
    if sni.sent and target.neon is not None:
        notes.append(f"libpq {sni.libpq} sends SNI {sni.name}: Neon routes to endpoint {sni.endpoint_id}")
    elif sni.routed_by:
        why = f"no SNI: {sni.why_not}" if sni.why_not else f"the SNI {target.host} names no Neon endpoint"
        notes.append(f"Neon routes by the endpoint id {sni.endpoint_id} in {sni.routed_by} ({why})")
    if target.neon is not None and target.neon.pooled:
        notes.append(neon.pooled_note(target.neon, host))
    return notes


def _neon_without_sni(ctx: CheckContext, sni: neon.Sni) -> Finding | None:
    """A Neon host that will be reached without SNI and without the endpoint id anywhere else."""
    if ctx.target.neon is None or sni.sent or sni.routed_by:
        return None
    return Finding(
        "url-neon-no-sni",
        Severity.WARNING,
        f"no TLS SNI will be sent ({sni.why_not}), so Neon's proxy cannot tell which endpoint you mean "
        "(Endpoint ID is not specified)",
        neon.sni_fix(ctx.target, sni.endpoint_id, sni.why_not),
    )


def _where(ctx: CheckContext) -> str:
    target = ctx.target
    hosts = [f"Unix socket {h or '(default)'} (port {p})" if not h or h.startswith("/") else f"{h}:{p}"
             for h, p in target.hosts]
    who = target.user or "(OS user)"
    return f"{who} → {', '.join(hosts)} / {target.database or '(database = user name)'}"


def _as_match(finding: Finding) -> dict[str, Any]:
    """A url finding in the rule-match shape, so that renderers show it like any other cause."""
    return {
        "id": finding.id,
        "layer": "url",
        "blame": "user",
        "title": finding.message,
        "cause": "",
        "fix": [finding.fix],
        "docs": [],
        "excerpt": "",
    }
