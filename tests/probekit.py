"""Small helpers shared by the probe tests."""

from __future__ import annotations

from neondoctor.probes.base import ProbeResult


def rule_ids(result: ProbeResult) -> list[str]:
    """The ids of the rules that matched a probe's failure, best first."""
    return [m["id"] for m in result.matches]
