"""Confidence, the runner-up and guesses, as a user sees them: the words, the JSON and the exit code.

Confidence comes from data: the rule's priority band (rules/engine.json), a SQLSTATE-only match, and how many
rules of the same layer agree. A low one is worded as a guess and ends with the check command; text with
nothing of a connection error in it still gets "No rule matches" and exit 1.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from neondoctor.cli import cli
from neondoctor.explain import confidence, tables

CHECK = 'neondoctor check "$DATABASE_URL"'
PSQL_PASSWORD = (  # psql 15.18 against PostgreSQL 15.18, neondoctor lab (rules/auth.yaml)
    'psql: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed '
    'for user "alice"'
)
JDBC_EOF = (  # pgjdbc 42.5.5, neondoctor lab (rules/tcp.yaml, tcp-could-not-connect-generic, priority 20)
    "org.postgresql.util.PSQLException: The connection attempt failed.\nCaused by: java.io.EOFException"
)
ASYNCPG_PASSWORD_CLASS_ONLY = "asyncpg.exceptions.InvalidPasswordError"
ASYNCPG_MISSING_DATABASE_CLASS_ONLY = "asyncpg.exceptions.InvalidCatalogNameError"
NOTHING_LIKE_A_CONNECTION_ERROR = {
    # npm 10.8 (Node 20.20.2) `npm run migrate` in a package without that script, neondoctor lab
    "npm-missing-script": 'npm error Missing script: "migrate"\nnpm error\nnpm error To see a list of scripts, run:\n'
    "npm error   npm run\n",
    # Python 3.11.7 `python -c "import os; os.environ['DATABASE_URL']"` with the variable unset, neondoctor lab
    "python-keyerror": 'Traceback (most recent call last):\n  File "<string>", line 1, in <module>\n'
    '  File "<frozen os>", line 679, in __getitem__\nKeyError: \'DATABASE_URL\'\n',
    # the 502 page Python's http.server sends (its own DEFAULT_ERROR_MESSAGE template)
    "http-502-page": http.server.DEFAULT_ERROR_MESSAGE
    % {"code": 502, "message": "Bad Gateway", "explain": "Invalid responses from another server/proxy."},
}


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.delenv("NEONDOCTOR_RULES", raising=False)
    monkeypatch.setenv("NEONDOCTOR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))  # parsed once per run
    monkeypatch.setenv("NO_COLOR", "1")


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def as_json(*args: str) -> tuple[int, dict[str, object]]:
    result = run("explain", "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def test_the_bands_come_from_the_engine_tables() -> None:
    bands = tables()["bands"]
    assert bands == sorted(bands, reverse=True) and bands[-1][0] == 0
    assert confidence(90, text=True, weak=False, agree=0) == "high"
    assert confidence(40, text=True, weak=False, agree=0) == "medium"
    assert confidence(20, text=True, weak=False, agree=0) == "low"
    assert confidence(20, text=True, weak=False, agree=1) == "medium"
    assert confidence(90, text=False, weak=False, agree=0) == "medium"
    assert confidence(20, text=False, weak=True, agree=0) == "low"


def test_a_specific_rule_is_a_confident_answer() -> None:
    code, data = as_json(PSQL_PASSWORD)
    answer = data["answer"]
    assert code == 0
    assert answer["id"] == "auth-password-failed" and answer["confidence"] == "high"
    assert answer["guess"] is False and answer["next_step"] is None
    assert data["matches"][0]["confidence"] == "high"
    out = run("explain", PSQL_PASSWORD).stdout
    assert "confidence high" in out and "a guess" not in out


def test_a_sqlstate_only_match_is_one_level_lower() -> None:
    code, data = as_json(ASYNCPG_MISSING_DATABASE_CLASS_ONLY)
    assert code == 0
    top = data["matches"][0]
    assert top["id"] == "database-does-not-exist" and top["sqlstate"] == "3D000"
    assert top["confidence"] == "medium" and top["matched"] == "SQLSTATE 3D000"


def test_a_specific_sqlstate_outranks_a_generic_signal_that_matched_the_text_and_agrees_with_it() -> None:
    code, data = as_json(ASYNCPG_PASSWORD_CLASS_ONLY)
    assert code == 0
    assert [m["id"] for m in data["matches"]] == ["auth-password-failed", "signal-authentication"]
    assert data["matches"][0]["confidence"] == "high" and data["matches"][0]["matched"] == "SQLSTATE 28P01"


def test_a_generic_rule_is_worded_as_a_guess_and_ends_with_the_check_command() -> None:
    result = run("explain", JDBC_EOF)
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "Most likely a tcp problem (a guess from: The connection attempt failed.)"
    assert "confidence low" in result.stdout
    assert lines[-1].endswith(CHECK)
    _code, data = as_json(JDBC_EOF)
    assert data["answer"]["guess"] is True and data["answer"]["next_step"] == CHECK
    assert data["answer"]["guess_from"] == "The connection attempt failed."


def test_rules_of_one_layer_that_agree_raise_the_confidence(tmp_path: Path) -> None:
    folder = write_rules(
        tmp_path / "rules",
        rule("team-eof-generic", "tcp", 20, r"java\.io\.EOFException"),
    )
    _code, data = as_json("--rules", str(folder), JDBC_EOF)
    by_id = {m["id"]: m for m in data["matches"]}
    assert by_id["tcp-could-not-connect-generic"]["agree"] == 1
    assert by_id["tcp-could-not-connect-generic"]["confidence"] == "medium"
    assert data["answer"]["guess"] is False


def test_a_close_runner_up_of_another_layer_is_named(tmp_path: Path) -> None:
    folder = write_rules(tmp_path / "rules", rule("team-eof-auth", "auth", 15, r"java\.io\.EOFException"))
    code, data = as_json("--rules", str(folder), JDBC_EOF)
    assert code == 0
    assert data["answer"]["layer"] == "tcp"
    assert data["answer"]["runner_up"] == {
        "id": "team-eof-auth",
        "layer": "auth",
        "title": "Team rule team-eof-auth",
        "confidence": "low",
    }
    out = run("explain", "--rules", str(folder), JDBC_EOF).stdout
    assert "Or, if it is not tcp: an auth problem, Team rule team-eof-auth [team-eof-auth] (see 2.)" in out


def test_no_runner_up_under_a_confident_answer(tmp_path: Path) -> None:
    folder = write_rules(tmp_path / "rules", rule("team-alice", "tcp", 20, r"for user \"alice\""))
    _code, data = as_json("--rules", str(folder), PSQL_PASSWORD)
    assert data["answer"]["confidence"] == "high" and data["answer"]["runner_up"] is None
    assert "Or, if" not in run("explain", "--rules", str(folder), PSQL_PASSWORD).stdout


def test_a_sqlstate_whose_class_points_at_a_layer_gives_a_guess() -> None:
    # class 08 has a signal rule of its own now (signal-database-connection-failed); class 57 has none
    text = "ERROR: the frobnicator refused (SQLSTATE 57999)"
    result = run("explain", text)
    assert result.exit_code == 0
    assert result.stdout.startswith("Most likely a server problem (a guess from: SQLSTATE 57999)")
    assert result.stdout.strip().splitlines()[-1].endswith(CHECK)
    _code, data = as_json(text)
    assert data["answer"]["guess"] is True and data["answer"]["layer"] == "server"
    assert data["matches"][0]["origin"] == "sqlstate-class"


def test_a_sqlstate_of_a_class_without_a_layer_is_no_answer() -> None:
    result = run("explain", "ERROR:  division by zero (SQLSTATE 22012)")
    assert result.exit_code == 1
    assert "No rule matches this text." in result.stdout


@pytest.mark.parametrize("name", NOTHING_LIKE_A_CONNECTION_ERROR)
def test_text_with_nothing_of_a_connection_error_still_has_no_answer(name: str) -> None:
    result = run("explain", "-", input=NOTHING_LIKE_A_CONNECTION_ERROR[name])
    assert result.exit_code == 1, result.stdout
    assert result.stdout.startswith("No rule matches this text.")
    code, data = as_json(NOTHING_LIKE_A_CONNECTION_ERROR[name])
    assert code == 1 and data["answer"] is None and data["matches"] == []


def test_the_help_tells_the_exit_codes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "neondoctor", "explain", "--help"], capture_output=True, text=True, check=True
    )
    text = " ".join(done.stdout.split())
    assert "Exit 0 when there is an answer, even a guess; 1 when there is none" in text


def rule(rule_id: str, layer: str, priority: int, pattern: str) -> dict[str, object]:
    return {
        "id": rule_id,
        "layer": layer,
        "blame": "user",
        "title": f"Team rule {rule_id}",
        "priority": priority,
        "match": {"any": [pattern]},
        "cause": "A team rule for the test.",
        "fix": ["Do the team thing."],
        "examples": [{"text": JDBC_EOF, "source": "pgjdbc 42.5.5, neondoctor lab"}],
    }


def write_rules(folder: Path, *rules: dict[str, object]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "team.yaml").write_text(yaml.safe_dump({"rules": list(rules)}, sort_keys=False))
    return folder
