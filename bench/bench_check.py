"""Wall time of a healthy `neondoctor check` against a bare psycopg connect + SELECT 1.

Starts its own PostgreSQL server on loopback (tests/pgcluster.py, TLS from the test CA), then runs
both commands interleaved, each in a fresh interpreter, and reports the medians and their ratio.
Both run from bytecode, as after ``pip install``: PYTHONDONTWRITEBYTECODE is dropped so that the
warm-up run writes neondoctor's ``__pycache__`` (an editable install otherwise recompiles every run).
neondoctor runs from a normal (non-editable) install of this tree in a temporary folder, as users run
it: the development venv's editable-install finder costs ~10 ms per start (it imports
importlib.metadata), which no user pays. ``--editable`` measures the development tree instead.

    .venv/bin/python bench/bench_check.py [--runs 20] [--json] [--max-ratio 1.3] [--editable]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

TARGET_RATIO = 1.3


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + sys) of one run in a fresh interpreter."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    # Not from the tree: `python -m` puts the working directory first on sys.path, which would shadow the install.
    outside = tempfile.gettempdir()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=outside, check=False, timeout=60)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{argv[1:3]} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def install_copy() -> str:
    """``pip install --no-deps --target`` of this tree into a temporary folder; its dependencies come from this venv."""
    import atexit
    import shutil
    import tempfile

    target = tempfile.mkdtemp(prefix="neondoctor-bench-install-")
    atexit.register(shutil.rmtree, target, True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target, str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each command (at least 15)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--max-ratio", type=float, default=None, help="exit 1 if the ratio is above this")
    parser.add_argument("--editable", action="store_true", help="run the development tree, not an installed copy")
    args = parser.parse_args()
    runs = max(15, args.runs)

    from pgcluster import start_cluster

    cluster = start_cluster(ssl="ca")
    try:
        url = cluster.url(**cluster.verify_full_params())
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
        env["NO_COLOR"] = "1"
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if not args.editable:
            env["PYTHONPATH"] = install_copy()
        check = [sys.executable, "-m", "neondoctor", "check", url]
        bare = [sys.executable, "-c", "import sys, psycopg; psycopg.connect(sys.argv[1]).execute('select 1')", url]
        timed(check, env)
        timed(bare, env)
        samples: dict[str, list[float]] = {"check": [], "bare": []}
        cpu: dict[str, list[float]] = {"check": [], "bare": []}
        for _ in range(runs):
            for name, argv in (("check", check), ("bare", bare)):
                wall, used = timed(argv, env)
                samples[name].append(wall)
                cpu[name].append(used)
    finally:
        cluster.stop()

    medians = {name: statistics.median(values) for name, values in samples.items()}
    ratio = medians["check"] / medians["bare"]
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    result = {
        "runs": runs,
        "median_ms": {name: round(value * 1000, 1) for name, value in medians.items()},
        "min_ms": {name: round(min(values) * 1000, 1) for name, values in samples.items()},
        "ratio": round(ratio, 2),
        "cpu_median_ms": {name: round(value * 1000, 1) for name, value in cpu_medians.items()},
        "cpu_ratio": round(cpu_medians["check"] / cpu_medians["bare"], 2),
        "load_average": round(os.getloadavg()[0], 2),
        "target_ratio": TARGET_RATIO,
        "python": sys.version.split()[0],
        "server_version": cluster.version,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"healthy check vs bare psycopg connect + SELECT 1, {runs} interleaved runs each, fresh interpreter")
        for name in ("check", "bare"):
            print(f"  {name:<6} median {result['median_ms'][name]:7.1f} ms   min {result['min_ms'][name]:7.1f} ms")
        print(f"  ratio  {ratio:.2f}× (target ≤ {TARGET_RATIO}×)")
        cpu_ms = result["cpu_median_ms"]
        print(f"  CPU (user+sys) median: check {cpu_ms['check']} ms, bare {cpu_ms['bare']} ms, "
              f"ratio {result['cpu_ratio']}× (load average {result['load_average']})")
    limit = args.max_ratio
    return 1 if limit is not None and ratio > limit else 0


if __name__ == "__main__":
    raise SystemExit(main())
