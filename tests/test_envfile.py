""".env hygiene in url and check, with real git repositories made for each test."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from pgcluster import PgCluster
from test_check import CLEAN_ENV

from neondoctor.cli import cli
from neondoctor.envfile import hygiene

SECRET = "S3cret-in-dotenv"
URL = f"postgresql://alice:{SECRET}@db.example.invalid/app?sslmode=require"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env, timeout=30).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.name", "t")
    git(tmp_path, "config", "user.email", "t@example.invalid")
    (tmp_path / "app.py").write_text("print('hi')\n")
    git(tmp_path, "add", "app.py")
    git(tmp_path, "commit", "-qm", "first")
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


def write_env(folder: Path, url: str = URL, mode: int = 0o600) -> Path:
    path = folder / ".env"
    path.write_text(f"DATABASE_URL={url}\n")
    path.chmod(mode)
    return path


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), env=CLEAN_ENV)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def ids(path: Path) -> list[str]:
    return [finding.id for finding in hygiene(path)]


def test_ignored_private_env_is_clean(repo: Path) -> None:
    (repo / ".gitignore").write_text(".env\n")
    assert ids(write_env(repo)) == []


def test_not_ignored_and_readable_by_others(repo: Path) -> None:
    path = write_env(repo, mode=0o644)
    findings = {f.id: f for f in hygiene(path)}
    assert set(findings) == {"env-file-readable", "env-file-not-ignored"}
    assert findings["env-file-readable"].fix == "chmod 600 .env"
    assert findings["env-file-not-ignored"].fix == "echo /.env >> .gitignore"
    subprocess.run(findings["env-file-not-ignored"].fix, shell=True, cwd=repo, check=True)
    path.chmod(0o600)
    assert ids(path) == []


def test_tracked_and_committed_means_rotate(repo: Path) -> None:
    path = write_env(repo)
    git(repo, "add", ".env")
    git(repo, "commit", "-qm", "oops")
    findings = {f.id: f for f in hygiene(path)}
    assert set(findings) == {"env-file-tracked", "env-file-in-history"}
    assert "Rotate the password" in findings["env-file-in-history"].fix
    subprocess.run(findings["env-file-tracked"].fix, shell=True, cwd=repo, check=True, capture_output=True)
    after = ids(path)
    assert after == ["env-file-in-history"], "untracking does not remove it from history"
    assert git(repo, "check-ignore", ".env").strip() == ".env"


def test_deleted_but_once_committed_on_another_branch(repo: Path) -> None:
    git(repo, "checkout", "-qb", "wip")
    write_env(repo)
    git(repo, "add", ".env")
    git(repo, "commit", "-qm", "wip")
    git(repo, "rm", "-q", ".env")
    git(repo, "commit", "-qm", "remove")
    git(repo, "checkout", "-q", "-")
    (repo / ".gitignore").write_text(".env\n")
    path = write_env(repo)
    assert ids(path) == ["env-file-in-history"]


def test_no_git_repo_means_no_git_findings(tmp_path: Path) -> None:
    assert ids(write_env(tmp_path)) == []
    assert ids(write_env(tmp_path, mode=0o640)) == ["env-file-readable"]


def test_url_reads_dotenv_and_reports_it(repo: Path) -> None:
    write_env(repo, mode=0o644)
    git(repo, "add", ".env")
    git(repo, "commit", "-qm", "oops")
    result = run("url")
    assert result.exit_code == 1
    assert "is tracked by git" in result.output and "[env-file-tracked]" in result.output
    assert "git rm --cached -q -- .env" in result.output
    assert SECRET not in result.output


def test_check_reports_hygiene_as_warnings_and_goes_on(repo: Path, pg: PgCluster) -> None:
    write_env(repo, url=pg.url(sslmode="verify-full", sslrootcert=str(pg.ca_path)), mode=0o644)
    result = run("check", "-v")
    assert result.exit_code == 0, result.output
    assert "is not in .gitignore" in result.output and "echo /.env >> .gitignore" in result.output
    assert "env-file-readable (warning)" in result.output
    assert "[✓] tables" in result.output
