"""Every input shape is read in linear time: hostile or silly pastes take about as long as random text.

Before, 20 MB of ``Traceback (most recent call last):`` lines took 9 s against 0.4 s for random text: every
such line went through block assembly. The sizes here are scaled down to keep the suite fast; the cap is
relative to random text of the same size read in the same test, so a busy machine does not make it flaky.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable

import pytest

from neondoctor.explain import explain_stream
from neondoctor.rules import load_rules

SIZE = 4 << 20
RULESET = load_rules(env={})
BURIED = 'FATAL:  password authentication failed for user "alice"\n'


def fill(unit: Callable[[random.Random], str]) -> bytes:
    rng = random.Random(3)
    parts: list[str] = []
    size = 0
    while size < SIZE:
        part = unit(rng)
        parts.append(part)
        size += len(part)
    middle = len(parts) // 2
    return ("".join(parts[:middle]) + BURIED + "".join(parts[middle:])).encode()


def word(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8))


SHAPES: dict[str, Callable[[], bytes]] = {
    "traceback-headers": lambda: fill(lambda rng: "Traceback (most recent call last):\n"),
    "tracebacks-with-frames": lambda: fill(
        lambda rng: 'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n    f()\nKeyError: 1\n'
    ),
    "python-chains": lambda: fill(
        lambda rng: "During handling of the above exception, another exception occurred:\n\n"
        "Traceback (most recent call last):\n"
    ),
    "caused-by-repeated": lambda: fill(lambda rng: "Caused by: java.net.ConnectException: Connection refused\n"),
    "caused-by-distinct": lambda: fill(lambda rng: f"Caused by: java.io.IOException: {word(rng)} {word(rng)}\n"),
    "distinct-error-lines": lambda: fill(
        lambda rng: f'error: password authentication failed for user "{word(rng)}"\n'
    ),
    "sqlstate-lines": lambda: fill(lambda rng: f"ERROR: {word(rng)} (SQLSTATE 0{rng.randrange(10_000):04d})\n"),
    "one-huge-line": lambda: b"x" * SIZE + b"\n" + BURIED.encode(),
    "short-lines": lambda: fill(lambda rng: "a\n"),
    "nested-json": lambda: b'{"a":' * (SIZE // 10) + b"1" + b"}" * (SIZE // 10) + b"\n" + BURIED.encode(),
}


DISTINCT = ("distinct-error-lines", "caused-by-distinct", "sqlstate-lines")
"""Shapes made of distinct error lines: explain reads the first MAX_CANDIDATES (5,000) and ranks them, a fixed
cost of about a second on a busy 2-core machine, then only counts lines (it says so on stderr)."""
CANDIDATE_CAP_ALLOWANCE = 1.5


def read_time(data: bytes) -> tuple[float, list[str]]:
    started = time.perf_counter()
    result = explain_stream(io.BytesIO(data), RULESET)
    return time.perf_counter() - started, [match["id"] for match in result.matches]


@pytest.fixture(scope="module")
def baseline() -> float:
    alphabet = b"abcdefghij klmnop\n"
    text = random.Random(1).randbytes(SIZE).translate(bytes(alphabet[i % len(alphabet)] for i in range(256)))
    return min(read_time(text)[0] for _ in range(2))


@pytest.mark.parametrize("sieve", [True, False], ids=["hyperscan", "text-scanner-only"])
@pytest.mark.parametrize("shape", SHAPES)
def test_every_input_shape_reads_about_as_fast_as_random_text(
    shape: str, sieve: bool, baseline: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not sieve:
        import neondoctor.sieve

        monkeypatch.setattr(neondoctor.sieve, "make_sieve", lambda *args: None)
    elapsed, ids = read_time(SHAPES[shape]())
    cap = 3 * baseline + 0.5 + (CANDIDATE_CAP_ALLOWANCE if shape in DISTINCT else 0)
    assert elapsed < cap, f"{shape}: {elapsed:.2f} s for 4 MB, random text {baseline:.2f} s"
    if shape not in DISTINCT:
        assert "auth-password-failed" in ids
