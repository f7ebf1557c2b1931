"""What `neondoctor rules lint`, `rules test`, `rules show` and `explain` print for a rule file with one
mistake: the exact problem lines (file, rule, words), how many rules are still used, and the warning
`explain` gives about the broken ones. Only the rules written here are loaded (no built-ins), so each run
is fast."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from test_rules_engine import DROP, rule

from neondoctor.cli import cli

FILE = "mine/r.yaml"
LAYERS = "url, dns, tcp, tls, auth, database, slots, tables, server, pooler, client"
NO_SOURCE = "has no 'source' (the client and version that printed it, or a public link)"
BAD_HINT = "'hint' must be one line whose {placeholders} are named groups of match.any"
NO_LITERAL = (
    "has no literal text of 3+ characters that every match contains; the fast prefilter cannot skip lines for it"
)
BAD_FIX = "'fix' must be a non-empty list of steps"


pytestmark = pytest.mark.usefixtures("only_rules_written_here")




def write(*items: Any, raw: str | bytes | None = None, name: str = "r.yaml", folder: str = "mine") -> Path:
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(raw, bytes):
        path.write_bytes(raw)
    else:
        path.write_text(raw if raw is not None else yaml.safe_dump({"rules": list(items)}, sort_keys=False))
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def lint_lines(folder: str = "mine") -> tuple[list[str], int]:
    result = run("rules", "lint", "--rules", folder)
    lines = result.stdout.splitlines()
    assert result.exit_code == (1 if lines[:-1] else 0), result.stdout
    return lines[:-1], result.exit_code


def summary(folder: str = "mine") -> str:
    return run("rules", "lint", "--rules", folder).stdout.splitlines()[-1]


def skipped_warning(text: str = "demo failure 42", folder: str = "mine") -> str:
    return run("explain", "--rules", folder, text).stderr


# --------------------------------------------------------------------------- one mistake, its exact lines

CASES: dict[str, tuple[list[Any], list[str], int]] = {
    # name: (rules in the file, problem lines after "mine/r.yaml: ", rules still used)
    "unknown keys, one of them a number": (
        [{**rule(), 1: "x", "colour": "red"}],
        ["demo-rule: unknown key 1", "demo-rule: unknown key 'colour'"],
        1,
    ),
    "the second rule is not a mapping": ([rule(), 7], ["rule #2: is not a mapping"], 1),
    "no id": ([rule(), rule(id=DROP)], ["rule #2: missing 'id'"], 1),
    "an empty id": ([rule(id="")], ["rule #1: missing 'id'"], 0),
    "a numeric id": ([rule(id=5)], ["rule #1: missing 'id'"], 0),
    "an id not in kebab-case": (
        [rule(id="Demo_Rule")],
        ["Demo_Rule: id must be kebab-case (lower-case letters, digits and single hyphens)"],
        1,
    ),
    "no layer nor blame": (
        [rule(layer=DROP, blame=5)],
        ["demo-rule: missing 'layer'", "demo-rule: missing 'blame'"],
        1,
    ),
    "a blank title": ([rule(title="  ")], ["demo-rule: missing 'title'"], 0),
    "a cause that is a list": ([rule(cause=["x"])], ["demo-rule: missing 'cause'"], 0),
    "an unknown layer": ([rule(layer="cloud")], [f"demo-rule: unknown layer 'cloud' (one of {LAYERS})"], 1),
    "an unknown blame": (
        [rule(blame="nobody")],
        ["demo-rule: unknown blame 'nobody' (one of user, network, provider, server, client)"],
        1,
    ),
    "priority true": ([rule(priority=True)], ["demo-rule: priority must be an integer from 0 to 100, not True"], 1),
    "priority below 0": ([rule(priority=-1)], ["demo-rule: priority must be an integer from 0 to 100, not -1"], 1),
    "priority above 100": ([rule(priority=101)], ["demo-rule: priority must be an integer from 0 to 100, not 101"], 1),
    "priority a word": (
        [rule(priority="high")],
        ["demo-rule: priority must be an integer from 0 to 100, not 'high'"],
        1,
    ),
    "fix a string": ([rule(fix="Do this.")], [f"demo-rule: {BAD_FIX}"], 0),
    "fix empty": ([rule(fix=[])], [f"demo-rule: {BAD_FIX}"], 0),
    "two bad fix steps": ([rule(fix=["Do this.", 5, "  "])], [f"demo-rule: {BAD_FIX}", f"demo-rule: {BAD_FIX}"], 0),
    "a tagged fix step with a blank step": ([rule(fix=[{"when": "neon", "step": " "}])], [f"demo-rule: {BAD_FIX}"], 0),
    "a fix step tagged for an unknown host": (
        [rule(fix=[{"when": "aws", "step": "x"}, {"when": "neon"}])],
        [
            "demo-rule: a tagged fix step is {when: neon | not-neon, step: text}, not {'when': 'aws', 'step': 'x'}",
            "demo-rule: a tagged fix step is {when: neon | not-neon, step: text}, not {'when': 'neon'}",
        ],
        0,
    ),
    "a tagged fix step with an extra key": (
        [rule(fix=[{"when": "not-neon", "step": "x", "why": "y"}])],
        [
            "demo-rule: a tagged fix step is {when: neon | not-neon, step: text}, "
            "not {'when': 'not-neon', 'step': 'x', 'why': 'y'}"
        ],
        0,
    ),
    "docs null": ([rule(docs=None)], ["demo-rule: 'docs' must be a list of links"], 1),
    "docs a string": ([rule(docs="https://example.org")], ["demo-rule: 'docs' must be a list of links"], 1),
    "docs holding a number": (
        [rule(docs=["https://example.org", 1])],
        ["demo-rule: 'docs' must be a list of links"],
        1,
    ),
    "match a string": ([rule(match="demo failure")], ["demo-rule: missing 'match' with an 'any' list of regexes"], 0),
    "unknown match keys": (
        [rule(match={"any": [r"demo failure \d+"], "zz": 1, "all": ["x"], 3: 4})],
        ["demo-rule: unknown key 'match.3'", "demo-rule: unknown key 'match.all'", "demo-rule: unknown key 'match.zz'"],
        1,
    ),
    "match without any": (
        [rule(match={"sqlstate": ["28P01"]})],
        ["demo-rule: 'match.any' must be a non-empty list of regexes"],
        0,
    ),
    "match.any empty": ([rule(match={"any": []})], ["demo-rule: 'match.any' must be a non-empty list of regexes"], 0),
    "match.any a string": (
        [rule(match={"any": "demo failure"})],
        ["demo-rule: 'match.any' must be a non-empty list of regexes"],
        0,
    ),
    "match.any holding an empty regex": (
        [rule(match={"any": [r"demo failure \d+", ""]})],
        ["demo-rule: 'match.any' must be a non-empty list of regexes"],
        0,
    ),
    "match.unless null": (
        [rule(match={"any": [r"demo failure \d+"], "unless": None})],
        ["demo-rule: 'match.unless' must be a list of regexes"],
        0,
    ),
    "match.unless a string": (
        [rule(match={"any": [r"demo failure \d+"], "unless": "x"})],
        ["demo-rule: 'match.unless' must be a list of regexes"],
        0,
    ),
    "match.unless holding an empty regex": (
        [rule(match={"any": [r"demo failure \d+"], "unless": ["abc", ""]})],
        ["demo-rule: 'match.unless' must be a list of regexes"],
        0,
    ),
    "a broken regex before one a hint names": (
        [rule(match={"any": ["demo (x", "demo [y", r"(?P<n>demo) failure \d+"]}, hint="{n} failed")],
        [
            "demo-rule: match.any[1] is not a valid regex: missing ), unterminated subpattern at position 5",
            "demo-rule: match.any[2] is not a valid regex: unterminated character set at position 5",
        ],
        0,
    ),
    "the second unless regex is broken": (
        [rule(match={"any": [r"demo failure \d+"], "unless": ["fine", "[oops"]})],
        ["demo-rule: match.unless[2] is not a valid regex: unterminated character set at position 0"],
        0,
    ),
    "a regex that matches the empty string": (
        [rule(match={"any": [r"demo failure \d+", "(?:demo)?"]})],
        ["demo-rule: match.any[2] matches the empty string", f"demo-rule: match.any[2] {NO_LITERAL}"],
        0,
    ),
    "a regex of one repeated letter": (
        [rule(match={"any": [r"demo failure \d+", "X{3}"]})],
        [f"demo-rule: match.any[2] {NO_LITERAL}"],
        1,
    ),
    "a duplicate id in the same file": (
        [
            rule(),
            rule(title="Again"),
            rule(
                id="demo-after", match={"any": ["after failure"]}, examples=[{"text": "after failure", "source": "t"}]
            ),
        ],
        ["demo-rule: duplicate id (also in mine/r.yaml); the first one is used"],
        2,
    ),
    "a regex whose literal is two characters": (
        [rule(match={"any": [r"demo failure \d+", r"ab\d+"]})],
        [f"demo-rule: match.any[2] {NO_LITERAL}"],
        1,
    ),
    "sqlstate a string": (
        [rule(match={"any": [r"demo failure \d+"], "sqlstate": "28P01"})],
        ["demo-rule: 'match.sqlstate' must be a list of SQLSTATE codes"],
        1,
    ),
    "a sqlstate YAML reads as a number": (
        [rule(match={"any": [r"demo failure \d+"], "sqlstate": [8000]})],
        ["demo-rule: SQLSTATE 8000 is read by YAML as a number; quote it ('08000')"],
        1,
    ),
    "malformed sqlstates": (
        [rule(match={"any": [r"demo failure \d+"], "sqlstate": [True, "28p01", "5330", "28P01"]})],
        [
            "demo-rule: True is not a SQLSTATE (five characters, 0-9 and A-Z)",
            "demo-rule: '28p01' is not a SQLSTATE (five characters, 0-9 and A-Z)",
            "demo-rule: '5330' is not a SQLSTATE (five characters, 0-9 and A-Z)",
        ],
        1,
    ),
    "a hint naming no group": ([rule(hint="{nobody} failed")], [f"demo-rule: {BAD_HINT}"], 1),
    "a hint with a lone brace": ([rule(hint="failed {")], [f"demo-rule: {BAD_HINT}"], 1),
    "a blank hint": ([rule(hint="  ")], [f"demo-rule: {BAD_HINT}"], 1),
    "a hint that is a number": ([rule(hint=5)], [f"demo-rule: {BAD_HINT}"], 1),
    "a hint naming a positional field": (
        [rule(match={"any": [r"demo failure (?P<n>\d+)"]}, hint="{0} failed")],
        [f"demo-rule: {BAD_HINT}"],
        1,
    ),
    "examples a string": (
        [rule(examples="demo failure 42")],
        ["demo-rule: 'examples' must be a list of {text, source}"],
        1,
    ),
    "examples missing": (
        [rule(examples=DROP)],
        ["demo-rule: no examples: add at least one real error text with its source"],
        1,
    ),
    "examples empty": (
        [rule(examples=[])],
        ["demo-rule: no examples: add at least one real error text with its source"],
        1,
    ),
    "an example that is a string": (
        [rule(examples=["demo failure 2", {"text": "demo failure 1"}])],
        ["demo-rule: examples[1] must be a mapping with 'text' and 'source'", f"demo-rule: examples[2] {NO_SOURCE}"],
        1,
    ),
    "an example with unknown keys": (
        [rule(examples=[{"text": "demo failure 1", "source": "t", "zz": 1, 5: 2, "note": 2}])],
        [
            "demo-rule: unknown key 5 in examples[1]",
            "demo-rule: unknown key 'note' in examples[1]",
            "demo-rule: unknown key 'zz' in examples[1]",
        ],
        1,
    ),
    "examples without text": (
        [rule(examples=[{"text": "demo failure 1", "source": "t"}, {"source": "t"}, {"text": " ", "source": "t"}])],
        ["demo-rule: examples[2] has no 'text'", "demo-rule: examples[3] has no 'text'"],
        1,
    ),
    "examples without source": (
        [
            rule(
                examples=[
                    {"text": "demo failure 1", "source": "t"},
                    {"text": "demo failure 2"},
                    {"text": "demo failure 3", "source": " "},
                ]
            )
        ],
        [f"demo-rule: examples[2] {NO_SOURCE}", f"demo-rule: examples[3] {NO_SOURCE}"],
        1,
    ),
    "not_examples a string": (
        [rule(not_examples="other")],
        ["demo-rule: 'not_examples' must be a list of {text, source}"],
        1,
    ),
    "a not_example without source": (
        [rule(not_examples=[{"text": "other failure", "source": 5}])],
        [f"demo-rule: not_examples[1] {NO_SOURCE}"],
        1,
    ),
    "an example that does not match": (
        [rule(examples=[{"text": "demo failure 1", "source": "t"}, {"text": "demo failure x", "source": "t"}])],
        ["demo-rule: example[2] does not match"],
        1,
    ),
    "a not_example that matches": (
        [rule(not_examples=[{"text": "other", "source": "t"}, {"text": "demo failure 7", "source": "t"}])],
        ["demo-rule: not_example[2] matches"],
        1,
    ),
    "an example claimed by a higher-priority rule": (
        [
            rule(id="demo-generic", priority=10, examples=[{"text": "demo failure 1 in the pool", "source": "t"}]),
            rule(
                id="demo-pool",
                priority=70,
                match={"any": ["failure 1 in the pool"]},
                examples=[{"text": "failure 1 in the pool", "source": "t"}],
            ),
        ],
        ["demo-generic: example[1] matches, but 'demo-pool' (priority 70) ranks first; this rule has priority 10"],
        2,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rules_lint_prints_each_problem_with_its_file_and_rule(case: str) -> None:
    items, expected, used = CASES[case]
    write(*items)
    lines, _ = lint_lines()
    assert lines == [f"{FILE}: {line}" for line in expected]
    plural = "problem" if len(expected) == 1 else "problems"
    assert summary() == f"✗ {len(expected)} {plural} in {used} rules."


def test_a_clean_rule_file_with_every_optional_field_has_no_problems() -> None:
    write(
        rule(
            priority=0,
            hint="failure {n} of {who}",
            match={
                "any": [r"demo failure (?P<n>\d+)", r"(?P<who>\w+)abc\d"],
                "unless": ["retrying"],
                "sqlstate": ["08006", "28P01"],
            },
            fix=["Do this.", {"when": "neon", "step": "On Neon, that."}, {"when": "not-neon", "step": "Else this."}],
            docs=["https://example.org/a"],
            examples=[{"text": "demo failure 42", "source": "t"}],
            not_examples=[{"text": "demo failure 42, retrying", "source": "t"}],
        ),
        rule(
            id="demo-top",
            priority=100,
            match={"any": ["top failure"]},
            examples=[{"text": "top failure", "source": "t"}],
        ),
        rule(
            id="demo-empty-optional",
            match={"any": ["third failure"]},
            examples=[{"text": "third failure", "source": "t"}],
            not_examples=None,
        ),
    )
    assert lint_lines() == ([], 0)
    assert summary() == "✓ 3 rules, no problems."


def test_a_problem_that_keeps_the_rule_out_is_counted_in_explains_warning() -> None:
    write(rule(), rule(id="demo-broken", title=" "), "not a rule", rule(id="demo-broken-too", match={"any": ["("]}))
    result = run("explain", "--rules", "mine", "demo failure 42")
    assert result.exit_code == 0
    assert result.stderr == "neondoctor: warning: skipped 3 broken rule(s); see 'neondoctor rules lint'\n"
    clean = write(rule(layer="cloud"), folder="other")
    assert run("explain", "--rules", str(clean.parent), "demo failure 42").stderr == ""


# --------------------------------------------------------------------------- whole files


@pytest.mark.parametrize(
    ("raw", "expected", "fatal"),
    [
        (
            "rules:\n  - id: x\n   layer: tcp\n",
            "not valid YAML: while parsing a block collection in "
            '"<unicode string>", line 2, column 3 did not find expected \'-\' indicator in "<unicode string>", line 3, '
            "column 4",
            True,
        ),
        (
            b"rules: []\n# caf\xe9\n",
            "cannot read: 'utf-8' codec can't decode byte 0xe9 in position 15: invalid continuation byte",
            True,
        ),
        ("- id: x\n", "expected a top-level 'rules:' list", True),
        ("rules: 5\n", "expected a top-level 'rules:' list", True),
        ("rules:\n  id: x\n", "expected a top-level 'rules:' list", True),
        ("rules: []\nextra: 1\n", "unknown top-level key 'extra'", False),
    ],
)
def test_a_file_that_is_not_a_rules_list_is_one_problem(raw: str | bytes, expected: str, fatal: bool) -> None:
    write(raw=raw)
    assert lint_lines() == ([f"{FILE}: {expected}"], 1)
    warning = skipped_warning()
    assert warning == ("neondoctor: warning: skipped 1 broken rule(s); see 'neondoctor rules lint'\n" if fatal else "")


def test_unfinished_yaml_and_a_folder_named_yaml_are_reported() -> None:
    write(raw="rules:\n  - id: demo\n    ugh: [\n")
    assert lint_lines()[0] == [
        f"{FILE}: not valid YAML: while parsing a flow node did not find expected node content in "
        '"<unicode string>", line 4, column 1'
    ]
    (Path("dir") / "sub.yaml").mkdir(parents=True)
    assert lint_lines("dir") == ([f"dir/sub.yaml: cannot read: [Errno 21] Is a directory: '{Path('dir/sub.yaml')}'"], 1)


def test_an_empty_file_or_other_files_in_the_folder_are_no_problem() -> None:
    write(raw="")
    write(raw="not: yaml at all: [", name="notes.txt")
    write(rule(), name="more.yml")
    assert lint_lines() == ([], 0)
    assert summary() == "✓ 1 rules, no problems."


def test_a_key_written_twice_is_reported_with_its_line() -> None:
    body = yaml.safe_dump({"rules": [rule()]}, sort_keys=False)
    write(raw="rules: []\nrules:\n" + body.split("\n", 1)[1] + "  title: Again\n  layer: tcp\n")
    lines, _ = lint_lines()
    assert sorted(lines) == [
        f"{FILE}: duplicate key 'layer' in the mapping at line 3",
        f"{FILE}: duplicate key 'rules' in the mapping at line 1",
        f"{FILE}: duplicate key 'title' in the mapping at line 3",
    ]
    assert skipped_warning() == ""
    assert run("explain", "--rules", "mine", "--json", "demo failure 42").exit_code == 0


def test_a_duplicate_id_in_one_folder_keeps_the_first_and_a_later_folder_overrides() -> None:
    write(rule(title="First"), name="a.yaml")
    write(rule(title="Second"), name="b.yaml")
    assert lint_lines() == (["mine/b.yaml: demo-rule: duplicate id (also in mine/a.yaml); the first one is used"], 1)
    assert skipped_warning() == "neondoctor: warning: skipped 1 broken rule(s); see 'neondoctor rules lint'\n"
    assert json.loads(run("rules", "show", "--json", "--rules", "mine", "demo-rule").stdout)["title"] == "First"
    write(rule(title="Third"), folder="later")
    both = run("rules", "show", "--json", "--rules", "mine", "--rules", "later", "demo-rule")
    assert json.loads(both.stdout)["title"] == "Third"
    assert json.loads(both.stdout)["file"] == "later/r.yaml"


# --------------------------------------------------------------------------- what a rule turns into


def test_rules_show_prints_the_rule_as_parsed() -> None:
    write(
        rule(
            title="  Demo  ",
            priority=100,
            hint="failure\n  {n}",
            cause="Because\n  of   this.",
            match={"any": [r"demo failure (?P<n>\d+)"], "unless": ["retrying"], "sqlstate": [8000, "bad", "28P01"]},
            fix=["Do\n   this.", {"when": "neon", "step": "On  Neon."}],
            docs=["https://example.org/a"],
            examples=[{"text": "demo failure 42", "source": 5}],
            not_examples=[{"text": "demo failure 42, retrying", "source": "t"}],
        )
    )
    shown = json.loads(run("rules", "show", "--json", "--rules", "mine", "demo-rule").stdout)
    del shown["schema"]
    assert shown == {
        "id": "demo-rule",
        "layer": "tcp",
        "blame": "user",
        "title": "Demo",
        "hint": "failure {n}",
        "priority": 100,
        "match": {"any": [r"demo failure (?P<n>\d+)"], "sqlstate": ["08000", "28P01"], "unless": ["retrying"]},
        "cause": "Because of this.",
        "fix": ["Do this.", "On Neon."],
        "fix_when": [None, "neon"],
        "docs": ["https://example.org/a"],
        "examples": [{"text": "demo failure 42", "source": ""}],
        "not_examples": [{"text": "demo failure 42, retrying", "source": "t"}],
        "origin": "mine",
        "file": FILE,
    }


def test_rules_show_leaves_out_what_a_rule_does_not_have() -> None:
    write(rule(layer=DROP, blame=DROP, priority=999, docs=None, hint="{nothing}"))
    shown = json.loads(run("rules", "show", "--json", "--rules", "mine", "demo-rule").stdout)
    assert shown["layer"] == "" and shown["blame"] == ""
    assert shown["priority"] == 50
    assert shown["docs"] == []
    assert shown["match"] == {"any": [r"demo failure \d+"]}
    assert {"hint", "fix_when", "not_examples"}.isdisjoint(shown)
    assert list(shown)[-2:] == ["origin", "file"]


# --------------------------------------------------------------------------- rules test


def test_rules_test_counts_each_rule_and_lists_each_failure() -> None:
    long_text = "demo failure 9 " + "x" * 200
    write(
        rule(
            examples=[
                {"text": "demo failure 1", "source": "t"},
                {"text": "demo\n  failure   x", "source": "t"},
                {"text": "demo failure 2 in the pool", "source": "t"},
            ],
            not_examples=[
                {"text": "demo failure 3", "source": "t"},
                {"text": "fine", "source": "t"},
                {"text": long_text, "source": "t"},
            ],
        ),
        rule(
            id="demo-pool",
            priority=70,
            match={"any": ["failure 2 in the pool"]},
            examples=[{"text": "failure 2 in the pool", "source": "t"}],
        ),
    )
    result = run("rules", "test", "--rules", "mine")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "rule       examples matched  missed  false hits",
        "demo-rule                 1       2           2",
        "demo-pool                 1       0           0",
        "total                     2       2           2",
        "",
        "demo-rule example[2] does not match: demo failure x",
        "demo-rule example[3] matches, but 'demo-pool' (priority 70) ranks first; this rule has priority 50: "
        "demo failure 2 in the pool",
        "demo-rule not_example[1] matches: demo failure 3",
        f"demo-rule not_example[3] matches: {long_text[:160]}",
    ]
    as_json = json.loads(run("rules", "test", "--json", "--rules", "mine").stdout)
    assert as_json["ok"] is False
    assert as_json["rules"][1] == {"id": "demo-pool", "matched": 1, "missed": 0, "false_hits": 0}


def test_rules_test_passes_a_clean_file() -> None:
    write(rule(not_examples=[{"text": "demo failure", "source": "t"}]))
    result = run("rules", "test", "--rules", "mine")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "rule       examples matched  missed  false hits",
        "demo-rule                 1       0           0",
        "total                     1       0           0",
    ]


# --------------------------------------------------------------------------- folders


def test_rule_folders_from_the_environment_skip_blank_entries_and_expand_the_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write(rule(title="From home"), folder="home/team")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEONDOCTOR_RULES", os.pathsep.join(["", "  ", "~/team"]))
    shown = json.loads(run("rules", "show", "--json", "demo-rule").stdout)
    assert shown["title"] == "From home"
    assert shown["origin"] == str(tmp_path / "home" / "team")
    monkeypatch.setenv("NEONDOCTOR_RULES", "~/nowhere")
    missing = run("rules", "list")
    assert missing.exit_code == 2
    assert missing.stderr == "neondoctor: error: NEONDOCTOR_RULES: ~/nowhere is not a directory\n"
