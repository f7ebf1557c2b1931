"""Plain-text renderers: data in, string out. Nothing here reads the terminal."""

from __future__ import annotations

from typing import Any

from neondoctor.render.style import SEVERITY_MARKS, Style

SOURCE_NAMES = {
    "argument": "the command line",
    "libpq-env": "libpq's environment variables (PGHOST, PGUSER, …)",
}
COMPONENT_MEANINGS = {
    "scheme": "the URL scheme; libpq accepts postgresql:// and postgres://",
    "driver": "SQLAlchemy's driver name; only create_engine() understands it",
    "user": "the role you log in as",
    "password": "sent during authentication; never shown here",
    "host": "where the server is: DNS name, IP address, or a Unix socket directory",
    "port": "the TCP port the server listens on",
    "database": "the database to open",
}


def describe_source(source: str) -> str:
    kind, _, rest = source.partition(":")
    if kind == "env":
        return f"${rest}"
    if kind == "env-file":
        return f"{rest} (--env-file)"
    if kind == "dotenv":
        return f"{rest} (.env in the working directory)"
    return SOURCE_NAMES.get(source, source)


def render_url(report: dict[str, Any], *, color: bool = False, meanings: dict[str, str] | None = None) -> str:
    """The `url` command: every component with its meaning, the Neon host's parts, then the findings."""
    style = Style(color)
    lines = [style(f"Connection string from {describe_source(report['source'])}", bold=True)]
    lines.append(f"  libpq-ready: {report['dsn']}")
    verdict = f"rejects it: {report['libpq_error']}" if report.get("libpq_error") else "accepts it"
    lines.append(f"  libpq {report.get('libpq_version', '')} on the string as given: {verdict}")
    lines.append("")
    rows: list[tuple[str, str, str]] = []
    if report.get("scheme"):
        rows.append(("scheme", f"{report['scheme']}://", COMPONENT_MEANINGS["scheme"]))
    if report.get("driver"):
        rows.append(("driver", report["driver"], COMPONENT_MEANINGS["driver"]))
    rows.append(("user", report.get("user") or "(not set)", COMPONENT_MEANINGS["user"]
                 + ("" if report.get("user") else "; libpq uses your OS user name")))
    password = report["password"]
    if report.get("password_source") == "PGPASSWORD":
        password += " (from PGPASSWORD)"
    rows.append(("password", password, COMPONENT_MEANINGS["password"]))
    for index, entry in enumerate(report.get("hosts") or [{"host": report.get("host"), "port": report.get("port")}]):
        label = "host" if index == 0 else f"host {index + 1}"
        rows.append((label, entry["host"] or "(not set)", COMPONENT_MEANINGS["host"]
                     + ("" if entry["host"] else "; libpq falls back to the local Unix socket")))
        rows.append(("port", str(entry["port"]), COMPONENT_MEANINGS["port"]))
    rows.append(("database", report.get("database") or "(not set)", COMPONENT_MEANINGS["database"]
                 + ("" if report.get("database") else "; libpq uses the user name")))
    for key, value in (report.get("params") or {}).items():
        meaning = (meanings or {}).get(key, "a libpq connection parameter")
        rows.append((key, value, meaning))
    width = max(len(r[0]) for r in rows)
    value_width = min(max(len(r[1]) for r in rows), 48)
    for name, value, meaning in rows:
        lines.append(f"  {name:<{width}}  {value:<{value_width}}  {style(meaning, dim=True)}")
    neon = report.get("neon")
    if neon:
        cell = f", cell {neon['cell']}" if neon.get("cell") else ""
        kind = "pooled (PgBouncer, transaction mode)" if neon["pooled"] else "direct (not pooled)"
        lines.append("")
        lines.append(
            f"  Neon endpoint {neon['endpoint_id']} in region {neon['region']} on {neon['cloud']}{cell}, {kind}"
        )
    findings = report.get("findings") or []
    lines.append("")
    if findings:
        lines.append(style("Findings", bold=True))
        for finding in findings:
            mark = style(SEVERITY_MARKS[finding["severity"]], finding["severity"])
            lines.append(f"  {mark} {finding['message']} [{finding['id']}]")
            lines.append(f"    fix: {finding['fix']}")
        lines.append("")
    counts = {s: sum(1 for f in findings if f["severity"] == s) for s in ("error", "warning", "info")}
    if counts["error"]:
        verdict = style(f"✗ {_plural(counts['error'], 'error')}", "error") + (
            f", {_plural(counts['warning'], 'warning')}" if counts["warning"] else ""
        ) + ". Fix the errors first: " + next(f["fix"] for f in findings if f["severity"] == "error")
    elif counts["warning"]:
        verdict = style(f"! No errors, {_plural(counts['warning'], 'warning')}.", "warning") + (
            " Next: " + next(f["fix"] for f in findings if f["severity"] == "warning")
        )
    else:
        verdict = style("✓ The string looks right.", "info") + ' Next: neondoctor check "$DATABASE_URL"'
    lines.append(verdict)
    return "\n".join(lines)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")
