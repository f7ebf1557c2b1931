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
    """The `explain --json` contract: {"matches": [...best first...], "sqlstates": [...]}."""
    return dumps(result)
