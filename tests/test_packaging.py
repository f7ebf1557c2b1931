from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_non_editable_install_ships_the_rules_and_runs_from_any_directory(tmp_path: Path) -> None:
    target = tmp_path / "site"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert (target / "neondoctor" / "_rules" / "README.md").is_file()
    assert (target / "neondoctor" / "schemas" / "check.json").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "NO_COLOR": "1"}
    env.pop("DATABASE_URL", None)
    probe = subprocess.run(
        [sys.executable, "-c", "import neondoctor, sys; print(neondoctor.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=elsewhere,
        env=env,
    )
    assert probe.stdout.startswith(str(target))

    def neondoctor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "neondoctor", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=elsewhere,
            env=env,
        )

    version = neondoctor("--version")
    assert version.returncode == 0, version.stderr
    url = neondoctor("url", "postgresql://a@localhost/db")
    assert url.returncode == 0, url.stderr
    yaml_files = sorted(p.name for p in (target / "neondoctor" / "_rules").glob("*.yaml"))
    assert yaml_files == sorted(p.name for p in (ROOT / "rules").glob("*.yaml"))
