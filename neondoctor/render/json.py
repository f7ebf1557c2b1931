"""JSON renderers: the documented contracts, nothing terminal-specific."""

from __future__ import annotations

import json
from typing import Any


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def render_url(report: dict[str, Any]) -> str:
    return dumps(report)


def render_check(report: dict[str, Any]) -> str:
    return dumps(report)


def render_explain(result: dict[str, Any]) -> str:
    """The `explain --json` contract: {"answer": {...} or null, "matches": [...best first...], "sqlstates": [...]}.

    Each match carries "confidence" (high, medium, low), "agree" (other rules of its layer that matched the
    text) and "matched" (the text its regex matched). "answer" sums up the top match: "confidence", "guess"
    (a low-confidence answer), "guess_from", "runner_up" ({id, layer, title, confidence} or null) and
    "next_step" (the check command, for a guess). With no rule match, a SQLSTATE whose class points at one
    layer gives a guess match of origin "sqlstate-class"."""
    return dumps(result)
