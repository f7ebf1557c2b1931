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
