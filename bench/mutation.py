"""Mutation testing with mutmut, one module at a time, and a per-module score table.

    .venv/bin/python bench/mutation.py neondoctor/redact.py neondoctor/target.py
    .venv/bin/python bench/mutation.py neondoctor/redact.py --floor 95 --max-seconds 240   # CI's gate
    .venv/bin/python bench/mutation.py 'neondoctor/probes/*' --sample 200 --seed 1   # an estimate

A module is a file or a glob of files (``neondoctor/probes/*``). ``--sample N`` runs a uniform random
sample of N of its mutants (chosen before any test runs, from ``--seed``) and reports the score with
its 95 % Wilson interval: on two cores a full run of ``probes/`` (about 9,500 mutants) takes hours.

Each module runs in a scratch copy of the worktree (nothing is left behind: no ``mutants/`` here),
with ``[tool.mutmut]`` from pyproject.toml narrowed to that module (``only_mutate``) and to the
module's fast test selection below (mutmut then runs, for each mutant, only the selected tests that
reach the mutated function). Score = (killed + timeout) / (mutants - equivalent), where the
equivalent mutants are the ones named in bench/MUTATION.md.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import glob
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT_LIST = ROOT / "bench" / "MUTATION.md"
NOT_REAL_SERVER = ["-k", "not pg1"]
"""Deselects the real-server tests (their ids carry the server, pg15/pg18) where unit tests reach the code."""

CHECK_TESTS = [
    "tests/test_check.py", "tests/test_check_forms.py", "tests/test_check_neon.py", "tests/test_check_options.py",
    "tests/test_check_runner.py", "tests/test_evidence.py", "tests/test_hostile_peers.py", "tests/test_probe_dns.py",
    "tests/test_probe_tcp.py", "tests/test_probe_tls.py", "tests/test_crash.py", "tests/test_report.py",
    "tests/test_envfile.py", "tests/test_check_verdicts.py", "tests/test_probe_url_words.py",
    "tests/test_probe_dns_words.py", "tests/test_probe_tcp_words.py", "tests/test_probe_tls_words.py",
    "tests/test_probe_tls_verdicts.py", "tests/test_probe_slots_words.py", "tests/test_probe_tables_words.py",
    "tests/test_probe_auth_words.py",
]
"""checklist.py and probes/: the check's own tests (the default selection also reads README.md, not copied)."""
SLOW_LINT = [
    "--deselect", "tests/test_rule_examples.py::test_rules_lint_is_clean",
    "--deselect", "tests/test_explain_cli.py::test_rules_lint_exit_codes",
    "--deselect", "tests/test_explain_cli.py::test_rules_test_table_and_exit_codes",
]
"""`rules lint`/`rules test` over every built-in example (10-25 s each): tests/test_rules_lint_messages.py checks the
same code on one-rule files in milliseconds, and a surviving mutant would otherwise cost a minute."""

SELECTION: dict[str, list[str]] = {
    "neondoctor/redact.py": [
        "tests/test_redaction.py", "tests/test_url.py", "tests/test_explain_cli.py", "tests/test_report.py",
        "tests/test_crash.py", "tests/test_check_runner.py", "tests/test_check_forms.py", *NOT_REAL_SERVER,
    ],
    "neondoctor/target.py": [
        "tests/test_url.py", "tests/test_target_table.py", "tests/test_redaction.py", "tests/test_check_forms.py",
        "tests/test_check_runner.py", "tests/test_check_neon.py", *NOT_REAL_SERVER,
    ],
    "neondoctor/rules.py": [
        "tests/test_rules_engine.py", "tests/test_rules_lint_messages.py", "tests/test_rule_examples.py",
        "tests/test_explain_ranking.py", "tests/test_explain_cli.py", *SLOW_LINT,
    ],
    "neondoctor/explain.py": [
        "tests/test_explain_ranking.py", "tests/test_explain_reading.py", "tests/test_explain_cli.py",
        "tests/test_rules_engine.py", "tests/test_pasted_logs.py", "tests/test_explain_confidence.py",
        "tests/test_explain_generic.py", "tests/test_explain_renderings.py", "tests/test_explain_clients.py",
        "tests/test_explain_sieve.py", "tests/test_rules_lint_messages.py", "tests/test_explain_big_logs.py",
        *SLOW_LINT,
        "--deselect", "tests/test_explain_sieve.py::test_the_literal_index_picks_the_same_matches_as_trying_every_rule",
    ],
    "neondoctor/checklist.py": CHECK_TESTS,
    "neondoctor/probes/*": CHECK_TESTS,
}
DEFAULT_SELECTION = [
    "tests", "--ignore=tests/test_packaging.py", "--ignore=tests/test_redaction_property.py",
    "--ignore=tests/test_check_live.py", "--ignore=tests/test_unseen_corpus.py",
]
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 36: "timeout", 24: "timeout",
          -24: "timeout", 152: "timeout", 255: "timeout", None: "not checked"}


def equivalent_mutants() -> set[str]:
    if not EQUIVALENT_LIST.exists():
        return set()
    text = EQUIVALENT_LIST.read_text(encoding="utf-8")
    section = re.search(r"^## Equivalent mutants\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    return set(re.findall(r"`(neondoctor\.[\w.ǁ]+__mutmut_\d+)`", section.group(1) if section else ""))


def scratch_copy(dest: Path) -> None:
    """The worktree's files (tracked and new, not ignored); without git, the tree minus caches and venvs."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True
    )
    if listed.returncode != 0:
        skip = shutil.ignore_patterns(".venv", ".git", "mutants", "__pycache__", "*.egg-info", ".*cache*", "unseen")
        shutil.copytree(ROOT, dest, ignore=skip, dirs_exist_ok=True)
        return
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file() and not name.startswith("tests/data/unseen/"):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def toml_value(value: object) -> str:
    return json.dumps(value)


def narrow_config(dest: Path, module: str, tests: list[str]) -> None:
    pyproject = dest / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    config = tomllib.loads(text)["tool"]["mutmut"]
    config["only_mutate"] = [module]
    config["pytest_add_cli_args_test_selection"] = tests
    body = "\n".join(f"{key} = {toml_value(value)}" for key, value in config.items())
    section = re.compile(r"^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", re.MULTILINE | re.DOTALL)
    pyproject.write_text(section.sub(lambda _: f"[tool.mutmut]\n{body}\n\n", text, count=1), encoding="utf-8")


def module_files(module: str) -> list[str]:
    return sorted(path for path in glob.glob(module, root_dir=ROOT) if path.endswith(".py"))


def dotted(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def all_mutant_names(module: str) -> list[str]:
    """Every mutant mutmut will make of the module, named as mutmut names them, without running a test."""
    from mutmut.__main__ import get_mutant_name, mutate_file_contents

    names = []
    for path in module_files(module):
        mutated = mutate_file_contents(path, (ROOT / path).read_text(encoding="utf-8"), None, None)
        names += [get_mutant_name(Path(path), name) for name in mutated.mutant_names]
    return names


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    if not total:
        return 0.0, 0.0
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


def run_module(
    module: str, *, max_seconds: float | None, verbose: bool, keep: Path | None = None, only: list[str] | None = None,
    sample: int | None = None, seed: int = 0, children: int | None = None,
) -> dict[str, object]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="neondoctor-mutation-") as scratch:
        dest = Path(scratch)
        scratch_copy(dest)
        narrow_config(dest, module, SELECTION.get(module, DEFAULT_SELECTION))
        env = {**os.environ, "NEONDOCTOR_PG_EXTRA_BINDIRS": "", "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("CI", None)  # one server version tells mutants apart; the suite checks both on CI
        mutmut = Path(sys.executable).with_name("mutmut")
        names = [f"{dotted(path)}.{pattern}" for path in module_files(module) for pattern in only or []]
        if sample:
            population = [n for n in all_mutant_names(module) if not names or any(fnmatch.fnmatch(n, p) for p in names)]
            names = sorted(random.Random(seed).sample(population, min(sample, len(population))))
        mutmut_run = subprocess.Popen(
            [str(mutmut), "run", "--max-children", str(children or os.cpu_count() or 2), *names], cwd=dest, env=env,
            stdout=None if verbose else subprocess.DEVNULL, stderr=None if verbose else subprocess.STDOUT,
            start_new_session=True,
        )
        timed_out = False
        try:
            mutmut_run.wait(timeout=max_seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:  # a timeout, Ctrl-C or CI's SIGTERM: no mutant process outlives the run
            with contextlib.suppress(ProcessLookupError):
                os.killpg(mutmut_run.pid, signal.SIGKILL)
            mutmut_run.wait()
        codes = {}
        for path in module_files(module):
            meta = dest / "mutants" / f"{path}.meta"
            if meta.exists():
                codes.update(json.loads(meta.read_text())["exit_code_by_key"])
        if names:
            codes = {key: code for key, code in codes.items() if any(fnmatch.fnmatch(key, n) for n in names)}
        if keep is not None and (dest / "mutants").is_dir():
            shutil.copytree(dest / "mutants", keep / module.replace("/", "."), dirs_exist_ok=True)
    counts = {"killed": 0, "survived": 0, "timeout": 0, "no tests": 0, "not checked": 0, "other": 0}
    survivors = []
    equivalent = equivalent_mutants()
    for key, code in codes.items():
        status = STATUS.get(code, "other")
        counts[status] += 1
        if status in ("survived", "no tests") and key not in equivalent:
            survivors.append(key)
    listed = sum(1 for key in codes if key in equivalent)
    denominator = len(codes) - listed
    score = 100.0 * (counts["killed"] + counts["timeout"]) / denominator if denominator else 0.0
    low, high = wilson(counts["killed"] + counts["timeout"], denominator) if sample else (score, score)
    return {"module": module, "mutants": len(codes), **counts, "equivalent": listed, "score": round(score, 1),
            "interval": [round(low, 1), round(high, 1)], "sampled": bool(sample),
            "seconds": round(time.monotonic() - started), "cut_short": timed_out, "survivors": sorted(survivors)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="+", help="paths such as neondoctor/redact.py")
    parser.add_argument("--floor", type=float, help="exit 1 when a module scores below this percentage")
    parser.add_argument("--max-seconds", type=float, help="stop a module's run after this long (counts as unchecked)")
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants (not listed equivalent)")
    parser.add_argument("--only", action="append", help="only the mutants of functions matching this glob (x_name*)")
    parser.add_argument("--keep", type=Path, help="copy each module's mutants/ folder here (to read the mutants)")
    parser.add_argument("--sample", type=int, help="run a random sample of this many mutants per module")
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed (the same seed, the same mutants)")
    parser.add_argument("--children", type=int, help="mutants run at once (default: one per core)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true", help="show mutmut's own progress")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: kill mutmut, delete the scratch copy
    options = {"max_seconds": args.max_seconds, "verbose": args.verbose, "keep": args.keep, "only": args.only,
               "sample": args.sample, "seed": args.seed, "children": args.children}
    rows = [run_module(module, **options) for module in args.modules]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print("| module | mutants | killed | survived | timeout | no tests | equivalent | score | time |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            cut = " (cut short)" if r["cut_short"] else ""
            low, high = r["interval"]
            score = f"{r['score']} % (95 % CI {low}–{high})" if r["sampled"] else f"{r['score']} %"
            mutants = f"{r['mutants']} sampled" if r["sampled"] else r["mutants"]
            print(f"| {r['module']} | {mutants} | {r['killed']} | {r['survived']} | {r['timeout']} | "
                  f"{r['no tests']} | {r['equivalent']} | {score} | {r['seconds']} s{cut} |")
        if args.survivors:
            for r in rows:
                for key in r["survivors"]:
                    print(f"survivor: {key}")
    failed = [r for r in rows if args.floor is not None and (r["score"] < args.floor or r["cut_short"])]
    for r in failed:
        print(f"mutation score of {r['module']} is {r['score']} %, below the floor of {args.floor} %"
              + (" (the run was cut short)" if r["cut_short"] else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
