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
    env_names = report.get("from_env") or {}
    for key, value in (report.get("params") or {}).items():
        meaning = (meanings or {}).get(key, "a libpq connection parameter")
        origin = env_names.get(key)
        rows.append((key, f"{value} (from {origin})" if origin else value, meaning))
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


GENERIC_PRIORITY = 30
"""Rules ranked below this are catch-alls: not worth an "also possible" line under a specific cause."""


def render_check(report: dict[str, Any], *, color: bool = False, verbose: bool = False) -> str:
    """The `check` command, flutter-doctor style: one line per probe, the failure's cause and fix, a verdict."""
    width = probe_width(p["name"] for p in report["probes"])
    lines = [render_check_header(report["target"], color=color), ""]
    for probe in report["probes"]:
        lines.append(render_probe(probe, width, color=color, verbose=verbose))
    lines.append("")
    if report.get("interrupted"):
        lines.append(render_interrupted(report.get("interrupted_during") or "the checklist", color=color))
    else:
        lines.append(render_verdict(report["verdict"], color=color))
    return "\n".join(lines)


def probe_width(names: Any) -> int:
    return max((len(name) for name in names), default=0)


def render_check_header(target: dict[str, Any], *, color: bool = False) -> str:
    style = Style(color)
    return style(f"Checking {target['dsn']}", bold=True) + style(
        f"  (from {describe_source(target['source'])})", dim=True
    )


def render_probe(probe: dict[str, Any], width: int, *, color: bool = False, verbose: bool = False) -> str:
    """One probe's line, with its notes, its cause and fix when it failed or warned, and -v details."""
    from neondoctor.render.style import STATUS_MARKS

    style = Style(color)
    status = probe["status"]
    mark = style(STATUS_MARKS[status], status)
    timing = "" if status == "skip" else style(f"  [{probe['duration_ms']:.0f} ms]", dim=True)
    summary = probe["summary"] if status != "skip" else style(probe["summary"], dim=True)
    lines = [f"{mark} {probe['name']:<{width}}  {summary}{timing}"]
    indent = " " * (width + 6)
    for note in probe["details"].get("notes") or []:
        lines.append(f"{indent}{style('note:', 'info')} {note}")
    if status in ("fail", "warn") and probe["matches"]:
        top = probe["matches"][0]
        if status == "fail" and probe.get("next_step") and probe["next_step"] not in (top.get("fix") or []):
            lines.append(f"{indent}{style('next:', bold=True)} {probe['next_step']}")
        match_lines = _match_lines(top, indent, style, full=status == "fail")
        if top["title"] and top["title"] in probe["summary"]:
            match_lines[0] = f"{indent}{style('[' + top['id'] + ']', dim=True)}"
        lines.extend(match_lines)
        others = [m["id"] for m in probe["matches"][1:] if m.get("priority", 50) >= GENERIC_PRIORITY]
        if others and status == "fail":
            lines.append(f"{indent}{style('also possible: ' + ', '.join(others), dim=True)}")
    elif status in ("fail", "warn") and probe.get("next_step"):
        lines.append(f"{indent}next: {probe['next_step']}")
    if verbose and probe["details"]:
        for key, value in probe["details"].items():
            if key != "notes":
                lines.append(f"{indent}{style(key + ':', dim=True)} {_detail(value)}")
    return "\n".join(lines)


def render_verdict(verdict: dict[str, Any], *, color: bool = False) -> str:
    style = Style(color)
    mark = {"pass": "✓", "warn": "!", "fail": "✗"}.get(verdict["status"], "✗")
    headline = style(f"{mark} {verdict['summary']}", verdict["status"])
    return f"{headline} Next: {verdict['next_step']}"


def render_interrupted(probe: str, *, color: bool = False) -> str:
    return Style(color)(f"✗ interrupted during {probe}", "fail") + " (Ctrl-C); the lines above are what finished"


def render_waiting(probe: str, seconds: float, frame: int) -> str:
    """The live line a terminal shows while a probe runs (the caller redraws it with \\r)."""
    spinner = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
    return f"{spinner[frame % len(spinner)]} waiting for {probe}… {seconds:.1f} s"


def _match_lines(match: dict[str, Any], indent: str, style: Style, *, full: bool) -> list[str]:
    lines = [f"{indent}{style(match['title'], bold=True)}  {style('[' + match['id'] + ']', dim=True)}"]
    if not full:
        if match.get("fix"):
            lines.append(f"{indent}next: {match['fix'][0]}")
        return lines
    if match.get("cause"):
        lines.append(f"{indent}cause: {match['cause']}")
    fixes = match.get("fix") or []
    if len(fixes) == 1:
        lines.append(f"{indent}fix: {fixes[0]}")
    elif fixes:
        lines.append(f"{indent}fix:")
        lines.extend(f"{indent}  {number}. {step}" for number, step in enumerate(fixes, 1))
    for link in (match.get("docs") or [])[:1]:
        lines.append(f"{indent}docs: {link}")
    return lines


def _detail(value: Any) -> str:
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, ensure_ascii=False, default=str)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


# --------------------------------------------------------------------------- explain and rules

EXPLAIN_WIDTH = 88
EXCERPT_LINES = 8
EXCERPT_CHARS = 300
BLAME_WORDS = {
    "user": "yours (connection string or configuration)",
    "network": "the network (firewall, DNS, routing)",
    "provider": "the provider (Neon: quota, limits, incident)",
    "server": "the server (its configuration or state)",
    "client": "the client (driver or library)",
}
LIVE_LAYERS = ("dns", "tcp", "tls", "auth", "database", "slots", "tables")
CHECK_HINT = 'neondoctor check "$DATABASE_URL"'


def render_explain(result: dict[str, Any], *, color: bool = False, has_url: bool = False) -> str:
    """The `explain` command: every matched rule, most likely first, or what to do when none matched."""
    style = Style(color)
    matches = result.get("matches") or []
    if not matches:
        return _render_explain_none(result, style, has_url)
    lines: list[str] = []
    if len(matches) > 1:
        lines += [style(f"{len(matches)} rules match; the most likely comes first.", dim=True), ""]
    for number, match in enumerate(matches, 1):
        if number > 1:
            lines.append("")
        lines.extend(_explain_match(match, number if len(matches) > 1 else None, style))
    return "\n".join(lines)


def _explain_match(match: dict[str, Any], number: int | None, style: Style) -> list[str]:
    head = f"{number}. " if number else ""
    lines = [f"{head}{style(match['title'], bold=True)}  {style('[' + match['id'] + ']', dim=True)}"]
    indent = " " * len(head) if head else ""
    facts = [f"layer {match['layer']}"]
    if match.get("blame"):
        facts.append(f"whose move: {BLAME_WORDS.get(match['blame'], match['blame'])}")
    if match.get("line"):
        facts.append(f"input line {match['line']}")
    lines.append(indent + style(" · ".join(facts), dim=True))
    excerpt = (match.get("excerpt") or "").splitlines()
    for row in excerpt[:EXCERPT_LINES]:
        row = row.replace("\t", "    ")
        if len(row) > EXCERPT_CHARS:
            row = row[: EXCERPT_CHARS - 1] + "…"
        lines.append(f"{indent}  {style('│', dim=True)} {style(row, 'warning')}")
    if len(excerpt) > EXCERPT_LINES:
        lines.append(f"{indent}  {style('│', dim=True)} {style('…', dim=True)}")
    if match.get("hint"):
        lines.extend(_wrapped(style("Note:", bold=True) + " ", match["hint"], indent, len("Note: ")))
    lines.extend(_wrapped(style("Cause:", bold=True) + " ", match["cause"], indent, len("Cause: ")))
    fixes = match.get("fix") or []
    if fixes:
        lines.append(indent + style("Fix:", bold=True))
        for step_number, (step, when) in enumerate(zip(fixes, match.get("fix_when") or [None] * len(fixes),
                                                       strict=False), 1):
            step = {"neon": "On Neon: ", "not-neon": "Not on Neon: "}.get(when or "", "") + step
            lines.extend(_wrapped(f"  {step_number}. ", step, indent, len(f"  {step_number}. ")))
    for link in match.get("docs") or []:
        lines.append(f"{indent}{style('Docs:', bold=True)} {link}")
    if match.get("layer") in LIVE_LAYERS:
        lines.append(f"{indent}{style('Check it live:', 'info')} {CHECK_HINT}")
    return lines


def _wrapped(label: str, text: str, indent: str, hang: int) -> list[str]:
    """``text`` wrapped to EXPLAIN_WIDTH under a hanging ``label`` (whose visible width is ``hang``);
    a `code span` is never broken, so commands stay copy-pasteable."""
    import re
    import textwrap

    lead = indent + " " * hang
    glued = re.sub(r"`[^`]*`", lambda code: code.group(0).replace(" ", "\0"), text)
    lines = textwrap.wrap(
        glued,
        width=EXPLAIN_WIDTH,
        initial_indent=lead,
        subsequent_indent=lead,
        break_long_words=False,
        break_on_hyphens=False,
    )
    lines = [line.replace("\0", " ") for line in lines] or [lead]
    lines[0] = indent + label + lines[0][len(lead) :]
    return lines


def _render_explain_none(result: dict[str, Any], style: Style, has_url: bool) -> str:
    lines = [style("No rule matches this text.", "warning", bold=True)]
    if has_url:
        lines.append("It contains a connection string; to check the string itself: neondoctor url '<string>'")
    for state in result.get("sqlstates") or []:
        meaning = state.get("meaning") or "a class this tool has no description for"
        lines.append(f"SQLSTATE {state['code']}: class {state['class']}, {meaning}.")
    lines.append(f"Run the connection checklist to find the step that fails: {CHECK_HINT}")
    lines.append("Paste the complete error message, including the lines around it, or the whole log with --file.")
    return "\n".join(lines)


def render_rules_list(rules: list[dict[str, Any]], *, color: bool = False) -> str:
    style = Style(color)
    if not rules:
        return "No rules."
    show_origin = any(rule["origin"] != "builtin" for rule in rules)
    headers = ["id", "layer", "blame", "title"] + (["origin"] if show_origin else [])
    rows = [
        [rule["id"], rule["layer"], rule["blame"], rule["title"]] + ([rule["origin"]] if show_origin else [])
        for rule in rules
    ]
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers) - 1)]
    out = [style("  ".join(h.ljust(w) for h, w in zip(headers, [*widths, 0], strict=True)).rstrip(), bold=True)]
    for row in rows:
        out.append("  ".join(str(cell).ljust(w) for cell, w in zip(row, [*widths, 0], strict=True)).rstrip())
    out.append(style(f"{len(rules)} rules", dim=True))
    return "\n".join(out)


def render_rule(rule: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(rule, sort_keys=False, allow_unicode=True, width=100).rstrip()


def render_lint(problems: list[str], rule_count: int, *, color: bool = False) -> str:
    style = Style(color)
    if not problems:
        return style(f"✓ {rule_count} rules, no problems.", "pass")
    lines = [*problems, style(f"✗ {_plural(len(problems), 'problem')} in {rule_count} rules.", "fail")]
    return "\n".join(lines)


def render_rules_test(rows: list[dict[str, Any]], failures: list[str], *, color: bool = False) -> str:
    """One row per rule: examples matched (and ranked first), missed, not_examples that matched (false hits)."""
    style = Style(color)
    width = max([len("rule"), *(len(row["id"]) for row in rows)])
    lines = [style(f"{'rule':<{width}}  examples matched  missed  false hits", bold=True)]
    for row in rows:
        bad = row["missed"] or row["false_hits"]
        cells = f"{row['id']:<{width}}  {row['matched']:>16}  {row['missed']:>6}  {row['false_hits']:>10}"
        lines.append(style(cells, "fail") if bad else cells)
    totals = {key: sum(row[key] for row in rows) for key in ("matched", "missed", "false_hits")}
    lines.append(
        style(
            f"{'total':<{width}}  {totals['matched']:>16}  {totals['missed']:>6}  {totals['false_hits']:>10}", bold=True
        )
    )
    if failures:
        lines += ["", *failures]
    return "\n".join(lines)
