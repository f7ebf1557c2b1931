""".env hygiene: is the file that holds the password kept out of git and away from other users?

git itself answers (``check-ignore``, ``ls-files``, ``log --all``), each call bounded by a timeout;
no git, no repository, or a git that fails means no git findings, never a guess. Each finding names
the exact commands that fix it; a password that was ever committed must be rotated, because the
history keeps it.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from neondoctor.target import Finding, Severity

GIT_TIMEOUT = 5.0


def dotenv_in_play(source: str, cwd: Path | None = None) -> Path | None:
    """The .env file the string came from, else a .env in the working tree, else None."""
    kind, _, rest = source.partition(":")
    if kind in ("dotenv", "env-file") and rest:
        return Path(rest)
    here = cwd or _cwd()
    if here is None:
        return None
    candidate = here / ".env"
    return candidate if candidate.is_file() else None


def _cwd() -> Path | None:
    """The working directory, or None when it was removed under us."""
    try:
        return Path.cwd()
    except OSError:
        return None


def _git(directory: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str] | None:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"}
    try:
        return subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def hygiene(path: Path, *, timeout: float = GIT_TIMEOUT, strict: bool = True) -> list[Finding]:
    """Findings about ``path``; ``strict`` makes a tracked or committed file an error (else a warning)."""
    findings: list[Finding] = []
    try:
        mode = path.stat().st_mode
    except OSError:
        return findings
    name = path.name
    shown = str(path) if path.parent != _cwd() else name
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        who = "every user on this machine" if mode & stat.S_IROTH else "its group"
        findings.append(
            Finding(
                "env-file-readable",
                Severity.WARNING,
                f"{shown} is readable by {who} (mode {stat.S_IMODE(mode):04o}); it holds the database password",
                f"chmod 600 {_shell(shown)}",
            )
        )
    return _git_findings(path.resolve(), shown, timeout=timeout, strict=strict) + findings


def _git_findings(path: Path, shown: str, *, timeout: float, strict: bool) -> list[Finding]:
    directory = path.parent
    top = _git(directory, "rev-parse", "--show-toplevel", timeout=timeout)
    if top is None or top.returncode != 0 or not top.stdout.strip():
        return []
    root = Path(top.stdout.strip())
    try:
        relative = path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return []
    serious = Severity.ERROR if strict else Severity.WARNING
    findings: list[Finding] = []
    here = _cwd()
    in_git = f"cd {_shell(str(root))} && " if here is None or directory != here.resolve() else ""
    tracked = _git(root, "ls-files", "--error-unmatch", "--", relative, timeout=timeout)
    is_tracked = tracked is not None and tracked.returncode == 0
    if is_tracked:
        findings.append(
            Finding(
                "env-file-tracked",
                serious,
                f"{shown} is tracked by git: every push and clone carries the password",
                f"{in_git}git rm --cached -q -- {_shell(relative)} && echo {_shell('/' + relative)} >> .gitignore && "
                f"git add .gitignore && git commit -m {_shell('Stop tracking ' + relative)}",
            )
        )
    else:
        ignored = _git(root, "check-ignore", "-q", "--", relative, timeout=timeout)
        if ignored is not None and ignored.returncode == 1:
            findings.append(
                Finding(
                    "env-file-not-ignored",
                    Severity.WARNING,
                    f"{shown} is not in .gitignore: the next 'git add .' commits the password",
                    f"{in_git}echo {_shell('/' + relative)} >> .gitignore",
                )
            )
    history = _git(root, "log", "--all", "--format=%h", "--", relative, timeout=timeout)
    commits = history.stdout.split() if history is not None and history.returncode == 0 else []
    if commits:
        findings.append(
            Finding(
                "env-file-in-history",
                serious,
                f"{shown} is in git history ({len(commits)} commit(s), latest {commits[0]}): whoever has a clone "
                "has the password, even after the file is removed",
                "Rotate the password first (Neon: Console → Branches → Roles → Reset password; any server: "
                "ALTER ROLE … PASSWORD …), update the app's secret, then drop the file from history: "
                f"{in_git}git filter-repo --invert-paths --path {_shell(relative)} (then force-push and re-clone)",
            )
        )
    return findings


def _shell(text: str) -> str:
    import shlex

    return shlex.quote(text)
