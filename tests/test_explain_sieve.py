"""The fast paths change nothing but the time: the hyperscan first pass (block edges included) and the literal index."""

from __future__ import annotations

import io
import random

import pytest

from neondoctor import explain as explain_module
from neondoctor.explain import explain_stream
from neondoctor.rules import load_rules

RULESET = load_rules(env={})
ERRORS = [
    [
        'psql: error: connection to server at "localhost" (127.0.0.1), port 5999 failed: Connection refused',
        "\tIs the server running on that host and accepting TCP/IP connections?",
    ],
    [
        "org.postgresql.util.PSQLException: The connection attempt failed.",
        "\tat org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl(ConnectionFactoryImpl.java:354)",
        "Caused by: java.net.UnknownHostException: ep-cool-darknes-123456.us-east-2.aws.neon.tech",
        "\tat java.base/java.net.AbstractPlainSocketImpl.connect(AbstractPlainSocketImpl.java:399)",
    ],
    ["2026-03-02 10:41:07.311 UTC [4127] FATAL:  sorry, too many clients already"],
    ['{"level":"error","msg":"boom","code":"53300","detail":"x"}'],
    ["asyncpg.exceptions.UndefinedTableError: relation \"expenses\" does not exist"],
]


def log(seed: int, lines: int) -> bytes:
    rng = random.Random(seed)
    out: list[str] = []
    for number in range(lines):
        if rng.randrange(400) == 0:
            out.extend(rng.choice(ERRORS))
        elif rng.randrange(50) == 0:
            out.append(f"web-1  | Error: connect ECONNREFUSED 10.0.0.{number % 7}:5432")
        else:
            out.append(f"web-1  | GET /api/items/{rng.randrange(10**6)} 200 {rng.randrange(999)}ms")
    return ("\n".join(out) + "\n").encode()


def candidates(data: bytes, *, sieve: bool, chunk: int) -> list[tuple[str, int, int]]:
    literals = RULESET.literals()
    factory = (lambda: explain_module._sieve(literals)) if sieve else None
    chunks = explain_module.read_text_chunks(io.BytesIO(data), chunk_size=chunk, sieve=factory)
    scanner = explain_module.scan(chunks, literals)
    return [(c.text, c.line, c.depth) for c in scanner.candidates]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("chunk", [4096, 65536])
def test_the_sieve_changes_nothing_but_the_time(seed: int, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against the scanner's big-input path, which reads a repeated line REPEATS times as the sieve keeps it."""
    pytest.importorskip("hyperscan")
    monkeypatch.setattr(explain_module, "SMALL", 0)
    data = log(seed, 20_000)
    assert candidates(data, sieve=True, chunk=chunk) == candidates(data, sieve=False, chunk=chunk)


def test_without_hyperscan_the_text_scanner_reads_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    import neondoctor.sieve

    monkeypatch.setattr(neondoctor.sieve, "make_sieve", lambda *args: None)
    monkeypatch.setattr(explain_module, "CHUNK", 4096)
    data = log(4, 5_000)
    ids = [m["id"] for m in explain_stream(io.BytesIO(data), RULESET).matches]
    assert "tcp-connection-refused" in ids and "slots-too-many-clients" in ids


def test_the_literal_index_picks_the_same_matches_as_trying_every_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every rule example, explained with the literal index forced on and forced off."""
    texts = [example["text"] for rule in RULESET for example in rule.examples]

    def ids(min_candidates: int) -> list[list[tuple[str, str]]]:
        monkeypatch.setattr(explain_module.RuleIndex, "MIN_CANDIDATES", min_candidates)
        return [
            [(m["id"], m["confidence"]) for m in explain_module.explain_text(text, RULESET).matches] for text in texts
        ]

    assert ids(0) == ids(10**9)
