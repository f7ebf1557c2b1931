"""The rule engine on small fixture rules: loading, validation, overrides, cache, matching and ranking."""

from __future__ import annotations

import io
import json
import os
import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from neondoctor import explain as explain_module
from neondoctor import rules as rules_module
from neondoctor.cli import cli
from neondoctor.explain import explain_text, find_sqlstates, read_text_chunks, scan
from neondoctor.rules import RulesError, lint, load_for_explain, load_rules, required_literals

DATA = Path(__file__).parent / "data"
CORE = DATA / "rules" / "core"
OVERRIDE = DATA / "rules" / "override"
DROP = object()
REAL_BUILTIN_DIR = rules_module.builtin_dir


@pytest.fixture(autouse=True)
def engine_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The fixture rules stand in for the built-ins; no user folders, a private cache."""
    monkeypatch.setattr(rules_module, "builtin_dir", lambda: CORE)
    monkeypatch.delenv("NEONDOCTOR_RULES", raising=False)
    monkeypatch.delenv("NEONDOCTOR_NO_CACHE", raising=False)
    monkeypatch.setenv("NEONDOCTOR_CACHE_DIR", str(tmp_path / "cache"))


def rule(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "demo-rule",
        "layer": "tcp",
        "blame": "user",
        "title": "Demo",
        "match": {"any": [r"demo failure \d+"]},
        "cause": "Because.",
        "fix": ["Do this."],
        "examples": [{"text": "demo failure 42", "source": "engine test"}],
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not DROP}


def write(folder: Path, name: str, *items: dict[str, Any], raw: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(raw if raw is not None else yaml.safe_dump({"rules": list(items)}, sort_keys=False))
    return path


def problems_in(folder: Path) -> list[str]:
    return [str(problem) for problem in lint(load_rules([folder]))]


def ids(text: str, **kwargs: Any) -> list[str]:
    return [match["id"] for match in explain_text(text, load_rules(**kwargs)).matches]


# --------------------------------------------------------------------------- validation

PROBLEMS = {
    "unknown key": (rule(colour="red"), "demo-rule: unknown key 'colour'"),
    "unknown match key": (rule(match={"any": ["demo failure"], "all": ["x"]}), "unknown key 'match.all'"),
    "unknown example key": (
        rule(examples=[{"text": "demo failure 1", "source": "t", "note": "x"}]),
        "unknown key 'note' in examples[1]",
    ),
    "missing id": (rule(id=DROP), "rule #1: missing 'id'"),
    "missing title": (rule(title=DROP), "demo-rule: missing 'title'"),
    "missing cause": (rule(cause=DROP), "demo-rule: missing 'cause'"),
    "missing layer": (rule(layer=DROP), "demo-rule: missing 'layer'"),
    "missing fix": (rule(fix=DROP), "'fix' must be a non-empty list of steps"),
    "empty fix": (rule(fix=[]), "'fix' must be a non-empty list of steps"),
    "missing match": (rule(match=DROP), "missing 'match'"),
    "empty match.any": (rule(match={"any": []}), "'match.any' must be a non-empty list of regexes"),
    "bad regex": (rule(match={"any": ["demo (failure"]}), "match.any[1] is not a valid regex: missing ), unterminated"),
    "bad unless regex": (rule(match={"any": ["demo failure"], "unless": ["[oops"]}), "match.unless[1] is not a valid"),
    "unknown layer": (rule(layer="network"), "unknown layer 'network'"),
    "unknown blame": (rule(blame="nobody"), "unknown blame 'nobody'"),
    "id not kebab-case": (rule(id="Demo_Rule"), "Demo_Rule: id must be kebab-case"),
    "id with double hyphen": (rule(id="demo--rule"), "demo--rule: id must be kebab-case"),
    "no examples": (rule(examples=DROP), "demo-rule: no examples"),
    "empty examples": (rule(examples=[]), "demo-rule: no examples"),
    "example without source": (rule(examples=[{"text": "demo failure 1"}]), "examples[1] has no 'source'"),
    "example not matching": (
        rule(examples=[{"text": "something else", "source": "t"}]),
        "demo-rule: example[1] does not match",
    ),
    "not_example matching": (
        rule(not_examples=[{"text": "demo failure 7", "source": "t"}]),
        "demo-rule: not_example[1] matches",
    ),
    "priority out of range": (rule(priority=101), "priority must be an integer from 0 to 100, not 101"),
    "priority not a number": (rule(priority="high"), "priority must be an integer"),
    "sqlstate read as a number": (
        rule(match={"any": ["demo failure"], "sqlstate": [53300]}),
        "SQLSTATE 53300 is read by YAML as a number; quote it ('53300')",
    ),
    "sqlstate malformed": (rule(match={"any": ["demo failure"], "sqlstate": ["5330"]}), "'5330' is not a SQLSTATE"),
    "regex without a literal": (
        rule(match={"any": [r"\d+ \w+ \d+"]}, examples=[{"text": "12 ab 34", "source": "t"}]),
        "match.any[1] has no literal text of 3+ characters",
    ),
    "regex matching the empty string": (rule(match={"any": ["(?:demo)?"]}), "match.any[1] matches the empty string"),
}


@pytest.mark.parametrize("case", list(PROBLEMS))
def test_lint_reports_the_problem_with_file_and_rule_id(tmp_path: Path, case: str) -> None:
    raw, expected = PROBLEMS[case]
    write(tmp_path / "user", "mine.yaml", raw)
    problems = problems_in(tmp_path / "user")
    assert any("mine.yaml: " in p and expected in p for p in problems), problems


def test_clean_rules_have_no_problems(tmp_path: Path) -> None:
    write(
        tmp_path / "user",
        "mine.yaml",
        rule(),
        rule(id="demo-other", match={"any": ["other failure"]}, examples=[{"text": "other failure", "source": "t"}]),
    )
    assert problems_in(tmp_path / "user") == []


def test_a_fatal_problem_keeps_only_that_rule_out(tmp_path: Path) -> None:
    write(tmp_path / "user", "mine.yaml", rule(match={"any": ["demo (failure"]}), rule(id="demo-good"))
    ruleset = load_rules([tmp_path / "user"])
    assert "demo-rule" not in ruleset.by_id
    assert "demo-good" in ruleset.by_id
    assert [p.rule_id for p in ruleset.skipped] == ["demo-rule"]


def test_an_example_claimed_first_by_a_higher_ranked_rule_is_a_problem(tmp_path: Path) -> None:
    generic = rule(
        id="demo-generic",
        priority=10,
        match={"any": [r"port \d+ failed"]},
        examples=[{"text": 'connection to server at "h", port 5 failed: Connection refused', "source": "t"}],
    )
    write(tmp_path / "user", "mine.yaml", generic)
    problems = problems_in(tmp_path / "user")
    assert problems == [
        f"{rules_module.display_path(tmp_path / 'user' / 'mine.yaml')}: demo-generic: example[1] matches, but "
        "'tcp-connection-refused' (priority 50) ranks first; this rule has priority 10"
    ]


def test_duplicate_ids_in_one_folder_are_a_problem_and_the_first_wins(tmp_path: Path) -> None:
    write(tmp_path / "user", "a.yaml", rule(title="First"))
    write(tmp_path / "user", "b.yaml", rule(title="Second"))
    ruleset = load_rules([tmp_path / "user"])
    assert ruleset.by_id["demo-rule"].title == "First"
    assert any("b.yaml: demo-rule: duplicate id (also in" in str(p) for p in ruleset.problems)


def test_yaml_errors_are_reported_per_file(tmp_path: Path) -> None:
    write(tmp_path / "user", "broken.yaml", raw="rules:\n  - id: x\n   layer: tcp\n")
    write(tmp_path / "user", "list.yaml", raw="- id: x\n")
    duplicated = yaml.safe_dump({"rules": [rule()]}, sort_keys=False) + "  fix: [again]\n"
    write(tmp_path / "user", "dupkey.yaml", raw=duplicated)
    problems = problems_in(tmp_path / "user")
    assert any("broken.yaml: not valid YAML" in p for p in problems), problems
    assert any("list.yaml: expected a top-level 'rules:' list" in p for p in problems), problems
    assert any("dupkey.yaml: duplicate key 'fix'" in p for p in problems), problems


# --------------------------------------------------------------------------- folders and overrides


def test_user_rules_override_built_ins_by_id(tmp_path: Path) -> None:
    ruleset = load_rules([OVERRIDE])
    refused = ruleset.by_id["tcp-connection-refused"]
    assert refused.title == "Refused (our own wording)"
    assert refused.origin == str(OVERRIDE)
    assert "team-pgbouncer-down" in ruleset.by_id
    assert ruleset.problems == []
    assert lint(ruleset) == []


def test_env_folders_load_before_cli_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "env", "r.yaml", rule(title="From the environment"))
    write(tmp_path / "cli", "r.yaml", rule(title="From --rules"))
    write(tmp_path / "env2", "r.yaml", rule(id="demo-env-two"))
    monkeypatch.setenv("NEONDOCTOR_RULES", os.pathsep.join([str(tmp_path / "env"), "", str(tmp_path / "env2")]))
    ruleset = load_rules([tmp_path / "cli"])
    assert ruleset.by_id["demo-rule"].title == "From --rules"
    assert "demo-env-two" in ruleset.by_id
    monkeypatch.setenv("NEONDOCTOR_RULES", str(tmp_path / "env"))
    assert load_rules().by_id["demo-rule"].title == "From the environment"


def test_a_missing_rule_folder_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RulesError, match=r"--rules: .*nowhere is not a directory"):
        load_rules([tmp_path / "nowhere"])
    monkeypatch.setenv("NEONDOCTOR_RULES", str(tmp_path / "gone"))
    with pytest.raises(RulesError, match=r"NEONDOCTOR_RULES: .*gone is not a directory"):
        load_rules()


def test_builtin_rules_come_from_the_checkout_in_an_editable_install() -> None:
    assert REAL_BUILTIN_DIR() == Path(__file__).resolve().parent.parent / "rules"


# --------------------------------------------------------------------------- cache


def test_the_cache_serves_a_second_load_and_follows_edits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "user", "r.yaml", rule(title="One"))
    first = load_for_explain([tmp_path / "user"])
    assert first.by_id["demo-rule"].title == "One"
    assert list((tmp_path / "cache").glob("rules-*.json"))
    real_load = rules_module._load
    monkeypatch.setattr(rules_module, "_load", lambda *a: pytest.fail("the cache was not used"))
    cached = load_for_explain([tmp_path / "user"])
    assert cached.by_id["demo-rule"].title == "One"
    assert [m["id"] for m in cached.explain("demo failure 9")] == ["demo-rule"]
    monkeypatch.setattr(rules_module, "_load", real_load)
    path.write_text(yaml.safe_dump({"rules": [rule(title="Two, longer")]}))
    assert load_for_explain([tmp_path / "user"]).by_id["demo-rule"].title == "Two, longer"


def test_a_corrupt_cache_or_no_cache_falls_back_to_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_for_explain()
    for cache in (tmp_path / "cache").glob("rules-*.json"):
        cache.write_text("{not json")
    assert "auth-password-failed" in load_for_explain().by_id
    monkeypatch.setenv("NEONDOCTOR_NO_CACHE", "1")
    monkeypatch.setenv("NEONDOCTOR_CACHE_DIR", str(tmp_path / "other"))
    assert "auth-password-failed" in load_for_explain().by_id
    assert not (tmp_path / "other").exists()


# --------------------------------------------------------------------------- literal prefilter


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"password authentication failed for user ['\"](?P<u>[^'\"]+)", ["password authentication failed for user "]),
        (r"(?:failed|could not connect to server): Connection refused", [": connection refused"]),
        (r"\bECONNREFUSED\b", ["econnrefused"]),
        (r"(?:timeout expired|timed out)", ["d out", "out expired"]),
        (r"(?:foo|barbaz)\s+quux", ["quux"]),
        (r"Can't reach (?:database )?server", ["can't reach "]),
        (r"\d+", None),
        (r"(?:a|\d)bc", ["bc"]),
    ],
)
def test_required_literals(pattern: str, expected: list[str] | None) -> None:
    assert required_literals(pattern) == expected


def test_every_match_contains_one_of_its_rules_literals() -> None:
    """The prefilter may only skip lines a regex cannot match: check it on every example we have."""
    ruleset = load_rules()
    texts = [ex["text"] for r in ruleset for ex in [*r.examples, *r.not_examples]]
    builtin_rules = rules_module._load(*_builtin_dirs())
    texts += [ex["text"] for r in builtin_rules for ex in [*r.examples, *r.not_examples]]
    for candidate_rule in [*ruleset, *builtin_rules]:
        for index, pattern in enumerate(candidate_rule.any):
            literals = candidate_rule.literals[index]
            for text in texts:
                if re.search(pattern, text, re.IGNORECASE | re.MULTILINE):
                    assert literals is not None and any(lit in text.lower() for lit in literals), (pattern, text)


def _builtin_dirs() -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    dirs = [("builtin", Path(__file__).resolve().parent.parent / "rules")]
    return dirs, rules_module._files(dirs)


# --------------------------------------------------------------------------- matching and ranking


def test_matching_is_case_insensitive_and_captures_named_groups() -> None:
    matches = explain_text('FATAL:  PASSWORD AUTHENTICATION FAILED FOR USER "Alice"', load_rules()).matches
    assert matches[0]["id"] == "auth-password-failed"
    assert matches[0]["captures"] == {"user": "Alice"}
    assert set(matches[0]) >= {"id", "layer", "blame", "title", "cause", "fix", "docs", "excerpt"}


def test_priority_ranks_the_specific_rule_first() -> None:
    text = 'server closed the connection unexpectedly\nFATAL:  password authentication failed for user "a"'
    assert ids(text) == ["auth-password-failed", "server-connection-closed-unexpectedly"]


def test_an_ipv6_unreachable_attempt_does_not_hide_the_ipv4_error() -> None:
    text = (
        'psql: error: connection to server at "localhost" (::1), port 5432 failed: Network is unreachable\n'
        "\tIs the server running on that host and accepting TCP/IP connections?\n"
        'connection to server at "localhost" (127.0.0.1), port 5432 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?\n"
    )
    assert ids(text) == ["tcp-connection-refused", "tcp-network-unreachable"]
    ipv4_only = text.replace("(::1)", "(10.0.0.1)")
    assert ids(ipv4_only) == ["tcp-network-unreachable", "tcp-connection-refused"]


def test_attempts_printed_on_one_line_are_split() -> None:
    text = (
        "ERROR:  password authentication failed for user 'alex' connection to server at "
        '"ep-billowing-fun-123456.us-west-2.aws.neon.tech" (12.345.67.89), port 5432 failed: Connection refused'
    )
    matches = explain_text(text, load_rules()).matches
    assert [m["id"] for m in matches] == ["auth-password-failed", "tcp-connection-refused"]
    assert matches[1]["excerpt"].startswith("connection to server at")


def test_the_deepest_cause_gives_the_excerpt_and_wins_ties() -> None:
    java = (
        "java.lang.RuntimeException: something broke\n"
        "\tat com.example.App.main(App.java:10)\n"
        "Caused by: java.io.IOException: something broke\n"
        "\tat com.example.Db.open(Db.java:3)\n"
    )
    matches = explain_text(java, load_rules()).matches
    assert [m["id"] for m in matches] == ["client-unknown-java-exception"]
    assert matches[0]["excerpt"] == "Caused by: java.io.IOException: something broke"
    assert matches[0]["line"] == 3


def test_in_a_python_exception_chain_the_first_exception_is_the_root_cause() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "app.py", line 3, in <module>\n'
        "    connect()\n"
        'psycopg2.OperationalError: FATAL:  password authentication failed for user "inner"\n'
        "\n"
        "The above exception was the direct cause of the following exception:\n"
        "\n"
        "Traceback (most recent call last):\n"
        '  File "app.py", line 9, in <module>\n'
        "    main()\n"
        'django.db.utils.OperationalError: FATAL:  password authentication failed for user "outer"\n'
    )
    result = explain_text(text, load_rules())
    assert [c.depth for c in result.candidates] == [0, 0, -1, -1]
    assert result.matches[0]["captures"] == {"user": "inner"}


def test_sqlstate_alone_matches_below_text_matches_and_confirms_text_matches() -> None:
    matches = explain_text("pq: FATAL: sorry, too many clients already (SQLSTATE 28P01)", load_rules()).matches
    assert [(m["id"], m["sqlstate"]) for m in matches] == [
        ("slots-too-many-clients", None),
        ("auth-password-failed", "28P01"),
    ]
    # a specific SQLSTATE says more than a generic text rule (a lower confidence band) around it
    matches = explain_text("pq: server closed the connection unexpectedly (SQLSTATE 53300)", load_rules()).matches
    assert [(m["id"], m["sqlstate"]) for m in matches] == [
        ("slots-too-many-clients", "53300"),
        ("server-connection-closed-unexpectedly", None),
    ]
    confirmed = explain_text('FATAL:  password authentication failed for user "a"\ncode: "28P01"', load_rules())
    assert confirmed.matches[0]["sqlstate"] == "28P01"
    assert confirmed.sqlstates == ["28P01"]


def test_unless_vetoes_a_match() -> None:
    assert ids("pgbouncer says: sorry, too many clients already") == []
    assert ids("FATAL:  sorry, too many clients already") == ["slots-too-many-clients"]


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("SQLSTATE[08006] [7] connection to server failed", ["08006"]),
        ("failed to connect (SQLSTATE 28P01)", ["28P01"]),
        ("psycopg.OperationalError (sqlstate=28P01)", ["28P01"]),
        ("  code: '28P01',", ["28P01"]),
        ('{"message":"x","code":"42P01"}', ["42P01"]),
        ("SQL state [3D000]; error code [0]", ["3D000"]),
        ("SQL Error: 0, SQLState: 53300", ["53300"]),
        ('psql: error: FATAL:  28P01: password authentication failed for user "a"', ["28P01"]),
        ('asyncpg.exceptions.InvalidPasswordError: password authentication failed for user "a"', ["28P01"]),
        ('psycopg.errors.InvalidCatalogName: database "x" does not exist', ["3D000"]),
        ("Error { kind: Db, code: SqlState(E57P01) }", ["57P01"]),
        ("  code: 'EPIPE',", []),
        ("  code: 'E2BIG',", []),
        ("exit code: 12345", []),
        ("code=ABCDE", []),
    ],
)
def test_sqlstates_in_every_driver_form(text: str, codes: list[str]) -> None:
    assert find_sqlstates(text) == codes


@pytest.mark.parametrize("path", ["small", "big"])
def test_http_status_codes_are_not_sqlstate_candidates_but_sqlstates_are(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path == "big":
        monkeypatch.setattr(explain_module, "SMALL", 0)
    lines = [f'{{"level":"info","path":"/items/{n}","code":200,"ms":{n}}}' for n in range(3000)]
    lines.insert(1500, '{"level":"error","msg":"could not wake the compute","code":"53300"}')
    result = explain_text("\n".join(lines), load_rules())
    assert [c.line for c in result.candidates] == [1501]
    assert result.sqlstates == ["53300"]
    assert [m["id"] for m in result.matches] == ["slots-too-many-clients"]


def test_a_retry_storm_in_a_big_log_is_read_a_few_times_not_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(explain_module, "SMALL", 0)
    storm = "".join(
        f"2026-03-02T10:41:{n % 60:02d}Z web-1  | Error: connect ECONNREFUSED 127.0.0.1:{5000 + n}\n"
        f"web-1  | Caused by: java.io.IOException: something broke\n"
        for n in range(2000)
    )
    storm += 'FATAL:  password authentication failed for user "late"\n'
    scanner = scan(read_text_chunks(io.BytesIO(storm.encode())), load_rules().literals())
    assert scanner.repeats == 2 * (2000 - explain_module.REPEATS)  # the Caused by copies are not read either
    refused = [c for c in scanner.candidates if "ECONNREFUSED" in c.text]
    assert [c.line for c in refused] == [1, 3, 5]
    assert scanner._chain_depth == 1998  # every Caused by after the last read "Error:" line (5) counted
    matches = explain_module._rank(scanner, load_rules()).matches
    assert [m["id"] for m in matches] == [
        "auth-password-failed",
        "tcp-connection-refused",
        "client-unknown-java-exception",
    ]


# --------------------------------------------------------------------------- input handling


LOG = (
    "2026-03-02T10:41:07.001Z web-1  | started\n"
    'web-1  | psql: error: connection to server at "db" (::1), port 5432 failed: Network is unreachable\n'
    "web-1  | \tIs the server running on that host and accepting TCP/IP connections?\n"
    'web-1  | connection to server at "db" (172.18.0.2), port 5432 failed: Connection refused\n'
    "web-1  | \tIs the server running on that host and accepting TCP/IP connections?\n"
    + "".join(f"web-1  | GET /item/{n} 200\n" for n in range(40))
    + 'db-1  | 2026-03-02 10:41:07.311 UTC [68] FATAL:  password authentication failed for user "app"\n'
    + "db-1  | 2026-03-02 10:41:07.311 UTC [68] DETAIL:  Connection matched pg_hba.conf line 99\n"
    + "".join(f"web-1  | GET /item/{n} 200\n" for n in range(40))
    + "web-1  | Caused by: java.io.IOException: something broke\n"
)


def _candidates(data: bytes, chunk_size: int, small: int | None = None) -> list[tuple[str, int, int]]:
    literals = load_rules().literals()
    if small is not None:
        original = explain_module.SMALL
        explain_module.SMALL = small
    try:
        scanner = scan(read_text_chunks(io.BytesIO(data), chunk_size=chunk_size), literals)
    finally:
        if small is not None:
            explain_module.SMALL = original
    return [(c.text, c.line, c.depth) for c in scanner.candidates]


def test_blocks_are_the_same_whatever_the_chunk_size_and_scan_path() -> None:
    data = LOG.encode()
    expected = _candidates(data, 1 << 20)
    assert [line for _, line, _ in expected] == [2, 4, 46, 88]
    assert expected[0][0].startswith("psql: error:") and expected[0][0].endswith("TCP/IP connections?")
    assert expected[2][0] == (
        'FATAL:  password authentication failed for user "app"\nDETAIL:  Connection matched pg_hba.conf line 99'
    )
    for chunk_size in (1, 7, 64, 333):
        assert _candidates(data, chunk_size) == expected, chunk_size
        assert _candidates(data, chunk_size, small=0) == expected, chunk_size


def test_huge_lines_are_capped_and_do_not_hide_later_errors() -> None:
    data = b"x" * 300_000 + b" Connection refused\n" + b"y" * 200_000 + b"\nFATAL:  sorry, too many clients already\n"
    chunks = list(read_text_chunks(io.BytesIO(data), chunk_size=4096, max_line=65536))
    assert max(len(line) for chunk in chunks for line in chunk.split("\n")) <= 65536
    result = explain_text(data.decode(), load_rules())
    assert [m["id"] for m in result.matches] == ["slots-too-many-clients"]
    assert result.lines == 3


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 4096])
def test_crlf_and_lone_cr_end_lines_whatever_the_reads(chunk_size: int) -> None:
    data = b"progress 10%\rprogress 90%\r\nFATAL:  sorry, too many clients already\r\nnext\r"
    text = "".join(read_text_chunks(io.BytesIO(data), chunk_size=chunk_size))
    assert text == "progress 10%\nprogress 90%\nFATAL:  sorry, too many clients already\nnext\n"


def test_binary_garbage_ansi_crlf_nul_and_utf16_are_read() -> None:
    rng = random.Random(5)
    garbage = bytes(rng.randrange(256) for _ in range(50_000)).replace(b"\n", b"")
    data = garbage + b'\n\x1b[31mFATAL:  pass\x00word authentication failed for user "a"\x1b[0m\r\n' + garbage
    result = explain_module.explain_stream(io.BytesIO(data), load_rules())
    assert [m["id"] for m in result.matches] == ["auth-password-failed"]
    assert result.matches[0]["excerpt"] == 'FATAL:  password authentication failed for user "a"'
    utf16 = "\ufeffFATAL:  sorry, too many clients already\r\n".encode("utf-16-le")
    assert [m["id"] for m in explain_module.explain_stream(io.BytesIO(utf16), load_rules()).matches] == [
        "slots-too-many-clients"
    ]


def test_json_log_lines_are_unescaped_into_their_attempts() -> None:
    line = (
        '{"level":"error","msg":"connection to server at \\"db\\" (::1), port 5432 failed: Network is unreachable'
        "\\n\\tIs the server running on that host and accepting TCP/IP connections?\\nconnection to server at "
        '\\"db\\" (10.1.1.1), port 5432 failed: FATAL:  password authentication failed for user \\"app\\"\\n"}'
    )
    matches = explain_text(line, load_rules()).matches
    assert [m["id"] for m in matches] == ["auth-password-failed", "tcp-network-unreachable"]
    assert matches[0]["captures"] == {"user": "app"}


@pytest.mark.parametrize(
    ("secret_text", "secret"),
    [
        ("postgresql://app:Sup3rS3cret@db.example/app", "Sup3rS3cret"),
        ("host=db password=Sup3rS3cret user=app", "Sup3rS3cret"),
        ("PGPASSWORD=Sup3rS3cret psql", "Sup3rS3cret"),
        ("NEON_API_KEY napi_abcdefghijklmnop1234567890", "napi_abcdefghijklmnop1234567890"),
    ],
)
def test_excerpts_are_redacted(secret_text: str, secret: str) -> None:
    text = f'{secret_text} FATAL:  password authentication failed for user "app"'
    matches = explain_text(text, load_rules()).matches
    assert matches and secret not in repr(matches)
    assert "****" in matches[0]["excerpt"]


def test_a_password_seen_in_the_input_is_hidden_wherever_it_appears() -> None:
    text = (
        "failed: Connection refused (postgresql://app:Sup3rS3cret@db.example/app)\n"
        'FATAL:  password authentication failed for user "Sup3rS3cret"\n'
    )
    matches = explain_text(text, load_rules()).matches
    assert {m["id"] for m in matches} == {"auth-password-failed", "tcp-connection-refused"}
    assert "Sup3rS3cret" not in repr(matches)


def test_hint_is_filled_from_captures_and_checked_by_lint(tmp_path: Path) -> None:
    from neondoctor.rules import format_hint

    (tmp_path / "hints.yaml").write_text(
        """rules:
  - id: hinted
    layer: auth
    blame: user
    title: Hinted
    hint: "no role '{user}'"
    match:
      any: ['role "(?P<user>[^"]+)" is gone']
    cause: c
    fix: [f]
    examples:
      - text: 'FATAL:  role "ghost" is gone'
        source: fixture
  - id: bad-hint
    layer: auth
    blame: user
    title: Bad hint
    hint: "{nosuchgroup}"
    match:
      any: ['bad hint here']
    cause: c
    fix: [f]
    examples:
      - text: 'bad hint here'
        source: fixture
"""
    )
    result = CliRunner().invoke(cli, ["rules", "--rules", str(tmp_path), "lint"])
    assert result.exit_code == 1
    assert "bad-hint" in result.stdout and "'hint'" in result.stdout
    explained = CliRunner().invoke(
        cli,
        ["explain", "--json", "--rules", str(tmp_path), 'FATAL:  role "ghost" is gone'],
        env={"NEONDOCTOR_NO_CACHE": "1"},
    )
    match = json.loads(explained.stdout)["matches"][0]
    assert match["id"] == "hinted" and match["hint"] == "no role 'ghost'"
    assert format_hint("{user}", {}) is None
