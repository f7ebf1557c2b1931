"""One versioned JSON contract: every --json output names its schema and validates against the shipped file."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from contract import load_schema, validate
from pgcluster import PgCluster
from test_check import CLEAN_ENV

from neondoctor.cli import cli

COMMANDS = [
    "url", "explain", "check", "report", "pool", "drill", "rules list", "rules show", "rules lint", "rules test",
]


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), env=CLEAN_ENV)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_every_command_ships_a_valid_schema_file() -> None:
    shipped = sorted(p.name for p in (resources.files("neondoctor") / "schemas").iterdir() if p.name.endswith(".json"))
    assert shipped == sorted(f"{c.replace(' ', '.')}.json" for c in COMMANDS)
    for command in COMMANDS:
        schema = load_schema(command.replace(" ", "."))
        assert schema["$defs"]["error"]["properties"]["schema"]["const"] == f"neondoctor.{command.replace(' ', '.')}/1"


def command_of(args: list[str]) -> str:
    """``["rules", "--rules", "x", "lint", "--json"]`` → ``rules lint``."""
    return " ".join(word for word in args if word in ("url", "explain", "rules", "list", "show", "lint", "test"))


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["url", "--json", "postgresql://alice:pw@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/neondb"], 0),
        (["url", "--json", "postgresql+asyncpg://alice:p@ss@db.example.invalid/app?sslmode=requre"], 1),
        (["url", "--json", "host=db.invalid port=6432 user=bob dbname=app password=x sslmode=verify-full"], 0),
        (["explain", "--json", 'FATAL:  password authentication failed for user "alice"'], 0),
        (["explain", "--json", "ERROR:  division by zero (SQLSTATE 22012)"], 1),
        (["rules", "list", "--json"], 0),
        (["rules", "show", "--json", "tcp-connection-refused"], 0),
        (["rules", "lint", "--json"], 0),
        (["rules", "test", "--json"], 0),
    ],
)
def test_offline_outputs_validate(args: list[str], code: int) -> None:
    result = run(*args)
    assert result.exit_code == code, result.stdout + result.stderr
    validate(result.stdout, command_of(args))


def test_check_outputs_validate_against_a_real_server(pg: PgCluster) -> None:
    healthy = run("check", "--json", pg.url(host="localhost", **pg.verify_full_params()))
    assert healthy.exit_code == 0, healthy.stdout
    assert validate(healthy.stdout, "check")["verdict"]["status"] == "pass"
    failing = run("check", "--json", pg.url(password="not-the-password", sslmode="require"))
    assert failing.exit_code == 1
    assert validate(failing.stdout, "check")["verdict"]["failed_probe"] == "auth"


def test_rules_lint_and_test_report_problems_as_json(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "mine.yaml").write_text(
        "rules:\n  - id: mine-broken\n    layer: auth\n    blame: user\n    title: Broken\n"
        "    match: {any: ['never matches this']}\n    cause: c\n    fix: [f]\n"
        "    examples: [{text: 'something else entirely', source: 'https://example.com'}]\n"
    )
    lint = run("rules", "--rules", str(folder), "lint", "--json")
    assert lint.exit_code == 1
    data = validate(lint.stdout, "rules lint")
    assert data["ok"] is False and any("mine-broken" in p for p in data["problems"])
    tested = run("rules", "test", "--rules", str(folder), "--json")
    assert tested.exit_code == 1
    data = validate(tested.stdout, "rules test")
    assert data["ok"] is False
    assert {"id": "mine-broken", "matched": 0, "missed": 1, "false_hits": 0} in data["rules"]


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["url", "--json"], "url"),
        (["check", "--json", "--timeout", "0", "postgresql://a@127.0.0.1:1/app"], "check"),
        (["check", "--json", "--bogus"], "check"),
        (["explain", "--json", ""], "explain"),
        (["rules", "show", "--json", "no-such-rule"], "rules show"),
        (["rules", "--rules", "/nonexistent/folder", "lint", "--json"], "rules lint"),
        (["report", "--format=json", "-o", "/nonexistent/folder/r.json", "postgresql://a@127.0.0.1:1/app"], "report"),
    ],
)
def test_usage_errors_with_json_are_json_on_stdout_and_one_line_on_stderr(args: list[str], command: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("neondoctor: error: ")
    data = validate(result.stdout, command)
    assert data["error"]["code"] == 2
    assert data["error"]["message"] == result.stderr.strip().removeprefix("neondoctor: error: ")


def test_without_json_usage_errors_leave_stdout_empty() -> None:
    result = run("rules", "show", "no-such-rule")
    assert result.exit_code == 2 and result.stdout == ""


def test_existing_fields_keep_their_shape() -> None:
    data = json.loads(run("explain", "--json", "ERROR:  division by zero (SQLSTATE 22012)").stdout)
    assert list(data) == ["schema", "matches", "sqlstates"]
    listed = json.loads(run("rules", "list", "--json").stdout)
    assert set(listed["rules"][0]) == {"id", "layer", "blame", "title", "origin"}
