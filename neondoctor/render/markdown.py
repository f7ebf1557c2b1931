"""The `report` document as GitHub-flavoured Markdown, ready to paste into a ticket or an issue.

Text from the outside world (error messages, summaries, placeholders such as ``<host-1>``) is
escaped for where it lands: backslash escapes in Markdown text and table cells, HTML entities in
``<summary>``, and code fences longer than any backtick run inside them.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from neondoctor.render.text import describe_source

STATUS_WORDS = {"pass": "✅ pass", "warn": "⚠️ warn", "fail": "❌ fail", "skip": "⏭️ skip"}
VERDICT_MARKS = {"pass": "✅", "warn": "⚠️", "fail": "❌"}
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]<>|#!~&]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def inline(text: Any) -> str:
    """Text safe in a Markdown paragraph or table cell: one line, every active character escaped.

    An underscore inside a word cannot start emphasis, so ``pg_ctl`` stays readable as is.
    """
    flat = " ".join(str(text).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)


def authored(text: Any) -> str:
    """A rule's own words: its `code spans` stay code spans, everything else is escaped like :func:`inline`."""
    flat = " ".join(str(text).split())
    pieces = re.split(r"((?<!`)`[^`]+`(?!`))", flat)
    return "".join(piece if index % 2 else _MARKDOWN_SPECIAL.sub(r"\\\1", piece) for index, piece in enumerate(pieces))


def fence(text: str, info: str = "text") -> str:
    """A fenced code block whose fence is longer than any backtick run in the text."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    marks = "`" * max(3, longest + 1)
    return f"{marks}{info}\n{text.rstrip()}\n{marks}"


def details_block(summary: str, body: str) -> str:
    """A collapsible block; the blank lines let GitHub render the Markdown inside it."""
    flat = " ".join(summary.split())
    return f"<details>\n<summary>{html.escape(flat, quote=False)}</summary>\n\n{body.strip()}\n\n</details>"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_report(report: dict[str, Any]) -> str:
    sections = [
        _title(report),
        _header(report["header"], report.get("redacted") or {}),
        _target(report["target"]),
        _summary(report["verdict"]),
        _probes(report["probes"]),
        _probe_details(report["probes"]),
        _rules(report.get("rules") or []),
        _errors(report.get("errors") or []),
        _environment(report.get("environment") or {}, report["target"]),
        "<sub>Written by `neondoctor report`. Passwords are never included"
        + _redaction_note(report.get("redacted") or {})
        + ".</sub>",
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _title(report: dict[str, Any]) -> str:
    verdict = report["verdict"]
    mark = VERDICT_MARKS[verdict["status"]]
    return f"# neondoctor report: {verdict['status']}\n\n{mark} {inline(verdict['summary'])}"


def _header(header: dict[str, Any], redacted: dict[str, Any]) -> str:
    labels = [
        ("neondoctor", "neondoctor"),
        ("generated_at", "generated (UTC)"),
        ("os", "OS"),
        ("arch", "architecture"),
        ("python", "Python"),
        ("psycopg", "psycopg"),
        ("libpq", "libpq"),
        ("dnspython", "dnspython"),
        ("openssl", "OpenSSL (Python ssl)"),
    ]
    rows = [[label, inline(header.get(key) if header.get(key) is not None else "not available")]
            for key, label in labels]
    return "## Versions\n\n" + table(["component", "version"], rows)


def _redaction_note(redacted: dict[str, Any]) -> str:
    hidden = [word for word in ("host", "user") if redacted.get(word)]
    if not hidden:
        return ""
    return f"; the {' and '.join(hidden)} {'are' if len(hidden) > 1 else 'is'} replaced by placeholders"


def _target(target: dict[str, Any]) -> str:
    lines = ["## Target", ""]
    lines.append(f"- connection string (password hidden): `{_code_span_text(target['dsn'])}`")
    lines.append(f"- from: {inline(describe_source(target['source']))}")
    lines.append(f"- form: {inline(target['form'])}" + (f", driver {inline(target['driver'])}" if target.get("driver")
                                                         else ""))
    password = target["password"] + (f" (from {target['password_source']})" if target.get("password_source") else "")
    lines.append(f"- password: {inline(password)}")
    if target.get("libpq_error"):
        lines.append(f"- libpq rejects the string: {inline(target['libpq_error'])}")
    neon = target.get("neon")
    if neon:
        kind = "pooled" if neon.get("pooled") else "direct"
        lines.append(f"- Neon endpoint {inline(neon['endpoint_id'])}, region {inline(neon['region'])} "
                     f"on {inline(neon['cloud'])}, {kind}")
    for finding in target.get("findings") or []:
        lines.append(f"- {finding['severity']}: {inline(finding['message'])} (`{finding['id']}`); "
                     f"fix: {inline(finding['fix'])}")
    return "\n".join(lines)


def _code_span_text(text: str) -> str:
    return text.replace("`", "'")


def _summary(verdict: dict[str, Any]) -> str:
    lines = ["## Summary", "", f"**{VERDICT_MARKS[verdict['status']]} {inline(verdict['summary'])}**", ""]
    lines.append(f"**Next step:** {inline(verdict['next_step'])}")
    if verdict.get("rule"):
        lines.append("")
        lines.append(f"Rule: `{verdict['rule']}`; layer: {inline(verdict.get('layer') or '-')}")
    return "\n".join(lines)


def _probes(probes: list[dict[str, Any]]) -> str:
    rows = []
    for probe in probes:
        time = "" if probe["status"] == "skip" else f"{probe['duration_ms']:.0f} ms"
        rows.append([inline(probe["name"]), STATUS_WORDS.get(probe["status"], probe["status"]), time,
                     inline(probe["summary"])])
    return "## Probes\n\n" + table(["probe", "status", "time", "summary"], rows)


def _probe_details(probes: list[dict[str, Any]]) -> str:
    blocks = []
    for probe in probes:
        if probe["status"] == "skip" and not probe.get("details"):
            continue
        body = []
        if probe.get("next_step"):
            body.append(f"**Next step:** {inline(probe['next_step'])}")
        if probe.get("matches"):
            body.append("Matched rules: " + ", ".join(f"`{m['id']}`" for m in probe["matches"]))
        body.append(fence(json.dumps(probe.get("details") or {}, indent=2, ensure_ascii=False, default=str), "json"))
        blocks.append(details_block(f"{probe['name']}: {probe['status']}, {probe['summary']}", "\n\n".join(body)))
    return "## Probe details\n\n" + "\n\n".join(blocks) if blocks else ""


def _rules(rules: list[dict[str, Any]]) -> str:
    if not rules:
        return "## Matched rules\n\nNo rule matched."
    parts = ["## Matched rules"]
    for rule in rules:
        lines = [f"### `{rule['id']}`: {authored(rule.get('title') or '')}", ""]
        lines.append(f"Seen by the {inline(rule['probe'])} probe; layer {inline(rule.get('layer') or '-')}.")
        if rule.get("cause"):
            lines += ["", f"**Cause:** {authored(rule['cause'])}"]
        if rule.get("fix"):
            lines += ["", "**Fix:**", ""]
            lines += [f"{number}. {authored(step)}" for number, step in enumerate(rule["fix"], 1)]
        if rule.get("docs"):
            lines += ["", "**Docs:** " + ", ".join(f"<{link}>" if _plain_url(link) else inline(link)
                                                   for link in rule["docs"])]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _plain_url(link: str) -> bool:
    return bool(re.fullmatch(r"https?://[^\s<>`]+", link))


def _errors(errors: list[dict[str, str]]) -> str:
    if not errors:
        return "## Error texts\n\nNo error text was recorded."
    parts = ["## Error texts", "As received (passwords hidden):"]
    for entry in errors:
        parts.append(f"**{inline(entry['probe'])}**\n\n{fence(entry['text'])}")
    return "\n\n".join(parts)


def _environment(environment: dict[str, Any], target: dict[str, Any]) -> str:
    def names(values: list[str]) -> str:
        return ", ".join(f"`{value}`" for value in values) if values else "none"

    lines = ["## Environment", ""]
    lines.append(f"- connection string from: {inline(describe_source(environment.get('source', target['source'])))}")
    lines.append(f"- PG\\* variables set (names only): {names(environment.get('pg_variables') or [])}")
    lines.append(f"- proxy variables set (names only): {names(environment.get('proxy_variables') or [])}")
    lines.append(f"- DATABASE_URL set: {'yes' if environment.get('database_url_set') else 'no'}")
    cert = environment.get("sslrootcert") or {}
    if cert.get("setting") == "system":
        lines.append("- sslrootcert: system (the OS certificate store)")
    elif cert:
        state = "exists" if cert.get("exists") else "does not exist"
        where = "sslrootcert" if cert.get("setting") == "sslrootcert" else "default sslrootcert"
        note = f"; {inline(cert['note'])}" if cert.get("note") else ""
        lines.append(f"- {where} `{_code_span_text(str(cert.get('path')))}`: {state}{note}")
    return "\n".join(lines)
