"""`neondoctor explain` and `neondoctor rules …` as a user runs them: input forms, output, exit codes, secrets."""

from __future__ import annotations

import io
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from neondoctor.cli import cli, use_color
from neondoctor.render.text import render_explain
from neondoctor.rules import load_rules

ROOT = Path(__file__).resolve().parent.parent
BUILTIN = load_rules(env={})
REFUSED = (
    'psql: error: connection to server at "localhost" (127.0.0.1), port 5999 failed: Connection refused\n'
    "\tIs the server running on that host and accepting TCP/IP connections?"
)
NO_MATCH = "ERROR:  division by zero (SQLSTATE 22012)"
SECRETS = ("Sup3r-S3cret-pw", "npg_8XyQwErTz1", "napi_abcdefghijklmnopqrstuvwxyz012345")


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.delenv("NEONDOCTOR_RULES", raising=False)
    monkeypatch.delenv("NEONDOCTOR_NO_CACHE", raising=False)
    monkeypatch.setenv("NEONDOCTOR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))  # parsed once per run
    monkeypatch.setenv("NO_COLOR", "1")


def run(*args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def write_rules(folder: Path, *rules: dict[str, object]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mine.yaml").write_text(yaml.safe_dump({"rules": list(rules)}, sort_keys=False))
    return folder


def my_rule(**changes: object) -> dict[str, object]:
    rule: dict[str, object] = {
        "id": "team-db-asleep",
        "layer": "server",
        "blame": "server",
        "title": "The team database is asleep",
        "priority": 90,
        "match": {"any": [r"team-db-[0-9]+ is asleep"]},
        "cause": "Our staging database sleeps at night.",
        "fix": ["Wake it with `make wake-db`."],
        "examples": [{"text": "team-db-7 is asleep", "source": "our staging"}],
    }
    rule.update(changes)
    return rule


# --------------------------------------------------------------------------- explain: output and exit codes


def test_a_matched_error_prints_title_excerpt_cause_fix_docs_and_the_live_check() -> None:
    rule = BUILTIN.by_id["tcp-connection-refused"]
    result = run("explain", REFUSED)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.splitlines()[0].startswith(rule.title) or f"1. {rule.title}" in out
    assert "[tcp-connection-refused]" in out
    assert '│ psql: error: connection to server at "localhost" (127.0.0.1), port 5999 failed: Connection refused' in out
    assert "Cause: " in out and "Fix:" in out and "  1. " in out
    for link in rule.docs:
        assert f"Docs: {link}" in out
    assert 'Check it live: neondoctor check "$DATABASE_URL"' in out
    assert result.stderr == ""
    assert "\x1b[" not in out


def test_unquoted_words_are_one_text() -> None:
    result = run("explain", "could", "not", "translate", "host", "name", '"db.invalid"', "to", "address:", "Name",
                 "or", "service", "not", "known")
    assert result.exit_code == 0, result.output
    assert "[dns-host-not-found]" in result.stdout


def test_json_contract_best_first() -> None:
    text = REFUSED + '\nFATAL:  password authentication failed for user "app"'
    result = run("explain", "--json", text)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert list(data) == ["schema", "answer", "matches", "sqlstates"]
    assert data["answer"]["id"] == "auth-password-failed" and data["answer"]["confidence"] == "high"
    ids = [m["id"] for m in data["matches"]]
    assert ids[:2] == ["auth-password-failed", "tcp-connection-refused"]
    first = data["matches"][0]
    assert {"id", "layer", "blame", "title", "cause", "fix", "docs", "excerpt"} <= set(first)
    assert isinstance(first["fix"], list) and isinstance(first["docs"], list)
    assert first["excerpt"] == 'FATAL:  password authentication failed for user "app"'
    assert first["layer"] == "auth" and first["line"] == 3 and first["captures"].get("user") == "app"


def test_nothing_matched_exits_1_with_the_next_step_and_the_sqlstate_class() -> None:
    result = run("explain", NO_MATCH)
    assert result.exit_code == 1
    assert "No rule matches this text." in result.stdout
    assert "SQLSTATE 22012: class 22, data exception" in result.stdout
    assert 'neondoctor check "$DATABASE_URL"' in result.stdout
    as_json = run("explain", "--json", NO_MATCH)
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout) == {
        "schema": "neondoctor.explain/1",
        "answer": None,
        "matches": [],
        "sqlstates": [
            {"code": "22012", "class": "22", "meaning": "data exception: a value the server could not accept"}
        ],
    }


def test_a_pasted_connection_string_points_to_the_url_command() -> None:
    result = run("explain", "postgresql://app:Sup3r-S3cret-pw@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb")
    assert result.exit_code == 1
    assert "neondoctor url" in result.stdout
    assert "Sup3r-S3cret-pw" not in result.stdout
    assert "neondoctor url" not in run("explain", NO_MATCH).stdout


@pytest.mark.parametrize("argv", [["explain"], ["explain", "-"], ["explain", "--file", "-"]])
def test_stdin_is_read_when_piped(argv: list[str]) -> None:
    result = run(*argv, input=REFUSED)
    assert result.exit_code == 0, result.output
    assert "[tcp-connection-refused]" in result.stdout


def test_file_input(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("starting\n" * 50 + REFUSED + "\n" + "GET / 200\n" * 50)
    result = run("explain", "--file", str(log), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["matches"][0]["line"] == 51


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["explain"], "", "nothing to explain: the input is empty"),
        (["explain", ""], None, "nothing to explain: the input is empty"),
        (["explain"], " \n\t\n", "nothing to explain: the input is empty"),
        (["explain", "--file", "/nonexistent/app.log"], None, "cannot read /nonexistent/app.log: No such file"),
        (["explain", "--file", "."], None, "cannot read .: Is a directory"),
        (["explain", "--file", "x.log", "some text"], None, "not both"),
        (["explain", "--rules", "/nonexistent/rules", REFUSED], None, "'/nonexistent/rules' does not exist"),
    ],
)
def test_usage_problems_are_one_line_and_exit_2(args: list[str], stdin: str | None, message: str) -> None:
    result = run(*args, input=stdin)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("neondoctor: error: ")
    assert message in result.stderr


def test_no_text_and_a_terminal_on_stdin_is_a_usage_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    from neondoctor.cli import UsageProblem, _explain_input

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    with pytest.raises(UsageProblem, match="pass the error text as an argument, with --file PATH, or on stdin"):
        _explain_input((), None)


def test_an_unreadable_file_is_a_usage_problem_even_when_the_suite_runs_as_root(tmp_path: Path) -> None:
    """Root reads a mode-0 file, so as root (CI) the CLI runs without the capabilities that allow it."""
    import shutil

    log = tmp_path / "secret.log"
    log.write_text(REFUSED)
    log.chmod(0)
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) drops root's file-permission override for this test"
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "neondoctor", "explain", "--file", str(log)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NEONDOCTOR_NO_CACHE": "1"},
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"neondoctor: error: cannot read {log}: Permission denied\n"


def test_a_directory_or_a_failing_read_is_a_usage_problem(tmp_path: Path) -> None:
    result = run("explain", "--file", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr == f"neondoctor: error: cannot read {tmp_path}: Is a directory\n"
    # /proc/self/mem opens fine, then the first read fails (EIO), even for root
    result = run("explain", "--file", "/proc/self/mem")
    assert result.exit_code == 2
    assert result.stderr == "neondoctor: error: cannot read /proc/self/mem: Input/output error\n"


def test_a_missing_env_rules_folder_is_a_usage_problem(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NEONDOCTOR_RULES", str(tmp_path / "gone"))
    result = run("explain", REFUSED)
    assert result.exit_code == 2
    assert "NEONDOCTOR_RULES" in result.stderr and "is not a directory" in result.stderr


def test_binary_input_gives_no_traceback() -> None:
    rng = random.Random(11)
    noise = bytes(rng.randrange(256) for _ in range(200_000))
    result = CliRunner().invoke(cli, ["explain"], input=noise + b"\n" + REFUSED.encode() + b"\n" + noise)
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "[tcp-connection-refused]" in result.stdout
    only_noise = CliRunner().invoke(cli, ["explain"], input=noise)
    assert only_noise.exit_code == 1
    assert "Traceback" not in only_noise.output


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("as_json", [False, True])
def test_secrets_in_the_pasted_text_never_reach_the_output(as_json: bool) -> None:
    password, neon_password, api_key = SECRETS
    text = (
        f"DATABASE_URL=postgresql://app:{password}@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb\n"
        f"psql: error: connection to server at \"db\" (10.0.0.5), port 5432 failed: FATAL:  password authentication "
        f"failed for user \"app\" (dsn: host=db password={neon_password} PGPASSWORD={neon_password})\n"
        f"curl -H 'Authorization: Bearer {api_key}' https://console.neon.tech/api/v2  # NEON_API_KEY={api_key}\n"
        f"{REFUSED} postgresql://app:{password}@db/app\n"
    )
    result = run("explain", *(["--json"] if as_json else []), text)
    assert result.exit_code == 0
    for secret in SECRETS:
        assert secret not in result.stdout
        assert secret not in result.stderr
    assert "****" in result.stdout


# --------------------------------------------------------------------------- user rules


def test_user_rules_are_used_and_override_built_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = write_rules(
        tmp_path / "mine",
        my_rule(),
        my_rule(id="tcp-connection-refused", title="Start the dev database", match={"any": ["Connection refused"]},
                layer="tcp", priority=50, examples=[{"text": "failed: Connection refused", "source": "laptop"}]),
    )
    result = run("explain", "--rules", str(mine), "team-db-3 is asleep")
    assert result.exit_code == 0
    assert "The team database is asleep  [team-db-asleep]" in result.stdout
    overridden = run("explain", "--rules", str(mine), REFUSED)
    assert "Start the dev database  [tcp-connection-refused]" in overridden.stdout
    monkeypatch.setenv("NEONDOCTOR_RULES", str(mine))
    assert "[team-db-asleep]" in run("explain", "team-db-3 is asleep").stdout


def test_broken_user_rules_are_skipped_with_a_warning(tmp_path: Path) -> None:
    mine = write_rules(tmp_path / "mine", my_rule(match={"any": ["team-db-( is asleep"]}))
    result = run("explain", "--rules", str(mine), REFUSED)
    assert result.exit_code == 0
    assert "[tcp-connection-refused]" in result.stdout
    assert result.stderr == "neondoctor: warning: skipped 1 broken rule(s); see 'neondoctor rules lint'\n"


# --------------------------------------------------------------------------- start-up


def test_explain_imports_neither_psycopg_nor_dnspython(tmp_path: Path) -> None:
    env = {**os.environ, "NEONDOCTOR_CACHE_DIR": str(tmp_path / "cache"), "NO_COLOR": "1"}
    env.pop("NEONDOCTOR_RULES", None)
    for _ in range(2):  # cold rules cache, then warm
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "neondoctor", "explain", REFUSED],
            capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import")}
        heavy = sorted(name for name in imported if re.match(r"(psycopg|psycopg_binary|dns|dotenv)(\.|$)", name))
        assert heavy == []
    assert "yaml" not in imported, "a warm run should read the rules cache, not YAML"


# --------------------------------------------------------------------------- colour


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR")
    assert use_color(Terminal()) is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_color(Terminal()) is False
    report = {"matches": BUILTIN.explain(REFUSED), "sqlstates": []}
    assert "\x1b[" in render_explain(report, color=True)
    assert "\x1b[" not in render_explain(report, color=False)


# --------------------------------------------------------------------------- rules commands


def test_rules_list_and_show() -> None:
    listed = run("rules", "list")
    assert listed.exit_code == 0
    assert listed.stdout.splitlines()[0].split() == ["id", "layer", "blame", "title"]
    assert any(line.startswith("tcp-connection-refused ") for line in listed.stdout.splitlines())
    assert f"{len(BUILTIN)} rules" in listed.stdout
    shown = run("rules", "show", "tcp-connection-refused")
    assert shown.exit_code == 0
    data = yaml.safe_load(shown.stdout)
    assert data["id"] == "tcp-connection-refused" and data["origin"] == "builtin"
    assert data["examples"] and data["match"]["any"]
    as_json = json.loads(run("rules", "show", "--json", "tcp-connection-refused").stdout)
    assert as_json["title"] == BUILTIN.by_id["tcp-connection-refused"].title
    unknown = run("rules", "show", "tcp-connection-refuse")
    assert unknown.exit_code == 2
    assert "no rule 'tcp-connection-refuse'; did you mean tcp-connection-refused" in unknown.stderr


def test_rules_list_shows_the_origin_of_user_rules(tmp_path: Path) -> None:
    mine = write_rules(tmp_path / "mine", my_rule())
    for args in (["rules", "list", "--rules", str(mine)], ["rules", "--rules", str(mine), "list"]):
        result = run(*args)
        assert result.exit_code == 0
        assert result.stdout.splitlines()[0].split() == ["id", "layer", "blame", "title", "origin"]
        row = next(line for line in result.stdout.splitlines() if line.startswith("team-db-asleep"))
        assert row.endswith(str(mine))


def test_rules_lint_exit_codes(tmp_path: Path) -> None:
    clean = run("rules", "lint")
    assert clean.exit_code == 0, clean.stdout
    assert clean.stdout.startswith(f"✓ {len(BUILTIN)} rules, no problems.")
    broken = write_rules(tmp_path / "broken", my_rule(layer="cloud", examples=[{"text": "nope", "source": "x"}]))
    result = run("rules", "lint", "--rules", str(broken))
    assert result.exit_code == 1
    assert "mine.yaml: team-db-asleep: unknown layer 'cloud'" in result.stdout
    assert "mine.yaml: team-db-asleep: example[1] does not match" in result.stdout
    assert "✗ 2 problems" in result.stdout


def test_rules_test_table_and_exit_codes(tmp_path: Path) -> None:
    passing = run("rules", "test")
    assert passing.exit_code == 0, passing.stdout
    header = passing.stdout.splitlines()[0]
    assert header.split() == ["rule", "examples", "matched", "missed", "false", "hits"]
    examples = sum(len(rule.examples) for rule in BUILTIN)
    assert re.search(rf"^total\s+{examples}\s+0\s+0$", passing.stdout, re.MULTILINE)
    failing = write_rules(
        tmp_path / "mine",
        my_rule(
            examples=[{"text": "team-db-1 is asleep", "source": "x"}, {"text": "team-db is asleep", "source": "x"}],
            not_examples=[{"text": "team-db-2 is asleep", "source": "x"}],
        ),
    )
    result = run("rules", "test", "--rules", str(failing))
    assert result.exit_code == 1
    assert re.search(r"^team-db-asleep\s+1\s+1\s+1$", result.stdout, re.MULTILINE)
    assert "team-db-asleep example[2] does not match: team-db is asleep" in result.stdout
    assert "team-db-asleep not_example[1] matches: team-db-2 is asleep" in result.stdout
