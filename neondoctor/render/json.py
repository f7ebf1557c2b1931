"""JSON renderers: the documented contracts, nothing terminal-specific.

Every document carries ``"schema": "neondoctor.<command>/1"`` first; its JSON Schema is
``neondoctor/schemas/<command>.json``. Fields may be added within a version, never renamed.
"""

from __future__ import annotations

import json
from typing import Any

SCHEMA_VERSION = 1


def schema_name(command: str) -> str:
    """``check`` → ``neondoctor.check/1``; ``rules lint`` → ``neondoctor.rules.lint/1``."""
    return f"neondoctor.{command.replace(' ', '.')}/{SCHEMA_VERSION}"


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def document(command: str, data: dict[str, Any]) -> str:
    return dumps({"schema": schema_name(command), **data})


def render_error(command: str, code: int, message: str) -> str:
    """What a command prints on stdout with --json when it cannot do its job."""
    return dumps({"schema": schema_name(command), "error": {"code": code, "message": message}})


def render_url(report: dict[str, Any]) -> str:
    return document("url", report)


def render_check(report: dict[str, Any]) -> str:
    return document("check", report)


def render_explain(result: dict[str, Any]) -> str:
    """The `explain --json` contract: {"schema", "answer": {...} or null, "matches": [...best first...],
    "sqlstates": [...]} (neondoctor/schemas/explain.json).

    Each match carries "confidence" (high, medium, low), "agree" (other rules of its layer that matched the
    text) and "matched" (the text its regex matched). "answer" sums up the top match: "confidence", "guess"
    (a low-confidence answer), "guess_from", "runner_up" ({id, layer, title, confidence} or null) and
    "next_step" (the check command, for a guess). With no rule match, a SQLSTATE whose class points at one
    layer gives a guess match of origin "sqlstate-class"."""
    return document("explain", result)
