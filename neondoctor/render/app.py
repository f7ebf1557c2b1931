"""Plain-text renderers for the app-facing commands: url --for, pool and drill."""

from __future__ import annotations

from typing import Any

from neondoctor.render.style import SEVERITY_MARKS, Style


def _findings(lines: list[str], findings: list[dict[str, Any]], style: Style) -> None:
    for finding in findings:
        lines.append(f"  {style(SEVERITY_MARKS[finding['severity']], finding['severity'])} {finding['message']} "
                     f"[{finding['id']}]")
        lines.append(f"    fix: {finding['fix']}")


def render_client(client: dict[str, Any], *, color: bool = False, password_shown: bool = False,
                  has_password: bool = True) -> str:
    style = Style(color)
    lines = [style(f"For {client['label']} (--for {client['client']})", bold=True)]
    if client["url"]:
        lines.append(f"  {client['url']}")
    if client["code"] and (client["kind"] == "code" or not client["url"]):
        lines.append("")
        lines += [f"    {line}" if line else "" for line in client["code"].splitlines()]
    elif client["code"]:
        lines.append(style("  in code:", dim=True))
        lines += [f"    {line}" if line else "" for line in client["code"].splitlines()]
    notes = client["notes"]
    if notes:
        lines.append("")
        lines.append(style(f"What {client['label']} makes of it", bold=True))
        _findings(lines, notes, style)
    if has_password and not password_shown:
        lines.append("")
        lines.append(style("The password is shown as ****; add --show-password to print it.", dim=True))
    return "\n".join(lines)


def render_hygiene(findings: list[dict[str, Any]], *, color: bool = False) -> str:
    style = Style(color)
    lines = [style(".env hygiene", bold=True)]
    _findings(lines, findings, style)
    return "\n".join(lines)


def render_pool(report: dict[str, Any], *, color: bool = False) -> str:
    style = Style(color)
    mark = {"fits": ("✓", "pass"), "tight": ("!", "warn"), "will-fail": ("✗", "fail")}[report["status"]]
    slots = report["slots"]
    lines = [style("Pool sizing", bold=True)]
    for engine in report["engines"]:
        where = f"line {engine['line']}: " if engine.get("line") else ""
        lines.append(f"  {where}pool_size={engine['pool_size']} max_overflow={engine['max_overflow']} "
                     f"pool_recycle={engine['pool_recycle']} pool_pre_ping={engine['pool_pre_ping']}"
                     + (f" poolclass={engine['poolclass']}" if engine.get("poolclass") else ""))
    lines.append(f"  workers (processes × threads with a pool each): {report['workers']}")
    server = "the live server" if slots["source"] == "live" else "--max-connections (offline)"
    lines.append(f"  slots left for this role on {server}: {slots['left']} — {slots['limited_by']}")
    if slots["source"] == "live":
        lines.append(f"  server: max_connections={slots['max_connections']}, reserved "
                     f"{slots['superuser_reserved_connections']}+{slots['reserved_connections']}, "
                     f"rolconnlimit={slots['rolconnlimit']}, datconnlimit={slots['datconnlimit']}, "
                     f"{slots['in_use']} in use ({slots['counts']})")
    for note in report["notes"]:
        lines.append(style(f"  note: {note}", dim=True))
    lines.append("")
    lines.append(f"{style(mark[0], mark[1])} {report['status']}: {report['summary']}")
    for advice in report["advice"]:
        lines.append(f"  → {advice}")
    return "\n".join(lines)


def render_drill(report: dict[str, Any], *, color: bool = False) -> str:
    style = Style(color)
    mark = ("✓", "pass") if report["status"] == "persisted" else ("✗", "fail")
    lines = [style("Persistence drill", bold=True)]
    if report["table"]:
        where = f"{report['db_schema']}.{report['table']}" if report.get("db_schema") else report["table"]
        lines.append(f"  scratch table: {where} ({'removed' if report['cleaned'] else 'NOT removed'})")
    for step in report["steps"]:
        state = "ok" if step["ok"] else f"failed: {step['error']}"
        lines.append(f"  {step['name']:<5}  {step['ms']:>8.1f} ms  {state}")
    lines.append("")
    lines.append(f"{style(mark[0], mark[1])} {report['status']}: {report['summary']}")
    if report.get("next_step"):
        lines.append(f"  Next: {report['next_step']}")
    return "\n".join(lines)
