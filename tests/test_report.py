"""`neondoctor report` end to end against real PostgreSQL servers: the Markdown renders, the JSON validates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from contract import Node, html_tree, markdown_to_html, table_rows, validate
from pgcluster import ALICE_PASSWORD, PgCluster
from test_check import CLEAN_ENV, PROBE_ORDER, assert_no_secret

from neondoctor.cli import cli

WRONG_PASSWORD = "Wr0ng`pw|<b>&x"
SECTIONS = ["Versions", "Target", "Summary", "Probes", "Probe details", "Matched rules", "Error texts", "Environment"]


def report(
    *args: str, env: dict[str, str | None] | None = None, secrets: tuple[str, ...] = (ALICE_PASSWORD,)
) -> Result:
    result = CliRunner().invoke(cli, ["report", *args], env={**CLEAN_ENV, **(env or {})})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    for secret in secrets:
        assert_no_secret(result.stdout + result.stderr, secret)
    return result


def rendered(markdown: str) -> Node:
    return html_tree(markdown_to_html(markdown))


def headings(tree: Node) -> list[str]:
    return [h.text for h in tree.find_all("h2")]


def probe_table(tree: Node) -> dict[str, list[str]]:
    table = next(t for t in tree.find_all("table") if t.find_all("th")[0].text == "probe")
    return {row[0]: row[1:] for row in table_rows(table)}


def details_blocks(tree: Node) -> dict[str, Node]:
    blocks = {}
    for block in tree.find_all("details"):
        first = block.elements()[0]
        assert first.tag == "summary", block
        blocks[first.text.split(":")[0]] = block
    return blocks


def test_healthy_report_renders_every_probe_and_the_versions(pg: PgCluster, tmp_path: Path) -> None:
    out = tmp_path / "healthy.md"
    url = pg.url(host="localhost", **pg.verify_full_params())
    result = report(url, "-o", str(out), "--expect-table", "users")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Report written to {out}"
    assert lines[1].startswith("✓ All good: alice logs in to app")
    markdown = out.read_text()
    assert_no_secret(markdown)
    tree = rendered(markdown)
    assert headings(tree) == SECTIONS
    versions = {row[0]: row[1] for row in table_rows(tree.find_all("table")[0])}
    assert versions["neondoctor"] == "0.1.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", versions["generated (UTC)"])
    for key in ("OS", "architecture", "Python", "psycopg", "libpq", "dnspython", "OpenSSL (Python ssl)"):
        assert versions[key] and versions[key] != "not available", (key, versions)
    probes = probe_table(tree)
    assert list(probes) == PROBE_ORDER
    assert all(status.endswith("pass") for status, _time, _summary in probes.values() if "skip" not in status)
    assert probes["tables"][2] == "public.users is present and readable"
    assert set(details_blocks(tree)) >= {"url", "tcp", "tls", "auth", "slots", "tables"}
    auth = json.loads(details_blocks(tree)["auth"].find_all("code")[0].text)
    assert auth["user"] == "alice" and auth["tls"] is True
    env_section = markdown.split("## Environment", 1)[1]
    assert f"sslrootcert `{pg.ca_path}`: exists" in env_section


def test_wrong_password_report_shows_every_section_and_hides_host_and_user(pg: PgCluster, tmp_path: Path) -> None:
    url = pg.url(password=WRONG_PASSWORD, host="localhost", sslmode="require")
    env = {"PGTZ": "Europe/Paris", "HTTPS_PROXY": "http://proxy.invalid:3128", "no_proxy": "localhost"}
    result = report(url, "-o", "-", "--redact-host", "--redact-user", env=env, secrets=(WRONG_PASSWORD, "Paris"))
    assert result.exit_code == 1, result.stdout
    markdown = result.stdout
    assert_no_secret(markdown, WRONG_PASSWORD)
    assert "alice" not in markdown and "localhost" not in markdown and "proxy.invalid" not in markdown
    tree = rendered(markdown)
    assert headings(tree) == SECTIONS
    summary = markdown.split("## Summary", 1)[1].split("## Probes", 1)[0]
    assert 'Failed at auth: password authentication failed for user "<user>"' in tree.text
    assert "Next step:" in summary
    probes = probe_table(tree)
    assert probes["auth"][0].endswith("fail") and probes["auth"][2].startswith(
        'password authentication failed for user "<user>"'
    )
    assert probes["slots"][0].endswith("skip") and probes["slots"][1] == ""
    assert "<host-1>" in probes["url"][2]
    blocks = details_blocks(tree)
    assert "auth" in blocks and "<user>" in blocks["auth"].find_all("summary")[0].text
    rules = markdown.split("## Matched rules", 1)[1].split("## Error texts", 1)[0]
    assert "### `auth-password-failed`" in rules and "**Fix:**" in rules and "**Docs:** <https://" in rules
    errors = [code.text for code in tree.find_all("code") if "password authentication failed" in code.text]
    assert any(text.startswith("connection to server at") or "FATAL" in text for text in errors), errors
    environment = markdown.split("## Environment", 1)[1]
    assert "`PGTZ`" in environment
    assert "`HTTPS_PROXY`" in environment and "`no_proxy`" in environment and "3128" not in environment
    assert "the host and user are replaced by placeholders" in markdown


def test_error_text_with_backticks_pipes_and_angle_brackets_keeps_the_fences_and_table(
    pg: PgCluster, tmp_path: Path
) -> None:
    dbname = "no```such|<b>db"
    result = report(pg.url(dbname=dbname, sslmode="require"), "-o", "-")
    assert result.exit_code == 1
    markdown = result.stdout
    tree = rendered(markdown)
    assert not tree.find_all("b"), "a <b> from the error text became HTML"
    probes = probe_table(tree)
    assert list(probes) == PROBE_ORDER
    assert probes["auth"][2] == f'database "{dbname}" does not exist'
    fenced = [code.text for code in tree.find_all("code") if "does not exist" in code.text]
    assert any(f'database "{dbname}" does not exist' in text for text in fenced), fenced
    for pre in tree.find_all("pre"):
        assert [child.tag for child in pre.elements()] == ["code"]
    assert len(details_blocks(tree)) >= 5


def test_json_report_validates_and_adds_the_header_to_the_check_document(pg: PgCluster, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = report(pg.url(password="not-the-password", sslmode="require"), "--format", "json", "-o", str(out),
                    secrets=("not-the-password",))
    assert result.exit_code == 1
    data = validate(out.read_text(), "report")
    assert [p["name"] for p in data["probes"]] == PROBE_ORDER
    assert data["verdict"]["failed_probe"] == "auth" and data["verdict"]["rule"] == "auth-password-failed"
    assert data["header"]["libpq"] and data["header"]["psycopg"]
    assert data["rules"][0]["id"] == "auth-password-failed"
    assert any("password authentication failed" in entry["text"] for entry in data["errors"])
    assert data["environment"]["pg_variables"] == []


def test_default_file_name_is_timestamped_in_the_working_directory(
    pg: PgCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = report(env={"DATABASE_URL": pg.url(sslmode="require")})
    assert result.exit_code == 0, result.stdout
    written = list(tmp_path.glob("neondoctor-report-*.md"))
    assert len(written) == 1 and re.fullmatch(r"neondoctor-report-\d{8}T\d{6}Z\.md", written[0].name)
    assert result.stdout.splitlines()[0] == f"Report written to {written[0].name}"
    assert "- connection string from: $DATABASE_URL" in written[0].read_text()


def test_report_usage_errors_are_one_line_and_json_with_format_json(tmp_path: Path) -> None:
    result = report("postgresql://a@127.0.0.1:1/app", "-o", str(tmp_path / "missing" / "r.md"))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "no folder" in result.stderr
    as_json = report("postgresql://a@127.0.0.1:1/app", "--format", "json", "--timeout", "0")
    assert as_json.exit_code == 2 and as_json.stderr.count("\n") == 1
    assert validate(as_json.stdout, "report")["error"]["code"] == 2


def test_failing_check_ends_with_the_report_command_and_never_the_password(tmp_path: Path) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text("DATABASE_URL=postgresql://alice:Hunter2Hunter2@127.0.0.1:1/app\n")
    result = CliRunner().invoke(cli, ["check", "--env-file", str(env_file), "--timeout", "2"], env=CLEAN_ENV)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"To attach this to a support ticket: neondoctor report --env-file {env_file} --timeout 2"
    )
    by_argument = CliRunner().invoke(cli, ["check", "postgresql://alice:Hunter2Hunter2@127.0.0.1:1/app"],
                                     env=CLEAN_ENV)
    assert "neondoctor report URL (URL: the connection string you just checked)" in by_argument.stderr
    for run in (result, by_argument):
        assert_no_secret(run.stdout + run.stderr, "Hunter2Hunter2")
    as_json = CliRunner().invoke(cli, ["check", "--env-file", str(env_file), "--json"], env=CLEAN_ENV)
    assert as_json.stderr == ""




def test_placeholders_replace_whole_names_only() -> None:
    from neondoctor.report import name_replacer

    replace = name_replacer({"postgres": "<user>", "db.example.invalid": "<host-1>", "db": "<host-2>"})
    assert replace("postgresql://postgres:****@db.example.invalid/postgres") == (
        "postgresql://<user>:****@<host-1>/<user>"
    )
    said = 'PostgreSQL 15: role "postgres" on DB.EXAMPLE.INVALID.'
    assert replace(said) == 'PostgreSQL 15: role "<user>" on <host-1>.'
    assert replace("a db.example.invalid2 host, not db.example.invalid.more") == (
        "a db.example.invalid2 host, not db.example.invalid.more"
    )
    assert replace("the db is down; host=db port 5432") == "the db is down; host=<host-2> port 5432"
    assert replace("db") == "<host-2>"
