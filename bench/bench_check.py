"""Wall time of a healthy `neondoctor check` against a bare psycopg connect + SELECT 1.

Starts its own PostgreSQL server on loopback (tests/pgcluster.py, TLS from the test CA), then runs
both commands interleaved, each in a fresh interpreter, and reports the medians and their ratio, for
two strings:

- ``verify-full``: ``postgresql://alice:…@127.0.0.1:PORT/app?sslmode=verify-full&sslrootcert=CA``;
- ``tutorial``: the Neon tutorial's ``postgresql+psycopg2://alice:…@ep-….neon.tech:PORT/app?sslmode=require``,
  the name answered by a loopback DNS server (``--nameserver``) and the test CA standing for the public
  roots (``SSL_CERT_FILE``). The bare connect gets the libpq form with ``hostaddr=127.0.0.1``: it resolves
  nothing, while check asks the DNS server for A and AAAA records (dnspython's import included).

Both run from bytecode, as after ``pip install``: PYTHONDONTWRITEBYTECODE is dropped so that the
warm-up run writes neondoctor's ``__pycache__`` (an editable install otherwise recompiles every run).
neondoctor runs from a normal (non-editable) install of this tree in a temporary folder, as users run
it: the development venv's editable-install finder costs ~10 ms per start (it imports
importlib.metadata), which no user pays. ``--editable`` measures the development tree instead.

    .venv/bin/python bench/bench_check.py [--runs 20] [--json] [--max-ratio 1.3] [--editable]
                                          [--scenario verify-full|tutorial|both]
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
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

TARGET_RATIO = 1.3
NEON_HOST = "ep-cool-darkness-123456.us-east-2.aws.neon.tech"
BARE = "import sys, psycopg; psycopg.connect(sys.argv[1]).execute('select 1')"


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


Commands = dict[str, tuple[list[str], dict[str, str]]]
"""name → (argv, environment)"""
Samples = dict[str, tuple[list[float], list[float]]]
"""name → (wall times, CPU times)"""


def interleaved(pairs: Commands, runs: int) -> Samples:
    """Each command once to warm up (and write bytecode), then ``runs`` rounds of all of them in turn."""
    for argv, env in pairs.values():
        timed(argv, env)
    samples: Samples = {name: ([], []) for name in pairs}
    for _ in range(runs):
        for name, (argv, env) in pairs.items():
            wall, used = timed(argv, env)
            samples[name][0].append(wall)
            samples[name][1].append(used)
    return samples


def summarise(samples: Samples, runs: int) -> dict[str, Any]:
    wall = {name: statistics.median(values[0]) for name, values in samples.items()}
    cpu = {name: statistics.median(values[1]) for name, values in samples.items()}
    return {
        "runs": runs,
        "median_ms": {name: round(value * 1000, 1) for name, value in wall.items()},
        "min_ms": {name: round(min(values[0]) * 1000, 1) for name, values in samples.items()},
        "ratio": round(wall["check"] / wall["bare"], 2),
        "cpu_median_ms": {name: round(value * 1000, 1) for name, value in cpu.items()},
        "cpu_ratio": round(cpu["check"] / cpu["bare"], 2),
        "load_average": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each command (at least 15)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--max-ratio", type=float, default=None, help="exit 1 if the ratio is above this")
    parser.add_argument("--editable", action="store_true", help="run the development tree, not an installed copy")
    parser.add_argument("--scenario", choices=("verify-full", "tutorial", "both"), default="both")
    args = parser.parse_args()
    runs = max(15, args.runs)

    from peers import DnsServer
    from pgcluster import ALICE_PASSWORD, start_cluster

    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    env["NO_COLOR"] = "1"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not args.editable:
        env["PYTHONPATH"] = install_copy()
    cluster = start_cluster(ssl="ca", cert_names=(NEON_HOST,))
    dns = DnsServer({NEON_HOST: "127.0.0.1"}).start()
    results: dict[str, Any] = {}
    try:
        scenarios: dict[str, Commands] = {}
        if args.scenario in ("verify-full", "both"):
            url = cluster.url(**cluster.verify_full_params())
            scenarios["verify-full"] = {
                "check": ([sys.executable, "-m", "neondoctor", "check", url], env),
                "bare": ([sys.executable, "-c", BARE, url], env),
            }
        if args.scenario in ("tutorial", "both"):
            password = quote(ALICE_PASSWORD, safe="")
            app = f"alice:{password}@{NEON_HOST}:{cluster.port}/app?sslmode=require"
            public = {**env, "SSL_CERT_FILE": str(cluster.ca_path), "HOME": tempfile.mkdtemp(prefix="bench-home-")}
            scenarios["tutorial"] = {
                "check": ([sys.executable, "-m", "neondoctor", "check", f"postgresql+psycopg2://{app}",
                           "--nameserver", str(dns)], public),
                "bare": ([sys.executable, "-c", BARE, f"postgresql://{app}&hostaddr=127.0.0.1"], public),
            }
        for name, pairs in scenarios.items():
            results[name] = summarise(interleaved(pairs, runs), runs)
    finally:
        dns.stop()
        cluster.stop()

    result = {"scenarios": results, "target_ratio": TARGET_RATIO, "python": sys.version.split()[0],
              "server_version": cluster.version}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"healthy check vs bare psycopg connect + SELECT 1, {runs} interleaved runs each, fresh interpreter")
        for name, figures in results.items():
            print(f"{name}:")
            for command in ("check", "bare"):
                print(f"  {command:<6} median {figures['median_ms'][command]:7.1f} ms   "
                      f"min {figures['min_ms'][command]:7.1f} ms")
            print(f"  ratio  {figures['ratio']:.2f}× (target ≤ {TARGET_RATIO}×)")
            cpu_ms = figures["cpu_median_ms"]
            print(f"  CPU (user+sys) median: check {cpu_ms['check']} ms, bare {cpu_ms['bare']} ms, "
                  f"ratio {figures['cpu_ratio']}× (load average {figures['load_average']})")
    limit = args.max_ratio
    return 1 if limit is not None and any(figures["ratio"] > limit for figures in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
