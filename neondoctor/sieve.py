"""A first pass over a big log at the speed of grep: keep only the lines near something a rule could match.

Hyperscan scans raw bytes for every rule literal at once (one automaton, so adding rules barely changes the
time) and reports where they end. Lines further than CONTEXT lines from any such hit are emptied, newlines
kept, so line numbers do not move and the text scanner in ``explain`` reads a few kilobytes instead of the
whole block. A line seen REPEATS times already (digits aside) does not keep its neighbours again, which keeps
a retry storm cheap; cause-chain markers always do, so chain depth is counted as before. When hyperscan is
not installed (it is only built for some platforms), ``make_sieve`` returns None and the text scanner reads
everything, only slower.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

CONTEXT = 16
"""Lines kept on each side of a hit: the text scanner looks at most this far for continuation lines."""
MAX_HITS = 4096
"""More hits than this in one block: the block is passed on whole (the text scanner steps over repeats faster)."""
REPEATS = 3
MAX_KEYS = 50_000
_DIGITS = bytes.maketrans(b"0123456789", b"0000000000")
SQLSTATE_PATTERNS = (  # looser than explain's exact SQLSTATE regexes, which check every line kept
    rb"sql[ _-]?state\W{0,4}e?[0-9a-z]{5}",
    rb"(?:pg)?code\W{1,4}(?:\d[0-9a-z]{4}|[a-z]\d[0-9a-z]{3}|[a-z]{2}\d[0-9a-z]{2}|[a-z]{3}\d[0-9a-z]|[a-z]{4}\d)",
    rb"postgres(?:ql)?(?:\+\w+)?://",
)


def make_sieve(needles: Iterable[str], structural: Iterable[str]) -> Callable[[bytes], bytes] | None:
    try:
        import hyperscan
    except ImportError:
        return None
    try:
        return _Sieve(hyperscan, needles, structural)
    except Exception:  # a pattern hyperscan rejects, an old version: read everything instead
        return None


def _compiled(hyperscan: Any, expressions: list[bytes]) -> Any:
    """The compiled database, from the cache when these expressions were compiled before (compiling takes
    20-100 ms; loading ~0.1 ms)."""
    import hashlib
    import os

    from neondoctor.rules import cache_dir

    digest = hashlib.sha256(b"\0".join([str(getattr(hyperscan, "__version__", "")).encode(), *expressions]))
    folder = cache_dir()
    cached = folder / f"prefilter-{digest.hexdigest()[:16]}.hsdb" if folder else None
    if cached is not None:
        try:
            database = hyperscan.loadb(cached.read_bytes(), hyperscan.HS_MODE_BLOCK)
            database.scratch = hyperscan.Scratch(database)
            return database
        except (OSError, hyperscan.error):
            pass
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        expressions=expressions,
        ids=list(range(len(expressions))),
        elements=len(expressions),
        flags=[hyperscan.HS_FLAG_CASELESS] * len(expressions),
    )
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
            partial.write_bytes(hyperscan.dumpb(database))
            os.replace(partial, cached)
        except OSError:
            pass
    return database


def _expression(text: str) -> bytes:
    return b"".join(bytes([byte]) if chr(byte).isalnum() else b"\\x%02x" % byte for byte in text.encode("utf-8"))


class _Sieve:
    def __init__(self, hyperscan: Any, needles: Iterable[str], structural: Iterable[str]) -> None:
        expressions: list[bytes] = []
        marks: set[int] = set()
        markers = set(structural)
        for needle in sorted(set(needles)):
            variants = {needle} if needle.isascii() else {needle, needle.upper(), needle.capitalize(), needle.title()}
            for variant in sorted(variants):
                if needle in markers:
                    marks.add(len(expressions))
                expressions.append(_expression(variant))
        expressions.extend(SQLSTATE_PATTERNS)
        self.structural = frozenset(marks)
        self.database = _compiled(hyperscan, expressions)
        self.counts: dict[bytes, int] = {}
        self.failed: type[Exception] = hyperscan.error

    def __call__(self, block: bytes) -> bytes:
        hits: list[tuple[int, int]] = []
        append = hits.append

        def on_match(pattern: int, start: int, end: int, flags: int, context: Any) -> bool:
            append((end, pattern))
            return len(hits) > MAX_HITS

        try:
            self.database.scan(block, match_event_handler=on_match)
        except self.failed:  # stopped at MAX_HITS, or any other trouble: read the whole block
            return block
        if len(hits) > MAX_HITS:
            return block
        return self._keep_near(block, hits)

    def _keep_near(self, block: bytes, hits: list[tuple[int, int]]) -> bytes:
        """The block with only these lines kept: CONTEXT lines around each hit, and the first and last CONTEXT
        lines (their neighbours may be in the next or the previous block)."""
        ranges: list[tuple[int, int]] = []
        line_start = line_end = -1
        structural = False
        for end, pattern in sorted(hits):
            if end <= line_end:
                structural = structural or pattern in self.structural
                continue
            if line_end >= 0:
                self._window(block, line_start, line_end, structural, ranges)
            line_start = block.rfind(b"\n", 0, end) + 1
            line_end = block.find(b"\n", end)
            if line_end < 0:
                line_end = len(block)
            structural = pattern in self.structural
        if hits:
            self._window(block, line_start, line_end, structural, ranges)
        edge = block.rfind(b"\n", 0, _back(block, len(block) - 1, CONTEXT)) + 1
        ranges.insert(0, (0, _forward(block, 0, CONTEXT)))
        ranges.append((edge, len(block)))
        pieces: list[bytes] = []
        done = 0
        for start, stop in ranges:
            if start > done:
                pieces.append(b"\n" * block.count(b"\n", done, start))
            pieces.append(block[max(start, done) : stop])
            done = max(done, stop)
        pieces.append(b"\n" * block.count(b"\n", done))
        return b"".join(pieces)

    def _window(
        self, block: bytes, line_start: int, line_end: int, structural: bool, ranges: list[tuple[int, int]]
    ) -> None:
        if not structural:
            key = block[line_start : min(line_end, line_start + 300)].translate(_DIGITS)
            seen = self.counts.get(key, 0)
            if seen >= REPEATS:
                return
            if seen or len(self.counts) < MAX_KEYS:
                self.counts[key] = seen + 1
        start = _back(block, line_start, CONTEXT)
        stop = _forward(block, line_end, CONTEXT)
        if ranges and start <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], stop))
        else:
            ranges.append((start, stop))


def _back(block: bytes, line_start: int, count: int) -> int:
    """The start of the line ``count`` lines before the one starting at ``line_start``."""
    start = line_start
    for _ in range(count):
        if start <= 0:
            return 0
        start = block.rfind(b"\n", 0, start - 1) + 1
    return start


def _forward(block: bytes, line_end: int, count: int) -> int:
    """Just past the newline that ends the line ``count`` lines after the one ending at ``line_end``."""
    stop = line_end
    for _ in range(count):
        if stop >= len(block):
            return len(block)
        found = block.find(b"\n", stop + 1)
        stop = len(block) if found < 0 else found
    return min(stop + 1, len(block))
