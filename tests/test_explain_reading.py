"""What `neondoctor explain` reads out of a paste: the excerpt and line it shows for a matched error once log
prefixes, JSON and HTML escapes, continuation lines, stack frames and multi-address attempts are dealt
with. One small team rule (no built-ins) keeps every run fast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from neondoctor.cli import cli

ALPHA = {
    "id": "team-alpha",
    "layer": "tcp",
    "blame": "user",
    "title": "Alpha",
    "priority": 50,
    "match": {"any": ["alpha failure(?P<rest>.*)"]},
    "cause": "Because.",
    "fix": ["Do this."],
    "examples": [{"text": "alpha failure", "source": "test"}],
}


pytestmark = pytest.mark.usefixtures("only_rules_written_here")


def explain(text: str | bytes, *rules: dict[str, Any]) -> dict[str, Any]:
    Path("team").mkdir(exist_ok=True)
    Path("team/r.yaml").write_text(yaml.safe_dump({"rules": list(rules or [ALPHA])}, sort_keys=False))
    result = CliRunner().invoke(cli, ["explain", "--json", "--rules", "team", "-"], input=text)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def excerpts(text: str | bytes, *rules: dict[str, Any]) -> list[tuple[str, int]]:
    return [(m["excerpt"], m["line"]) for m in explain(text, *rules)["matches"]]


@pytest.mark.parametrize(
    ("text", "excerpt"),
    [
        ("a | b | c | d | e | alpha failure", "e | alpha failure"),
        ("web-1  | 2026-03-02T10:41:07.001Z [123] alpha failure", "alpha failure"),
        ("<34>1 2026-03-02T10:41:07Z alpha failure", "alpha failure"),
        ("[pod/app-7d9/app] alpha failure", "alpha failure"),
        ("pod/app-7d9 app alpha failure", "alpha failure"),
        ("[10:41:07.123] alpha failure", "alpha failure"),
        ("myhost app[1234]: alpha failure", "alpha failure"),
        ("Jan  2 10:41:07 host app[12]: alpha failure", "alpha failure"),
        ("2026-03-02 10:41:07.311 UTC [68] alpha failure", "alpha failure"),
        ("[2026-03-02T10:41:07+01:00] alpha failure", "alpha failure"),
        (
            "alpha failure A&#1;B&#127;C&#9;D&#xd800;E&#1114112;F&#x10FFFF;G&#65;"
            "&amp;&apos;&gt;&nbsp;&lt;&quot;.&bogus;&#x;",
            "alpha failure A B C\tD E F\U0010ffffGA&'> <\".&bogus;&#x;",
        ),
        (
            r'{"msg":"alpha failure A\u0001B\u007fC\u0009D\ud800F\u0041G\/H\\I\"J\tK\rL"}',
            '{"msg":"alpha failure A B C\tD FAG/H\\I"J\tK',
        ),
        (r'{"log":"{\"msg\":\"alpha failure \\\"db\\\" nested\"}"}', '{"log":"{"msg":"alpha failure "db" nested"}"}'),
        (r"alpha failure \\n and \\u0041 stay", r"alpha failure \\n and \\u0041 stay"),
        ("alpha failure A&#11;B&#xDFFF;C&#xE000;D&#xDBFF;E&#10;F", "alpha failure A B C\ue000D E"),
        ("alpha failure & co &amp", "alpha failure & co &amp"),
        ("alpha failure ends in XX", "alpha failure ends in XX"),
    ],
)
def test_prefixes_and_escapes_are_read_through(text: str, excerpt: str) -> None:
    assert excerpts(text) == [(excerpt, 1)]


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbfERROR: alpha failure 1\n",
        "\ufeffERROR: alpha failure 1\r\n".encode("utf-16-le"),
        "\ufeffERROR: alpha failure 1\n".encode("utf-16-be"),
        b"\x1b[1;31mERROR\x1b[0m: alpha\x07 failure 1\x1b]0;title\x07\n",
    ],
    ids=["utf-8-bom", "utf-16-le", "utf-16-be", "ansi-and-bell"],
)
def test_a_byte_order_mark_colours_and_control_characters_are_dropped(data: bytes) -> None:
    assert excerpts(data) == [("ERROR: alpha failure 1", 1)]


BRAVO = {**ALPHA, "id": "team-bravo", "layer": "tls", "match": {"any": ["bravo failure"]}}
DETAILS = "".join(f"DETAIL: d{n}\n" for n in range(1, 12))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FATAL: x\nDETAIL: alpha failure 1", [("team-alpha", 1, "FATAL: x\nDETAIL: alpha failure 1", False)]),
        (
            "ERROR: head\n" + DETAILS[:66] + "DETAIL: alpha failure 1",
            [("team-alpha", 1, "ERROR: head\n" + DETAILS[:66] + "DETAIL: alpha failure 1", False)],
        ),
        (
            "ERROR: head\n" + DETAILS[:99] + "DETAIL: alpha failure 1",
            [("team-alpha", 3, DETAILS[11:99] + "DETAIL: alpha failure 1", False)],
        ),
        ("ERROR: alpha failure 1\n" + DETAILS, [("team-alpha", 1, "ERROR: alpha failure 1\n" + DETAILS[:87], False)]),
        (
            "ERROR: top\n    at foo (x.js:1:1)\nDETAIL: alpha failure 1",
            [("team-alpha", 3, "DETAIL: alpha failure 1", False)],
        ),
        ("\tat x\nalpha failure 1", [("team-alpha", 2, "alpha failure 1", False)]),
        ("\tDETAIL alpha failure 1", [("team-alpha", 1, "DETAIL alpha failure 1", False)]),
        ("    at connect (alpha failure 1.js:10:5)", []),
        ('  File "alpha failure 1.py", line 3, in x', []),
        (
            'Traceback (most recent call last):\n  File "app.py", line 3, in <module>\n    raise X("alpha failure 1")',
            [],
        ),
        (
            'Traceback (most recent call last):\n  File "<stdin>", line 1, in <module>\nAlphaError: alpha failure 1',
            [("team-alpha", 3, "AlphaError: alpha failure 1", False)],
        ),
        (
            "ERROR: alpha failure 1\nDETAIL: bravo failure",
            [
                ("team-alpha", 1, "ERROR: alpha failure 1\nDETAIL: bravo failure", False),
                ("team-bravo", 1, "ERROR: alpha failure 1\nDETAIL: bravo failure", False),
            ],
        ),
        (
            'connection to server at "a" (1.1.1.1), port 5432 failed: alpha failure 1 connection to server at "b" '
            "(2.2.2.2), port 5432 failed: bravo failure",
            [
                ("team-alpha", 1, 'connection to server at "a" (1.1.1.1), port 5432 failed: alpha failure 1', False),
                ("team-bravo", 1, 'connection to server at "b" (2.2.2.2), port 5432 failed: bravo failure', False),
            ],
        ),
        (
            'connection to server at "a" (1.1.1.1), port 5432: alpha failure 1 could not connect to server '
            "bravo failure",
            [
                (
                    "team-alpha",
                    1,
                    'connection to server at "a" (1.1.1.1), port 5432: alpha failure 1 could not connect to server '
                    "bravo failure",
                    False,
                ),
                (
                    "team-bravo",
                    1,
                    'connection to server at "a" (1.1.1.1), port 5432: alpha failure 1 could not connect to server '
                    "bravo failure",
                    False,
                ),
            ],
        ),
    ],
)
def test_the_block_read_around_an_error_line(text: str, expected: list[tuple[str, int, str, bool]]) -> None:
    matches = explain(text, ALPHA, BRAVO)["matches"]
    assert [(m["id"], m["line"], m["excerpt"], m["weak"]) for m in matches] == expected


@pytest.mark.parametrize(
    ("text", "weak"),
    [
        ('connection to server at "db" (::1), port 5432 failed: Network is unreachable alpha failure 1', True),
        ('connection to server at "db" (10.0.0.1), port 5432 failed: Network is unreachable alpha failure 1', False),
        ('connection to server at "::1", port 5432 failed: Cannot assign requested address alpha failure 1', True),
        (
            'could not connect to server: Network is unreachable\n\tIs the server running on host "db" (::1) and '
            "accepting alpha failure 1",
            True,
        ),
        (
            'could not connect to server: No route to host\n\tIs the server running on host "db" (10.1.1.1) and '
            "accepting alpha failure 1",
            False,
        ),
        ("connect ENETUNREACH 2001:db8::1:5432 - Local (:::0) alpha failure 1", True),
        ("connect EHOSTUNREACH 10.0.0.1:5432 alpha failure 1", False),
        ('  code: "alpha failure 1",', True),
        ("  errno: alpha failure 1", True),
        ("  reason: alpha failure 1", False),
    ],
)
def test_an_ipv6_attempt_without_a_route_or_a_dump_property_is_weak_evidence(text: str, weak: bool) -> None:
    match = explain(text)["matches"][0]
    assert (match["id"], match["weak"], match["confidence"]) == ("team-alpha", weak, "low" if weak else "medium")


def test_a_line_with_non_ascii_letters_is_tried_against_every_regex_of_the_block() -> None:
    """Case-insensitive matching folds more than str.lower() does (a long s 'ſ' matches 's'): the literal
    prefilter must not skip such a line."""
    folded = {**ALPHA, "id": "team-password", "match": {"any": ["password failed", "never printed"]}}
    text = "ERROR: alpha failure 1\nDETAIL: paſsword failed"
    assert [m["id"] for m in explain(text, ALPHA, folded)["matches"]] == ["team-alpha", "team-password"]
    many = "".join(f"ERROR: alpha failure {n}\nDETAIL: paſsword failed {n}\n" for n in range(100, 140))
    assert [m["id"] for m in explain(many, ALPHA, folded)["matches"]] == ["team-alpha", "team-password"]


def test_a_rule_without_literal_text_is_tried_on_every_line_and_lines_are_counted_past_wide_letters() -> None:
    bare = {**ALPHA, "id": "team-bare", "match": {"any": [r"\d\d\s\w+\s\d\d"]}}  # not one literal character
    text = "İstanbul says hello\nnothing here\nERROR: 12 x 34"
    assert excerpts(text, bare) == [("ERROR: 12 x 34", 3)]
    assert excerpts("İİ\nERROR: alpha failure 1") == [("ERROR: alpha failure 1", 2)]
    many = "".join(f"ERROR: alpha failure {n}\n" for n in range(100, 140)) + "ERROR: 12 x 34\n"
    assert excerpts(many, ALPHA, bare) == [("ERROR: alpha failure 100", 1), ("ERROR: 12 x 34", 41)]
