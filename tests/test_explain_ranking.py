"""`neondoctor explain --json` field by field on a few small team rules (no built-ins): which rule ranks
first and why, each match's confidence, captures, excerpt and line, the answer's runner-up and guess, and
the SQLSTATE guess when no rule matched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from neondoctor.cli import cli
from neondoctor.explain import tables

CHECK = 'neondoctor check "$DATABASE_URL"'


pytestmark = pytest.mark.usefixtures("only_rules_written_here")


def team_rule(rule_id: str, layer: str, priority: int, *patterns: str, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": rule_id,
        "layer": layer,
        "blame": "server",
        "title": f"Title of {rule_id}",
        "priority": priority,
        "match": {"any": list(patterns)},
        "cause": f"Cause of {rule_id}.",
        "fix": [f"Fix for {rule_id}."],
        "examples": [{"text": "whatever", "source": "test"}],
    }
    data.update(extra)
    return data


def write_rules(*rules: dict[str, Any]) -> str:
    Path("team").mkdir(exist_ok=True)
    Path("team/r.yaml").write_text(yaml.safe_dump({"rules": list(rules)}, sort_keys=False))
    return "team"


def explain(text: str, *rules: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    args = ["explain", "--json", *(["--rules", write_rules(*rules)] if rules else []), text]
    result = CliRunner().invoke(cli, args)
    return result.exit_code, json.loads(result.stdout)


def explain_text_output(text: str, *rules: dict[str, Any]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["explain", "--rules", write_rules(*rules), text])
    return result.exit_code, result.stdout


def ranked(text: str, *rules: dict[str, Any]) -> list[str]:
    return [m["id"] for m in explain(text, *rules)[1]["matches"]]


# --------------------------------------------------------------------------- one match, every field


def test_a_match_reports_every_field_the_user_reads() -> None:
    rule = team_rule(
        "team-pool-full",
        "slots",
        70,
        r"pool (?P<pool>\w+) is full(?: after (?P<secs>\d+)s)?\s+waiting\s+for\s+(?P<who>\w+)",
        r"another pool message",
        hint="Pool {pool} is full",
        match={
            "any": [r"pool (?P<pool>\w+) is full(?: after (?P<secs>\d+)s)?\s+waiting\s+for\s+(?P<who>\w+)"],
            "sqlstate": ["53300", "53400"],
        },
        fix=["Raise the pool size.", {"when": "neon", "step": "Use the pooled host."}],
        docs=["https://example.org/pool"],
    )
    text = "starting\nERROR: pool main is full   waiting\n\tfor alice (SQLSTATE 53300)"
    code, data = explain(text, rule)
    assert code == 0
    assert data["matches"] == [
        {
            "id": "team-pool-full",
            "layer": "slots",
            "blame": "server",
            "title": "Title of team-pool-full",
            "hint": "Pool main is full",
            "cause": "Cause of team-pool-full.",
            "fix": ["Raise the pool size.", "Use the pooled host."],
            "fix_when": [None, "neon"],
            "docs": ["https://example.org/pool"],
            "excerpt": "ERROR: pool main is full   waiting\n\tfor alice (SQLSTATE 53300)",
            "line": 2,
            "priority": 70,
            "captures": {"pool": "main", "who": "alice"},
            "sqlstate": "53300",
            "origin": "team",
            "matched": "pool main is full waiting for alice",
            "confidence": "high",
            "agree": 0,
            "weak": False,
        }
    ]
    assert data["sqlstates"] == [
        {
            "code": "53300",
            "class": "53",
            "meaning": "insufficient resources: too many connections, or the server is out of memory or disk",
        }
    ]
    assert data["answer"] == {
        "id": "team-pool-full",
        "layer": "slots",
        "title": "Title of team-pool-full",
        "confidence": "high",
        "guess": False,
        "guess_from": None,
        "runner_up": None,
        "next_step": None,
    }


def test_a_long_match_is_cut_to_80_characters_and_a_hint_without_its_capture_is_left_out() -> None:
    rule = team_rule("team-long", "tcp", 40, r"long failure (?:of (?P<what>\w+) )?x+", hint="Failure of {what}")
    text = "long failure " + "x" * 100
    code, data = explain(text, rule)
    match = data["matches"][0]
    assert match["matched"] == ("long failure " + "x" * 100)[:80]
    assert match["hint"] is None and match["captures"] == {}
    assert match["confidence"] == "medium" and data["answer"]["guess"] is False
    assert code == 0


def test_a_password_in_the_excerpt_captures_and_hint_is_masked() -> None:
    rule = team_rule(
        "team-login", "auth", 60, r"login as (?P<who>\w+) with (?P<secret>\S+) refused", hint="Login {who}:{secret}"
    )
    text = "postgresql://app:Sup3rSecretPw@db.example/app login as app with Sup3rSecretPw refused"
    _code, data = explain(text, rule)
    out = json.dumps(data)
    assert "Sup3rSecretPw" not in out
    match = data["matches"][0]
    assert match["captures"]["who"] == "app" and match["captures"]["secret"] != "Sup3rSecretPw"
    assert match["hint"].startswith("Login app:")


# --------------------------------------------------------------------------- ranking


@pytest.mark.parametrize(
    ("name", "text", "rules", "expected"),
    [
        (
            "higher priority in the same band",
            "alpha failure and beta failure",
            [team_rule("team-a", "tcp", 61, "alpha failure"), team_rule("team-b", "tls", 65, "beta failure")],
            ["team-b", "team-a"],
        ),
        (
            "a text match beats a SQLSTATE-only match of a higher priority one level up",
            "alpha failure (SQLSTATE 08006)",
            [
                team_rule(
                    "team-code", "tcp", 70, "never printed", match={"any": ["never printed"], "sqlstate": ["08006"]}
                ),
                team_rule("team-text", "tls", 40, "alpha failure"),
            ],
            ["team-text", "team-code"],
        ),
        (
            "a confirming SQLSTATE breaks a tie",
            "alpha failure (SQLSTATE 08006)",
            [
                team_rule("team-plain", "tcp", 50, "alpha failure"),
                team_rule(
                    "team-coded", "tls", 50, "alpha failure", match={"any": ["alpha failure"], "sqlstate": ["08006"]}
                ),
            ],
            ["team-coded", "team-plain"],
        ),
        (
            "the longer match breaks a tie",
            "alpha failure now",
            [
                team_rule("team-short", "tcp", 50, "alpha failure"),
                team_rule("team-long", "tls", 50, "alpha failure now"),
            ],
            ["team-long", "team-short"],
        ),
        (
            "the earlier line breaks a tie",
            "bravo failure\ndelta failure",
            [team_rule("team-later", "tcp", 50, "delta failure"), team_rule("team-first", "tls", 50, "bravo failure")],
            ["team-first", "team-later"],
        ),
        (
            "a property line of an error dump ranks last",
            "  code: 'ECONNREFUSED',\nalpha failure",
            [
                team_rule("team-generic", "tcp", 10, "alpha failure"),
                team_rule("team-refused", "tcp", 90, "econnrefused"),
            ],
            ["team-generic", "team-refused"],
        ),
        (
            "a deeper cause wins",
            "Error: alpha failure\nCaused by: beta failure",
            [team_rule("team-outer", "tcp", 50, "alpha failure"), team_rule("team-inner", "tls", 50, "beta failure")],
            ["team-inner", "team-outer"],
        ),
    ],
)
def test_the_ranking(name: str, text: str, rules: list[dict[str, Any]], expected: list[str]) -> None:
    assert ranked(text, *rules) == expected, name


def test_a_rules_best_line_is_the_one_reported() -> None:
    rule = team_rule("team-refused", "tcp", 50, "econnrefused")
    text = "  errno: 'ECONNREFUSED',\nconnect ECONNREFUSED 127.0.0.1:5432\nagain ECONNREFUSED 127.0.0.1:5432"
    _code, data = explain(text, rule)
    match = data["matches"][0]
    assert (match["line"], match["excerpt"], match["weak"]) == (2, "connect ECONNREFUSED 127.0.0.1:5432", False)
    assert match["confidence"] == "medium"
    _code, weak_only = explain("  errno: 'ECONNREFUSED',", rule)
    assert weak_only["matches"][0]["weak"] is True
    assert weak_only["matches"][0]["confidence"] == "low"
    assert weak_only["answer"]["guess"] is True


def test_unless_vetoes_the_text_and_the_sqlstate_match() -> None:
    rule = team_rule(
        "team-veto",
        "tcp",
        50,
        "alpha failure",
        match={"any": ["alpha failure"], "unless": ["harmless"], "sqlstate": ["08006"]},
    )
    assert ranked("alpha failure, harmless", rule) == []
    assert ranked("other thing (SQLSTATE 08006) harmless", rule) == ["sqlstate-08"]
    assert ranked("other thing (SQLSTATE 08006)", rule) == ["team-veto"]
    assert ranked("HARMLESS\nalpha failure", rule) == ["team-veto"]


def test_a_sqlstate_only_match_names_the_first_code_of_the_rule_that_the_text_holds() -> None:
    rule = team_rule(
        "team-codes",
        "slots",
        90,
        "never printed",
        match={"any": ["never printed"], "sqlstate": ["53400", "53300", "53200"]},
    )
    text = "first (SQLSTATE 53200)\nsecond (SQLSTATE 53300)"
    _code, data = explain(text, rule)
    match = data["matches"][0]
    assert (match["sqlstate"], match["matched"], match["confidence"], match["line"]) == (
        "53300",
        "SQLSTATE 53300",
        "medium",
        2,
    )
    assert match["excerpt"] == "second (SQLSTATE 53300)"
    assert [s["code"] for s in data["sqlstates"]] == ["53200", "53300"]


# --------------------------------------------------------------------------- confidence


@pytest.mark.parametrize(
    ("priority", "expected"),
    [(100, "high"), (60, "high"), (59, "medium"), (31, "medium"), (30, "low"), (0, "low")],
)
def test_the_priority_band_gives_the_confidence(priority: int, expected: str) -> None:
    _code, data = explain("alpha failure", team_rule("team-a", "tcp", priority, "alpha failure"))
    assert data["matches"][0]["confidence"] == expected
    assert data["answer"]["confidence"] == expected
    assert data["answer"]["guess"] is (expected == "low")
    assert data["answer"]["next_step"] == (CHECK if expected == "low" else None)
    assert data["answer"]["guess_from"] == ("alpha failure" if expected == "low" else None)


@pytest.mark.parametrize(
    ("priority", "sqlstate_only", "agreeing", "expected", "agree"),
    [
        (60, True, 0, "medium", 0),
        (59, True, 0, "low", 0),
        (10, True, 0, "low", 0),
        (10, False, 1, "medium", 1),
        (10, False, 2, "medium", 2),
        (40, False, 1, "high", 1),
        (90, False, 1, "high", 1),
        (60, True, 1, "high", 1),
    ],
)
def test_agreeing_rules_raise_and_a_sqlstate_only_match_lowers_the_confidence(
    priority: int, sqlstate_only: bool, agreeing: int, expected: str, agree: int
) -> None:
    main = team_rule(
        "team-main",
        "auth",
        priority,
        "alpha failure" if not sqlstate_only else "never printed",
        match={"any": ["alpha failure" if not sqlstate_only else "never printed"], "sqlstate": ["28P01"]},
    )
    helpers = [team_rule(f"team-agree-{n}", "auth", 5, f"failure{n}") for n in range(agreeing)]
    other_layer = team_rule("team-other-layer", "tcp", 5, "failure0")
    text = "alpha failure (SQLSTATE 28P01) " + " ".join(f"failure{n}" for n in range(max(agreeing, 1)))
    _code, data = explain(text, main, *helpers, other_layer)
    by_id = {m["id"]: m for m in data["matches"]}
    assert (by_id["team-main"]["confidence"], by_id["team-main"]["agree"]) == (expected, agree)


# --------------------------------------------------------------------------- the answer and its runner-up


def test_a_medium_answer_names_an_equally_confident_runner_up_of_another_layer() -> None:
    rules = [
        team_rule("team-top", "tcp", 50, "alpha failure"),
        team_rule("team-same-layer", "tcp", 45, "alpha"),
        team_rule("team-weak", "tls", 45, "econnreset"),
        team_rule("team-runner", "auth", 40, "failure"),
    ]
    code, data = explain("  code: 'ECONNRESET',\nalpha failure", *rules)
    assert code == 0
    assert [m["id"] for m in data["matches"]] == ["team-top", "team-same-layer", "team-runner", "team-weak"]
    assert data["matches"][0]["confidence"] == "high"  # raised: team-same-layer agrees
    assert data["answer"]["runner_up"] is None
    code, data = explain("alpha failure", rules[0], rules[3])
    assert data["answer"] == {
        "id": "team-top",
        "layer": "tcp",
        "title": "Title of team-top",
        "confidence": "medium",
        "guess": False,
        "guess_from": None,
        "runner_up": {"id": "team-runner", "layer": "auth", "title": "Title of team-runner", "confidence": "medium"},
        "next_step": None,
    }
    exit_code, out = explain_text_output("alpha failure", rules[0], rules[3])
    assert exit_code == 0
    assert "Or, if it is not tcp: an auth problem, Title of team-runner [team-runner] (see 2.)" in out


def test_a_less_confident_runner_up_or_a_weak_one_is_not_named() -> None:
    rules = [team_rule("team-top", "tcp", 50, "alpha failure"), team_rule("team-low", "auth", 20, "failure")]
    assert explain("alpha failure", *rules)[1]["answer"]["runner_up"] is None
    weak = [rules[0], team_rule("team-weak", "auth", 50, "econnreset")]
    _code, data = explain("  code: 'ECONNRESET',\nalpha failure", *weak)
    assert [m["id"] for m in data["matches"]] == ["team-top", "team-weak"]
    assert data["answer"]["runner_up"] is None


def test_a_low_answer_is_a_guess_whose_runner_up_can_be_named() -> None:
    rules = [team_rule("team-top", "tcp", 20, "alpha failure"), team_rule("team-other", "auth", 10, "failure")]
    code, data = explain("alpha failure", *rules)
    assert code == 0
    assert data["answer"] == {
        "id": "team-top",
        "layer": "tcp",
        "title": "Title of team-top",
        "confidence": "low",
        "guess": True,
        "guess_from": "alpha failure",
        "runner_up": {"id": "team-other", "layer": "auth", "title": "Title of team-other", "confidence": "low"},
        "next_step": CHECK,
    }


# --------------------------------------------------------------------------- no rule: the SQLSTATE guess


def test_no_rule_but_a_sqlstate_whose_class_has_a_layer_is_a_guess() -> None:
    code, data = explain("ERROR: something odd (SQLSTATE 28999)")
    assert code == 0
    meaning = "invalid authorization specification: the server rejected the role, the password or the pg_hba.conf rule"
    assert data["matches"] == [
        {
            "id": "sqlstate-28",
            "layer": "auth",
            "blame": None,
            "title": "SQLSTATE 28999: invalid authorization specification",
            "hint": None,
            "cause": f"No rule knows this text, but its SQLSTATE 28999 is of class 28: {meaning}.",
            "fix": [f"Run `{CHECK}`: it tries each step of the connection and stops where it fails."],
            "docs": ["https://www.postgresql.org/docs/current/errcodes-appendix.html"],
            "excerpt": None,
            "line": None,
            "priority": 0,
            "captures": {},
            "sqlstate": "28999",
            "origin": "sqlstate-class",
            "matched": "SQLSTATE 28999",
            "confidence": "low",
            "agree": 0,
        }
    ]
    assert data["answer"]["guess"] is True and data["answer"]["guess_from"] == "SQLSTATE 28999"
    assert data["sqlstates"] == [{"code": "28999", "class": "28", "meaning": meaning}]


@pytest.mark.parametrize(
    ("text", "guess"),
    [
        ("ERROR: odd (SQLSTATE 53300)", ("sqlstate-53", "slots")),
        ("ERROR: odd (SQLSTATE 42P01)", ("sqlstate-42", "tables")),
        ("ERROR: odd (SQLSTATE 08P01) then (SQLSTATE 57P01)", ("sqlstate-57", "server")),
        ("ERROR: odd (SQLSTATE 22012) then (SQLSTATE 3D000)", ("sqlstate-3d", "database")),
        ("ERROR: odd (SQLSTATE 22012)", None),
        ("ERROR: odd (SQLSTATE 57014)", None),
    ],
)
def test_the_guessed_layer_comes_from_the_codes_own_entry_or_else_its_class(
    text: str, guess: tuple[str, str] | None
) -> None:
    code, data = explain(text)
    if guess is None:
        assert (code, data["answer"], data["matches"]) == (1, None, [])
    else:
        assert code == 0
        assert (data["matches"][0]["id"], data["matches"][0]["layer"]) == guess
        assert data["answer"]["layer"] == guess[1]


def test_every_code_the_engine_can_report_has_a_class_with_a_meaning() -> None:
    data = tables()
    assert all(info["meaning"] for info in data["classes"].values())
    assert all(code[:2] in data["classes"] for code in [*data["exceptions"].values(), *data["codes"]])
    _code, result = explain("asyncpg.exceptions.InternalServerError: boom")
    assert result["sqlstates"] == [
        {
            "code": "XX000",
            "class": "XX",
            "meaning": "internal error; Neon's proxy sends XX000 for every error it reports, so read the message text",
        }
    ]
    assert result["answer"] is None


def test_a_hint_that_comes_out_empty_is_left_out() -> None:
    rule = team_rule("team-empty", "auth", 60, r"login as '(?P<who>\w*)' refused", hint="{who}")
    _code, data = explain("login as '' refused", rule)
    assert (data["matches"][0]["captures"], data["matches"][0]["hint"]) == ({"who": ""}, None)
    _code, data = explain("login as 'bob' refused", rule)
    assert data["matches"][0]["hint"] == "bob"


def test_the_runner_up_is_of_another_layer_and_not_weak_evidence() -> None:
    same_layer = [team_rule("team-top", "tcp", 20, "alpha failure"), team_rule("team-same", "tcp", 15, "failure")]
    _code, data = explain("alpha failure", *same_layer)
    assert [(m["id"], m["confidence"]) for m in data["matches"]] == [("team-top", "medium"), ("team-same", "medium")]
    assert data["answer"]["runner_up"] is None
    weak_runner = [team_rule("team-top", "tcp", 20, "alpha failure"), team_rule("team-weak", "auth", 50, "econnreset")]
    _code, data = explain("  code: 'ECONNRESET',\nalpha failure", *weak_runner)
    assert [(m["id"], m["confidence"]) for m in data["matches"]] == [("team-top", "low"), ("team-weak", "low")]
    assert data["answer"]["runner_up"] is None


def test_a_high_answer_names_no_runner_up_even_an_equally_high_one() -> None:
    rules = [team_rule("team-top", "tcp", 70, "alpha failure"), team_rule("team-other", "auth", 65, "failure")]
    _code, data = explain("alpha failure", *rules)
    assert [(m["id"], m["confidence"]) for m in data["matches"]] == [("team-top", "high"), ("team-other", "high")]
    assert data["answer"]["runner_up"] is None
