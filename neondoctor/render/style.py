"""Terminal styling shared by the text renderers; colour is decided by the caller."""

from __future__ import annotations

import click

STATUS_MARKS = {"pass": "[✓]", "warn": "[!]", "fail": "[✗]", "skip": "[-]"}
SEVERITY_MARKS = {"error": "✗", "warning": "!", "info": "•"}
COLOURS = {"pass": "green", "warn": "yellow", "fail": "red", "skip": "bright_black",
           "error": "red", "warning": "yellow", "info": "cyan"}


class Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, key: str | None = None, *, bold: bool = False, dim: bool = False) -> str:
        if not self.color:
            return text
        return click.style(text, fg=COLOURS.get(key or ""), bold=bold, dim=dim)
