"""A bug that escapes a command: one line, a redacted crash log to attach, exit 3."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner, Result
from contract import validate
from test_check import CLEAN_ENV, secret_forms

from neondoctor import checklist, explain
from neondoctor.cli import cli
from neondoctor.exitcodes import ExitCode

PASSWORD = "Cr4sh:pw/@#?-secret"
URL = f"postgresql://alice:{quote(PASSWORD, safe='')}@127.0.0.1:1/app"
LINE = re.compile(
    r"neondoctor: internal error \(RuntimeError in test_crash\.py:\d+\); a crash log was written to (?P<path>\S+); "
    r"please attach it \(or run neondoctor report\)"
)


def boom(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError(f"boom while checking {URL} with password {PASSWORD} ({quote(PASSWORD)})")


def crash(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env={**CLEAN_ENV, **(env or {})})


def assert_hidden(*texts: str) -> None:
    for text in texts:
        for form in secret_forms(PASSWORD) | {quote(PASSWORD)}:
            assert form not in text, f"password leaked as {form!r}"


def test_a_bug_in_check_is_one_line_a_crash_log_and_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(checklist, "run_check", boom)
    result = crash("check", URL, "--timeout", "2")
    assert result.exit_code == ExitCode.CRASH == 3
    header = "Checking postgresql://alice:****@127.0.0.1:1/app  (from the command line)"
    assert result.stdout.splitlines()[:1] == [header]
    assert "Traceback" not in result.stdout
    assert result.stderr.count("\n") == 1, result.stderr
    match = LINE.fullmatch(result.stderr.strip())
    assert match, result.stderr
    log = tmp_path / match.group("path")
    assert re.fullmatch(r"neondoctor-crash-\d{8}T\d{6}Z\.log", log.name) and log.is_file()
    text = log.read_text()
    for heading in ("### version information", "### command", "### error information"):
        assert heading in text
    assert "neondoctor: 0.1.0" in text and "python: " in text and "os: " in text and "psycopg: " in text
    assert "neondoctor check 'postgresql://alice:****@127.0.0.1:1/app' --timeout 2" in text
    assert "Traceback (most recent call last)" in text and "RuntimeError: boom while checking" in text
    assert_hidden(result.stderr, result.stdout, text)


def test_with_json_the_crash_is_a_json_error_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(explain, "explain_stream", boom)
    result = crash("explain", "--json", f"FATAL: password authentication failed; url was {URL}")
    assert result.exit_code == 3
    data = validate(result.stdout, "explain")
    assert data["error"]["code"] == 3 and data["error"]["message"].startswith("internal error (RuntimeError")
    logs = list(tmp_path.glob("neondoctor-crash-*.log"))
    assert len(logs) == 1
    assert_hidden(result.stdout, result.stderr, logs[0].read_text())


def test_without_a_usable_working_directory_the_log_goes_to_the_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    monkeypatch.setattr(checklist, "run_check", boom)
    cache = tmp_path / "cache"
    result = crash("check", env={"DATABASE_URL": URL, "XDG_CACHE_HOME": str(cache)})
    os.chdir(tmp_path)
    assert result.exit_code == 3
    match = LINE.fullmatch(result.stderr.strip())
    assert match, result.stderr
    log = Path(match.group("path"))
    assert log.parent == cache / "neondoctor" and log.is_file()
    assert_hidden(result.stderr, log.read_text())
