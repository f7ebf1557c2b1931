"""`neondoctor explain --file LOG` on logs of every size the reader treats differently: a paste, a few hundred
kilobytes (one block, scanned with the literal trie), and several megabytes (read in 1 MiB blocks, emptied by
the hyperscan sieve far from any literal, with and without it). The errors sit at known lines, some across a
block edge; the test asserts the line and excerpt each rule's match shows, worked out from how the log is built."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import neondoctor.sieve
from neondoctor import explain as explain_module
from neondoctor.cli import cli


def team_rule(rule_id: str, pattern: str, priority: int = 50, **extra: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "layer": "tcp",
        "blame": "user",
        "title": rule_id,
        "priority": priority,
        "match": {"any": [pattern], **extra},
        "cause": "Because.",
        "fix": ["Do this."],
        "examples": [{"text": "whatever", "source": "test"}],
    }


RULES = [
    team_rule("team-alpha", r"alpha failure (?P<n>\d+)"),
    team_rule("team-bravo", r"bravo failure"),
    team_rule("team-charlie", r"charlie failure"),
    team_rule("team-delta", r"delta failure"),
    team_rule("team-echo", r"echo failure", sqlstate=["53300"]),
    team_rule("team-code", r"never printed", priority=90, sqlstate=["57P01"]),
    team_rule("team-noise", r"noisy warning \w+", priority=5),
    team_rule("team-foxtrot", r"foxtrot failure"),
]


@pytest.fixture(autouse=True)
def team_rules(only_rules_written_here: Path) -> None:
    Path("team").mkdir()
    Path("team/r.yaml").write_text(yaml.safe_dump({"rules": RULES}, sort_keys=False))


def word(number: int) -> str:
    return "".join("abcdefghij"[int(digit)] for digit in str(number))


def filler(number: int) -> str:
    return f"web-1  | GET /api/items/{number:07d} 200 12ms"


class Log:
    """A log built line by line; each error remembers the line it starts on."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.size = 0

    def add(self, *lines: str) -> int:
        start = len(self.lines) + 1
        for line in lines:
            self.lines.append(line)
            self.size += len(line.encode()) + 1
        return start

    def fill_to(self, size: int) -> None:
        while self.size + len(filler(0)) + 1 <= size:
            self.add(filler(len(self.lines)))

    def data(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()


def explain_file(data: bytes) -> dict[str, tuple[int, str]]:
    Path("app.log").write_bytes(data)
    result = CliRunner().invoke(cli, ["explain", "--json", "--rules", "team", "--file", "app.log"])
    assert result.exit_code == 0, result.output
    return {m["id"]: (m["line"], m["excerpt"]) for m in json.loads(result.stdout)["matches"]}


def build(size: int) -> tuple[bytes, dict[str, tuple[int, str]]]:
    """Errors near the start, across each 1 MiB edge (head before it, literal in the continuation line after it,
    and a head whose continuation lines follow the edge), repeated copies, and one near the end."""
    log = Log()
    expected: dict[str, tuple[int, str]] = {}
    log.add(filler(0), filler(1))
    line = log.add("ERROR: alpha failure 7", "\tDETAIL: the first one")
    expected["team-alpha"] = (line, "ERROR: alpha failure 7\n\tDETAIL: the first one")
    for copy in range(5):
        log.add(filler(copy), "ERROR: alpha failure 7", "\tDETAIL: the first one")
    line = log.add(*(f"noisy warning {word(n)}" for n in range(1000, 1040)))  # enough lines for the literal index
    expected["team-noise"] = (line, "noisy warning baaa")
    edge = 1 << 20
    if size > edge:
        log.fill_to(edge - 60)
        line = log.add("FATAL: something odd happened here", "\tDETAIL: bravo failure across the edge")
        expected["team-bravo"] = (line, "FATAL: something odd happened here\n\tDETAIL: bravo failure across the edge")
        log.fill_to(2 * edge - 30)
        line = log.add("ERROR: charlie failure", "\tHINT: one", "\tHINT: two", "\tHINT: three")
        expected["team-charlie"] = (line, "ERROR: charlie failure\n\tHINT: one\n\tHINT: two\n\tHINT: three")
    else:
        log.fill_to(size // 2)
        line = log.add("FATAL: something odd happened here", "\tDETAIL: bravo failure in the middle")
        expected["team-bravo"] = (line, "FATAL: something odd happened here\n\tDETAIL: bravo failure in the middle")
    log.fill_to(size - 5400)
    line = log.add("\x1b[31mERROR:\x1b[0m foxtrot\x00 failure, in colour")
    expected["team-foxtrot"] = (line, "ERROR: foxtrot failure, in colour")
    line = log.add("pq: echo failure (SQLSTATE 53300)")
    expected["team-echo"] = (line, "pq: echo failure (SQLSTATE 53300)")
    line = log.add("Error: the server is going away (SQLSTATE 57P01)")
    expected["team-code"] = (line, "Error: the server is going away (SQLSTATE 57P01)")
    line = log.add("ERROR: delta failure at the end " + "y" * 5000)
    expected["team-delta"] = (line, ("ERROR: delta failure at the end " + "y" * 5000)[: explain_module.MAX_CANDIDATE])
    return log.data(), expected


@pytest.mark.parametrize("size", [20_000, 600_000, 2_500_000], ids=["paste", "one-block", "three-blocks"])
@pytest.mark.parametrize("sieve", [True, False], ids=["hyperscan", "text-scanner-only"])
def test_each_error_is_found_at_its_line_whatever_the_size(
    size: int, sieve: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not sieve:
        monkeypatch.setattr(neondoctor.sieve, "make_sieve", lambda *args: None)
    data, expected = build(size)
    assert len(data) <= size
    assert explain_file(data) == expected


def test_crlf_line_ends_and_a_cr_split_across_a_block_edge_keep_the_line_numbers() -> None:
    data, expected = build(2_500_000)
    crlf = data.replace(b"\n", b"\r\n")
    edge = explain_module.CHUNK
    shift = edge - 1 - crlf.rindex(b"\r\n", 0, edge)  # longer first line: the first read ends between \r and \n
    crlf = b"w" * shift + crlf
    assert crlf[edge - 1 : edge + 1] == b"\r\n"
    assert explain_file(crlf) == expected
    lone_cr = data.replace(b"\n", b"\r")
    assert explain_file(lone_cr) == expected


def test_a_line_longer_than_the_cap_is_cut_and_the_lines_after_it_keep_their_numbers() -> None:
    log = Log()
    log.add(filler(0))
    log.add("x" * (3 << 20) + " alpha failure 1 lost in a huge line")
    line = log.add("ERROR: delta failure after the huge line")
    found = explain_file(log.data())
    assert found == {"team-delta": (line, "ERROR: delta failure after the huge line")}


@pytest.mark.parametrize("size", ["paste", "big"])
def test_too_many_distinct_errors_are_cut_with_a_note(size: str) -> None:
    errors = [f"ERROR: alpha failure {n} for {word(n)}" for n in range(1000, 1050 + explain_module.MAX_CANDIDATES)]
    log = Log()
    if size == "big":
        log.fill_to(explain_module.SMALL + 1000)
    first = log.add(*errors)
    log.add("ERROR: delta failure after them all")
    Path("app.log").write_bytes(log.data())
    result = CliRunner().invoke(cli, ["explain", "--json", "--rules", "team", "--file", "app.log"])
    assert result.exit_code == 0
    assert result.stderr == "neondoctor: note: too many distinct error lines; only the first ones were explained\n"
    matches = json.loads(result.stdout)["matches"]
    assert [(m["id"], m["line"]) for m in matches] == [("team-alpha", first)]
    few = Log()
    few.add(*errors[:100])
    Path("app.log").write_bytes(few.data())
    assert CliRunner().invoke(cli, ["explain", "--rules", "team", "--file", "app.log"]).stderr == ""
