"""Every built-in rule in rules/: valid format, each example matched and ranked first, no not_example matched.

One test id per example (``auth-password-failed[0]``), collected from the real folder, so the suite
grows with the knowledge base.
"""

from __future__ import annotations

import pytest

from neondoctor.explain import explain_text
from neondoctor.rules import BUILTIN, lint, load_rules

RULESET = load_rules(env={})
EXAMPLES = [
    pytest.param(rule.id, example["text"], id=f"{rule.id}[{index}]")
    for rule in RULESET
    for index, example in enumerate(rule.examples)
]
NOT_EXAMPLES = [
    pytest.param(rule.id, example["text"], id=f"{rule.id}[{index}]")
    for rule in RULESET
    for index, example in enumerate(rule.not_examples)
]


def test_rules_lint_is_clean() -> None:
    assert [str(problem) for problem in lint(RULESET)] == []
    assert all(rule.origin == BUILTIN for rule in RULESET)


@pytest.mark.parametrize(("rule_id", "text"), EXAMPLES)
def test_example_matches_its_rule_first(rule_id: str, text: str) -> None:
    ranked = [match["id"] for match in explain_text(text, RULESET).matches]
    assert rule_id in ranked, f"no match; matched instead: {ranked}"
    assert ranked[0] == rule_id, f"ranked {ranked.index(rule_id) + 1}th after {ranked[: ranked.index(rule_id)]}"


@pytest.mark.parametrize(("rule_id", "text"), NOT_EXAMPLES)
def test_not_example_does_not_match_its_rule(rule_id: str, text: str) -> None:
    ranked = [match["id"] for match in explain_text(text, RULESET).matches]
    assert rule_id not in ranked
