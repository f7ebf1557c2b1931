"""The generalisation corpus (bench/unseen_corpus.py) is well-formed, split by its rule, and its scorer runs.

Failures name record ids only, never texts: the held-out share must not be printed.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from neondoctor.redact import find_secrets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import score_unseen
import unseen_corpus

SHARES = {"unseen": unseen_corpus.read(unseen_corpus.UNSEEN), "seen": unseen_corpus.read(unseen_corpus.SEEN)}
RECORDS = [record for records in SHARES.values() for record in records]
PLACEHOLDER_SECRETS = {
    "[redacted]",  # masked by the user who pasted it
    "******=",
    "SecretA720EF05",  # the name in an AWS Secrets Manager ARN, not a password
    "sys.argv[5",  # source code shown in a traceback
    "db_password",  # a variable name in source code shown in a traceback
    "password",  # the literal word, a tutorial's default
    "up.unquote(u.password",
    "psql:",
    "PASSWORD_REMOVED",  # masked by the user who pasted it
    "labpw123",  # the throwaway password of the lab server (loopback only)
    ">nil",  # a Ruby hash printing "password"=>nil: no password at all
}
MASK = re.compile(r"[x*#.]+", re.IGNORECASE)  # xxxxx, ******: what users type instead of their password
LAB_SOURCE = re.compile(r"neondoctor unseen lab")
PUBLIC_SOURCE = re.compile(r"^https://\S+$")


def test_the_corpus_is_big_enough_in_every_class() -> None:
    counts = Counter(record["class"] for record in RECORDS)
    total, families = len(RECORDS), len({record["family"] for record in RECORDS})
    assert total >= 300
    assert {cls: counts[cls] for cls in unseen_corpus.CLASSES if counts[cls] < 20} == {}
    assert families >= 30


def test_every_record_is_well_formed() -> None:
    bad = {record.get("id", "?"): unseen_corpus.problems(record) for record in RECORDS}
    assert {key: value for key, value in bad.items() if value} == {}


def test_fix_regexes_are_not_trivially_true() -> None:
    trivial = [
        record["id"]
        for record in RECORDS
        if record["class"] != "not_db" and re.search(record["fix"], "", re.IGNORECASE) is not None
    ]
    assert trivial == []


def test_ids_and_texts_are_unique() -> None:
    ids = Counter(record["id"] for record in RECORDS)
    texts = Counter(record["text"] for record in RECORDS)
    assert [key for key, n in ids.items() if n > 1] == []
    assert [record["id"] for record in RECORDS if texts[record["text"]] > 1] == []


@pytest.mark.parametrize("share", ["unseen", "seen"])
def test_each_text_is_in_the_share_its_hash_picks(share: str) -> None:
    misplaced = [r["id"] for r in SHARES[share] if unseen_corpus.is_unseen(r["text"]) != (share == "unseen")]
    assert misplaced == []


def test_the_split_rule_is_the_published_one() -> None:
    import hashlib

    for text in ("psql: error", "Error: connect ECONNREFUSED 127.0.0.1:5432", "ü"):
        digest = int(hashlib.sha256(("neondoctor-unseen-2026:" + text).encode()).hexdigest(), 16)
        assert unseen_corpus.is_unseen(text) == (digest % 3 == 0)


def test_every_record_names_where_its_text_comes_from() -> None:
    unsourced = [
        record["id"]
        for record in RECORDS
        if not (PUBLIC_SOURCE.match(record["source"]) or LAB_SOURCE.search(record["source"]))
    ]
    assert unsourced == []


def is_placeholder(secret: str) -> bool:
    return secret in PLACEHOLDER_SECRETS or bool(MASK.fullmatch(secret)) or "PASSWORD_REMOVED" in secret


def test_no_text_holds_a_real_looking_password() -> None:
    leaked = [r["id"] for r in RECORDS if not all(is_placeholder(secret) for secret in find_secrets(r["text"]))]
    assert leaked == []


def test_not_db_texts_are_labelled_none() -> None:
    assert [r["id"] for r in RECORDS if (r["class"] == "not_db") != (r["layer"] == "none")] == []


def test_scorer_prints_a_per_class_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert score_unseen.main(["--share", "all"]) == 0
    out = capsys.readouterr().out
    assert "| class | what | n | layer % | fix % | no answer % |" in out
    assert "**overall**" in out
    assert "Contaminated held-out texts" in out
    for cls in ("1", "2", "3", "4", "5", "6", "classic", "not_db"):
        assert f"\n| {cls} |" in out


def test_scorer_json_has_every_class(capsys: pytest.CaptureFixture[str]) -> None:
    assert score_unseen.main(["--share", "seen", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["classes"]) >= {"overall", "not_db"}
    row = report["classes"]["overall"]
    expected = sum(r["class"] != "not_db" for r in SHARES["seen"])
    assert row["n"] == expected
    assert 0.0 <= row["layer"] <= 100.0 and 0.0 <= row["fix"] <= 100.0


def test_scorer_never_prints_held_out_texts(capsys: pytest.CaptureFixture[str]) -> None:
    assert score_unseen.main(["--share", "all", "--show-misses"]) == 0
    listed = {line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("- ")}
    held_out = {r["id"] for r in SHARES["unseen"]}
    assert sorted(listed & held_out) == []


def test_not_db_is_right_only_without_a_confident_match() -> None:
    record = {"id": "x", "class": "not_db", "layer": "none", "fix": ""}
    guess = {"id": "r", "layer": "tcp", "fix": [], "title": "", "guess": True}
    sure = {"id": "r", "layer": "tcp", "fix": [], "title": ""}
    assert score_unseen.judge(record, [])["layer_ok"]
    assert score_unseen.judge(record, [guess])["layer_ok"]
    assert not score_unseen.judge(record, [sure])["layer_ok"]


def test_fix_is_looked_for_in_steps_hint_and_title() -> None:
    record = {"id": "x", "class": "4", "layer": "url", "fix": r"percent.?encod"}
    match = {"id": "r", "layer": "url", "fix": ["Reset the password."], "hint": None, "title": "Percent-encode it"}
    verdict = score_unseen.judge(record, [match])
    assert verdict["layer_ok"] and verdict["fix_ok"]
    assert not score_unseen.judge(record, [{**match, "title": "Wrong URL"}])["fix_ok"]


HELD_OUT_FLOOR = {"layer": 88.0, "fix": 88.0}
"""Today (2026-12-04, 150 rules): 90.1 % layer and 91.8 % fix on the held-out share. A change to the rules or
the engine that loses ground on texts no rule was written from fails here; raise the floor as scores rise."""


def test_held_out_scores_stay_above_the_floor(capsys: pytest.CaptureFixture[str]) -> None:
    assert score_unseen.main(["--share", "unseen", "--json"]) == 0
    overall = json.loads(capsys.readouterr().out)["classes"]["overall"]
    assert overall["layer"] >= HELD_OUT_FLOOR["layer"], overall
    assert overall["fix"] >= HELD_OUT_FLOOR["fix"], overall
