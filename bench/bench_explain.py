"""Start-up time of `neondoctor explain` on one pasted error, and its time and memory on a 100 MB log.

1. One error: `python -m neondoctor explain TEXT` and the `neondoctor` console script against
   `python -c "import click, yaml"`, interleaved, each in a fresh interpreter; medians and ratios.
   Everything runs from bytecode, as after ``pip install``: PYTHONDONTWRITEBYTECODE is dropped so the
   warm-up run writes neondoctor's ``__pycache__`` (and the rules cache). A run without the rules
   cache (``NEONDOCTOR_NO_CACHE=1``: YAML parsed every time) is shown for comparison.
2. A 100 MB log, generated in a temporary folder (mostly noise, a few real errors inside): wall time
   and peak RSS of ``explain --file``, median of 3, and a check that the buried errors were found.
3. The same logs against grep, interleaved (``--grep-runs``, default 9): ``explain --json --file LOG`` and
   ``grep -E -i -c -f PATTERNS LOG``, where PATTERNS holds exactly what explain's prefilter looks for: one line
   per rule literal (the quote-free piece of it that the prefilter uses, regex-escaped) and the cause-chain and
   driver-exception markers: literals only, grep's fastest case. (The prefilter also looks for SQLSTATE- and
   URL-shaped text with three regexes; given those too, grep takes 2-4x longer, so they are left out to keep
   the baseline hard.) A second grep gets only the 16-character anchors of those literals that the pure-Python
   fallback scanner uses (shorter patterns: sometimes faster). Medians and the ratios explain/grep. Then again
   with every rule duplicated under another id whose regexes start with a distinct made-up word (``--rules``
   folder, rules x2, literals x2 that never occur in the log), with grep given the doubled pattern list too:
   the prefilter must scale with the rules.

    .venv/bin/python bench/bench_explain.py [--runs 21] [--size-mb 100] [--grep-runs 9] [--json] [--rules DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = Path(sys.executable)
SCRIPT = PYTHON.parent / "neondoctor"
TARGET_RATIO = 1.1
TARGET_GREP_RATIO = 3.0
TARGET_WALL = 3.0
TARGET_RSS_MB = 100.0
PASTED = (
    'psql: error: connection to server at "ep-cool-darkness-123456.us-east-2.aws.neon.tech" (3.18.12.7), '
    "port 5432 failed: ERROR:  password authentication failed for user 'neondb_owner'"
)
BURIED = {
    "tcp-connection-refused": [
        "web-1  | Error: connect ECONNREFUSED 127.0.0.1:5432",
        "web-1  |     at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16) {",
        "web-1  |   errno: -111,",
        "web-1  |   code: 'ECONNREFUSED',",
    ],
    "auth-password-failed": [
        'api-1  | sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) connection to server at "db" '
        '(172.18.0.2), port 5432 failed: FATAL:  password authentication failed for user "app"',
        "api-1  | ",
        "api-1  | (Background on this error at: https://sqlalche.me/e/20/e3q8)",
    ],
    "slots-too-many-clients": [
        "2026-03-02 10:41:07.311 UTC [4127] FATAL:  sorry, too many clients already",
    ],
}


def env_for_bench() -> dict[str, str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


CPU_TIMES: dict[tuple[str, ...], list[float]] = {}
"""user+sys seconds of every run, by argv: on a shared machine CPU time moves much less than wall time."""


def run(argv: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=120)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    CPU_TIMES.setdefault(_key(argv, env), []).append(cpu)
    if result.returncode not in ok:
        raise SystemExit(f"{' '.join(argv[:4])} … exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return elapsed


def _key(argv: list[str], env: dict[str, str]) -> tuple[str, ...]:
    return (*argv, env.get("NEONDOCTOR_NO_CACHE", ""))


def cpu_median(argv: list[str], env: dict[str, str]) -> float:
    return statistics.median(CPU_TIMES[_key(argv, env)][1:])  # the first run is the warm-up


def startup(runs: int, rules: list[str]) -> dict[str, object]:
    env = env_for_bench()
    extra = [arg for folder in rules for arg in ("--rules", folder)]
    commands = {
        "python -c 'import click, yaml'": ([str(PYTHON), "-c", "import click, yaml"], env),
        "python -m neondoctor explain": ([str(PYTHON), "-m", "neondoctor", "explain", *extra, PASTED], env),
        "neondoctor explain (console script)": ([str(SCRIPT), "explain", *extra, PASTED], env),
        "python -m neondoctor explain, no rules cache": (
            [str(PYTHON), "-m", "neondoctor", "explain", *extra, PASTED],
            {**env, "NEONDOCTOR_NO_CACHE": "1"},
        ),
    }
    for argv, cmd_env in commands.values():
        run(argv, cmd_env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (argv, cmd_env) in commands.items():
            times[name].append(run(argv, cmd_env))
    base = statistics.median(times["python -c 'import click, yaml'"])
    base_cpu = cpu_median(*commands["python -c 'import click, yaml'"])
    rows = {
        name: {
            "median_ms": round(statistics.median(values) * 1000, 1),
            "min_ms": round(min(values) * 1000, 1),
            "ratio": round(statistics.median(values) / base, 2),
            "cpu_median_ms": round(cpu_median(*commands[name]) * 1000, 1),
            "cpu_ratio": round(cpu_median(*commands[name]) / base_cpu, 2),
        }
        for name, values in times.items()
    }
    return {"runs": runs, "commands": rows}


NOISE = [
    "{ts} web-1  | GET /api/v1/projects/{n}/branches 200 {ms}ms - 1.2kb",
    "{ts} web-1  | POST /api/v1/events 202 {ms}ms user_id={n} session=s{n}",
    '{ts} api-1  | {{"level":"info","msg":"request handled","path":"/health","status":200,"ms":{ms}}}',
    "{ts} api-1  | INFO:     172.18.0.1:{n} - \"GET /items/{n} HTTP/1.1\" 200 OK",
    "{ts} worker-1  | [INFO] job {n} finished in {ms} ms (queue=default, retries=0)",
    "{ts} worker-1  | [DEBUG] cache hit for key user:{n}:profile",
    "{ts} db-1  | {ts} UTC [{n}] LOG:  checkpoint complete: wrote {ms} buffers (0.1%)",
    "{ts} proxy-1  | 10.0.0.{ms} - - [02/Mar/2026:10:41:07 +0000] \"GET /static/app.{n}.js HTTP/1.1\" 200 5120",
]


STORM = [
    "{ts} web-1  | Error: connect ECONNREFUSED 10.0.0.5:5432",
    '{ts} api-1  | {{"level":"warn","msg":"db not ready, retrying in 1s","attempt":{n},"code":503}}',
]


def generate_log(path: Path, size_mb: int, seed: int = 7, storm: bool = False) -> None:
    """Noise with the BURIED errors at random depths; ``storm`` adds a retry loop's line every 10th line."""
    rng = random.Random(seed)
    target = size_mb * 1024 * 1024
    burials = sorted(rng.randrange(target // 10, target - target // 10) for _ in BURIED)
    blocks = list(BURIED.values())
    written = 0
    with path.open("w", encoding="utf-8") as out:
        while written < target:
            batch = []
            for _ in range(2000):
                ts = f"2026-03-02T10:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(1000):03d}Z"
                pool = STORM if storm and rng.randrange(10) == 0 else NOISE
                batch.append(rng.choice(pool).format(ts=ts, n=rng.randrange(10**6), ms=rng.randrange(1, 999)))
            text = "\n".join(batch) + "\n"
            while burials and written + len(text) >= burials[0]:
                burials.pop(0)
                text += "\n".join(blocks.pop(0)) + "\n"
            out.write(text)
            written += len(text)


def big_log(size_mb: int, rules: list[str], repeats: int = 3, storm: bool = False) -> dict[str, object]:
    env = env_for_bench()
    extra = [arg for folder in rules for arg in ("--rules", folder)]
    timer = shutil.which("time") or "/usr/bin/time"
    folder = Path(tempfile.mkdtemp(prefix="neondoctor-bench-"))
    try:
        log = folder / "big.log"
        generate_log(log, size_mb, storm=storm)
        size = log.stat().st_size
        walls: list[float] = []
        rss: list[float] = []
        found: list[str] = []
        for _ in range(repeats):
            argv = [timer, "-v", str(PYTHON), "-m", "neondoctor", "explain", *extra, "--json", "--file", str(log)]
            started = time.perf_counter()
            result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=300)
            walls.append(time.perf_counter() - started)
            if result.returncode not in (0, 1):
                raise SystemExit(f"explain --file exited {result.returncode}:\n{result.stderr[-2000:]}")
            peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
            rss.append(int(peak.group(1)) / 1024 if peak else float("nan"))
            found = [match["id"] for match in json.loads(result.stdout)["matches"]]
        return {
            "size_mb": round(size / 1024 / 1024, 1),
            "wall_s": round(statistics.median(walls), 2),
            "peak_rss_mb": round(statistics.median(rss), 1),
            "runs": repeats,
            "found": found,
            "missing": [rule_id for rule_id in BURIED if rule_id not in found],
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def rule_patterns(rules: list[str], with_sqlstate: bool = False, anchors: bool = False) -> list[str]:
    """What explain's prefilter looks for, as grep -E patterns (see the module docstring)."""
    sys.path.insert(0, str(ROOT))
    from neondoctor.explain import MARKERS, _anchor, needle
    from neondoctor.rules import load_rules
    from neondoctor.sieve import SQLSTATE_PATTERNS

    literals = load_rules(rules, env={}).literals() or []
    needles = sorted({needle(literal) for literal in (*literals, *MARKERS)})
    if anchors:
        needles = sorted({_anchor(text) for text in needles})
    escaped = [re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text) for text in needles]
    return escaped + ([pattern.decode() for pattern in SQLSTATE_PATTERNS] if with_sqlstate else [])


def doubled_rules(folder: Path) -> Path:
    """Every built-in rule again under another id, its regexes behind a made-up word: rules x2, literals x2."""
    import yaml

    sys.path.insert(0, str(ROOT))
    from neondoctor.rules import load_rules

    rules = []
    for number, rule in enumerate(load_rules(env={}).rules):
        data = rule.to_dict()
        word = "".join("qxzjvkwybp"[int(digit)] for digit in f"{number:03d}")
        data["id"] = f"{rule.id}-twin"
        flags = [re.match(r"\(\?[a-zA-Z]+\)", pattern) for pattern in rule.any]
        data["match"] = {
            "any": [
                (found.group(0) if found else "") + f"zz{word}q (?:{pattern[found.end() if found else 0 :]})"
                for pattern, found in zip(rule.any, flags, strict=True)
            ]
        }
        data["examples"] = [{"text": f"zz{word}q {ex['text']}", "source": "bench twin"} for ex in rule.examples]
        for key in ("origin", "file", "not_examples"):
            data.pop(key, None)
        rules.append(data)
    target = folder / "twins"
    target.mkdir()
    (target / "twins.yaml").write_text(yaml.safe_dump({"rules": rules}, allow_unicode=True), encoding="utf-8")
    return target


def against_grep(size_mb: int, rules: list[str], runs: int, storm: bool, folder: Path) -> dict[str, object]:
    env = env_for_bench()
    extra = [arg for rule_dir in rules for arg in ("--rules", rule_dir)]
    log = folder / ("storm.log" if storm else "plain.log")
    if not log.exists():
        generate_log(log, size_mb, storm=storm)
    patterns = folder / f"patterns-{len(rules)}.txt"
    patterns.write_text("\n".join(rule_patterns(rules)) + "\n", encoding="utf-8")
    anchors = folder / f"anchors-{len(rules)}.txt"
    anchors.write_text("\n".join(rule_patterns(rules, anchors=True)) + "\n", encoding="utf-8")
    commands = {
        "explain": [str(PYTHON), "-m", "neondoctor", "explain", *extra, "--json", "--file", str(log)],
        "grep": ["grep", "-E", "-i", "-c", "-f", str(patterns), str(log)],
        "grep-anchors": ["grep", "-E", "-i", "-c", "-f", str(anchors), str(log)],
    }
    for argv in commands.values():
        run(argv, env, ok=(0, 1))
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(run(argv, env, ok=(0, 1)))
    medians = {name: statistics.median(values) for name, values in times.items()}
    cpu = {name: cpu_median(argv, env) for name, argv in commands.items()}
    return {
        "grep_anchors_s": round(medians["grep-anchors"], 3),
        "ratio_anchors": round(medians["explain"] / medians["grep-anchors"], 2),
        "grep_anchors_cpu_s": round(cpu["grep-anchors"], 3),
        "cpu_ratio_anchors": round(cpu["explain"] / cpu["grep-anchors"], 2),
        "explain_cpu_s": round(cpu["explain"], 3),
        "grep_cpu_s": round(cpu["grep"], 3),
        "cpu_ratio": round(cpu["explain"] / cpu["grep"], 2),
        "size_mb": round(log.stat().st_size / 1024 / 1024, 1),
        "patterns": len(patterns.read_text().splitlines()),
        "explain_s": round(medians["explain"], 3),
        "grep_s": round(medians["grep"], 3),
        "ratio": round(medians["explain"] / medians["grep"], 2),
        "runs": runs,
    }


def grep_table(size_mb: int, rules: list[str], runs: int) -> list[dict[str, object]]:
    folder = Path(tempfile.mkdtemp(prefix="neondoctor-bench-"))
    try:
        twins = str(doubled_rules(folder))
        rows = []
        for label, rule_dirs in (("built-in rules", rules), ("rules x2 (twins)", [*rules, twins])):
            for storm in (False, True):
                row = against_grep(size_mb, rule_dirs, runs, storm, folder)
                row["rules"] = label
                row["log"] = "retry storm" if storm else "noise + 3 errors"
                rows.append(row)
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs of each start-up command (at least 15)")
    parser.add_argument("--size-mb", type=int, default=100, help="size of the generated log")
    parser.add_argument("--rules", action="append", default=[], metavar="DIR", help="extra rule folder")
    parser.add_argument("--skip-big", action="store_true", help="only the start-up comparison")
    parser.add_argument("--grep-runs", type=int, default=9, help="interleaved runs of explain and grep per log")
    parser.add_argument("--only-grep", action="store_true", help="only the comparison with grep")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    if args.runs < 15:
        parser.error("--runs must be at least 15")
    result: dict[str, object] = {}
    if not args.only_grep:
        result["startup"] = startup(args.runs, args.rules)
    if not args.skip_big and not args.only_grep:
        result["big_log"] = big_log(args.size_mb, args.rules)
        result["retry_storm_log"] = big_log(args.size_mb, args.rules, storm=True)
    if not args.skip_big:
        result["grep"] = grep_table(args.size_mb, args.rules, args.grep_runs)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if "startup" in result:
        rows = result["startup"]["commands"]  # type: ignore[index]
        print(f"One pasted error, {args.runs} interleaved runs each (target ratio ≤ {TARGET_RATIO}×):")
        for name, row in rows.items():
            print(
            f"  {name:<46} median {row['median_ms']:6.1f} ms  min {row['min_ms']:6.1f} ms  {row['ratio']:.2f}×"
            f"  (CPU {row['cpu_median_ms']:6.1f} ms, {row['cpu_ratio']:.2f}×)"
        )
    for key, label in (("big_log", "log"), ("retry_storm_log", "log with a retry storm (every 10th line)")):
        if key not in result:
            continue
        big: dict[str, Any] = result[key]  # type: ignore[assignment]
        targets = f"target ≤ {TARGET_WALL} s, ≤ {TARGET_RSS_MB} MB"
        print(f"\n{big['size_mb']} MB {label}, median of {big['runs']} ({targets}):")
        print(f"  wall {big['wall_s']} s, peak RSS {big['peak_rss_mb']} MB")
        print(f"  found: {', '.join(big['found']) or 'nothing'}")
        if big["missing"]:
            print(f"  MISSING: {', '.join(big['missing'])}")
    if "grep" in result:
        print(f"\nexplain --json --file vs grep -E -i -c -f PATTERNS, medians (target ≤ {TARGET_GREP_RATIO}×):")
        for row in result["grep"]:  # type: ignore[union-attr]
            print(
                f"  {row['rules']:<18} {row['log']:<17} {row['size_mb']} MB, {row['patterns']} patterns: "
                f"explain {row['explain_s']:.3f} s, grep {row['grep_s']:.3f} s, {row['ratio']:.2f}×"
                f" (CPU {row['explain_cpu_s']:.3f} s vs {row['grep_cpu_s']:.3f} s, {row['cpu_ratio']:.2f}×);"
                f" grep of the 16-char anchors {row['grep_anchors_s']:.3f} s, {row['ratio_anchors']:.2f}×"
                f" (CPU {row['grep_anchors_cpu_s']:.3f} s, {row['cpu_ratio_anchors']:.2f}×)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
