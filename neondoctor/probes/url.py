"""url: the parser's findings decide whether the checklist can start."""

from __future__ import annotations

from typing import Any

from neondoctor.probes.base import CheckContext, ProbeResult, Status
from neondoctor.target import Finding, Severity

name = "url"


def run(ctx: CheckContext) -> ProbeResult:
    target = ctx.target
    errors = [f for f in target.findings if f.severity is Severity.ERROR]
    warnings = [f for f in target.findings if f.severity is Severity.WARNING]
    details: dict[str, Any] = {
        "source": target.source,
        "dsn": target.dsn(),
        "form": target.form,
        "findings": [f"{f.id} ({f.severity})" for f in target.findings],
    }
    if errors:
        return ProbeResult(
            name,
            Status.FAIL,
            errors[0].message,
            details=details,
            matches=[_as_match(f) for f in errors],
            next_step=errors[0].fix,
            exact_next_step=True,
        )
    where = _where(ctx)
    if warnings:
        return ProbeResult(
            name,
            Status.WARN,
            f"{where}; {warnings[0].message}",
            details=details,
            matches=[_as_match(f) for f in warnings],
            next_step=warnings[0].fix,
        )
    return ProbeResult(name, Status.PASS, f"{where}; libpq accepts it", details=details)


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
