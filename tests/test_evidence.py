"""Fault scenarios: the failing probe, the rule and a next step that follows from what the check measured.

Each case is a real server (tests/pgcluster.py) or a loopback peer (tests/peers.py); each asserts what
a user reads: the failing probe, the rule (if any), the next step's key words and the exit code.
"""

from __future__ import annotations

from typing import Any

import pytest
from pgcluster import PgCluster
from test_check import check

from neondoctor.checklist import choose_next_step, fitting_fixes, make_verdict
from neondoctor.probes.base import CheckContext, CheckOptions, ProbeResult, Status
from neondoctor.rules import parse_rule
from neondoctor.target import parse_target

NEON_CONSOLE = "Neon console"


def verdict_of(run: Any) -> dict[str, Any]:
    return run.report["verdict"]


def assert_verdict(run: Any, probe: str, rule: str | None, *words: str, absent: tuple[str, ...] = ()) -> str:
    """The run failed at ``probe`` (exit 1) with ``rule`` on top, and its next step holds every word."""
    assert run.code == 1, run.stdout
    verdict = verdict_of(run)
    assert verdict["failed_probe"] == probe, verdict
    if rule is not None:
        assert verdict["rule"] == rule, verdict
    step = verdict["next_step"]
    for word in words:
        assert word.lower() in step.lower(), f"{word!r} not in next step: {step}"
    for word in absent:
        assert word.lower() not in step.lower(), f"{word!r} in next step: {step}"
    return step


# --------------------------------------------------------------------------- the choice itself


MATCH = {
    "id": "auth-password-failed",
    "layer": "auth",
    "title": "t",
    "cause": "c",
    "fix": ["Copy it from the Neon console", "Check VALID UNTIL", "Percent-encode"],
    "fix_when": ["neon", "not-neon", None],
    "docs": [],
    "excerpt": "",
}


def test_a_fix_tagged_for_neon_is_dropped_for_other_hosts_and_the_reverse() -> None:
    assert fitting_fixes(MATCH, neon=False)["fix"] == ["Check VALID UNTIL", "Percent-encode"]
    assert fitting_fixes(MATCH, neon=True)["fix"] == ["Copy it from the Neon console", "Percent-encode"]
    untagged = {**MATCH, "fix_when": None}
    assert fitting_fixes(untagged, neon=False) is untagged


def test_the_probe_evidence_beats_the_rule_and_the_rule_beats_a_generic_probe_step() -> None:
    exact = ProbeResult("tls", Status.FAIL, "expired", matches=[MATCH], next_step="Renew it", exact_next_step=True)
    assert choose_next_step(exact) == ("Renew it", "probe")
    generic = ProbeResult("auth", Status.FAIL, "failed", matches=[MATCH], next_step="Try psql")
    assert choose_next_step(generic) == ("Copy it from the Neon console", "rule:auth-password-failed")
    bare = ProbeResult("auth", Status.FAIL, "failed", next_step="Try psql")
    assert choose_next_step(bare) == ("Try psql", "probe")


def test_the_verdict_says_where_its_next_step_comes_from() -> None:
    ctx = CheckContext(parse_target("postgresql://u@db.example.invalid/app"), CheckOptions())
    failed = ProbeResult("auth", Status.FAIL, "x", matches=[fitting_fixes(MATCH, neon=False)])
    verdict = make_verdict([failed], ctx, ctx.options)
    assert verdict["next_step"] == "Check VALID UNTIL" and verdict["next_step_from"] == "rule:auth-password-failed"


def test_lint_rejects_a_fix_step_with_an_unknown_host_tag() -> None:
    raw = {
        "id": "some-rule",
        "layer": "auth",
        "blame": "user",
        "title": "t",
        "match": {"any": ["password authentication failed"]},
        "cause": "c",
        "fix": [{"when": "heroku", "step": "Do this"}],
        "examples": [{"text": 'FATAL:  password authentication failed for user "a"', "source": "psql 15.18, lab"}],
    }
    rule, problems = parse_rule(raw, "x.yaml", "user")
    assert rule is None and any("tagged fix step" in str(p) for p in problems), problems
    raw["fix"] = [{"when": "not-neon", "step": "Do  this"}, "Then that"]
    rule, problems = parse_rule(raw, "x.yaml", "user")
    assert rule is not None and rule.fix == ["Do this", "Then that"] and rule.fix_when == ["not-neon", None]


# --------------------------------------------------------------------------- auth


@pytest.fixture(scope="module")
def expired_role_pg(pg_factory: Any) -> PgCluster:
    return pg_factory(ssl="ca", setup_sql=("CREATE ROLE carol LOGIN PASSWORD 'carolpw1' VALID UNTIL '2001-01-01'",))


def test_a_password_past_valid_until_on_a_self_hosted_server_gets_no_neon_advice(expired_role_pg: PgCluster) -> None:
    pg = expired_role_pg
    run = check(pg.url("carol", "carolpw1", sslmode="require"), "--json", secret="carolpw1")
    step = assert_verdict(run, "auth", "auth-password-failed", "VALID UNTIL", absent=(NEON_CONSOLE,))
    assert "ALTER ROLE" in step
    assert not any(fix.startswith("Copy the connection string") for fix in run.probe("auth")["matches"][0]["fix"])
    assert 'User "carol" has an expired password' in pg.log_text()
