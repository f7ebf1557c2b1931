"""Read pasted errors and whole logs, find the error lines in them, and rank the rules they match.

The input is streamed in chunks of whole lines, so a 100 MB log never sits in memory. Past the first chunk,
a hyperscan pass (``neondoctor/sieve.py``) empties the lines far from any rule literal. Each chunk is then
scanned for the literal strings the rules need (plus stack-trace markers and SQLSTATE markers); only
those lines, with their neighbours, become candidates that the rules' regexes are tried on. Ranking adds a
confidence to each match from the tables in ``rules/engine.json``.
"""

from __future__ import annotations

import functools
import io
import itertools
import re
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from neondoctor.redact import Redactor

if TYPE_CHECKING:
    from neondoctor.rules import Rule, RuleSet

CHUNK = 1 << 20
MAX_LINE = 64 << 10
SMALL = 256 << 10
MAX_BLOCK_LINES = 8
MAX_CANDIDATE = 4 << 10
MAX_CANDIDATES = 5_000
CONTEXT_LINES = 16
MAX_CARRY = 256 << 10
REPEATS = 3
"""In a big log, the same error line (digits aside) is read this many times; later copies are skipped."""
MAX_TAILS = 50_000
PRECHECK = 8 << 10
"""A window this long (often a sieved block: mostly empty lines) is first checked for literals with its blank
lines squeezed out."""

LEVELS = ("low", "medium", "high")
CHECK_COMMAND = 'neondoctor check "$DATABASE_URL"'
"""What to run when the answer is a guess: the checklist tries each step of the connection and stops at the one
that fails."""


@functools.cache
def tables() -> dict[str, Any]:
    """The engine's data (rules/engine.json): confidence bands, SQLSTATE classes and their layers, driver
    exception classes. Read once, on first use."""
    return _read_tables()


def _read_tables() -> dict[str, Any]:
    import json

    from neondoctor.rules import engine_tables_file

    data = json.loads(engine_tables_file().read_text(encoding="utf-8"))
    return {
        "bands": [(band["min_priority"], band["level"]) for band in data["confidence"]["bands"]],
        "classes": data["sqlstate_classes"]["classes"],
        "codes": data["sqlstate_codes"]["codes"],
        "exceptions": data["exception_sqlstates"]["classes"],
    }


def sqlstate_meaning(code: str) -> str:
    """What a SQLSTATE's class means. Every code explain reports has its class in the table: find_sqlstates checks
    a printed code's, and every driver exception's code is of a listed class (tests/test_explain_ranking.py)."""
    return tables()["classes"][code[:2]]["meaning"]


def sqlstate_layer(code: str) -> str | None:
    """The layer a SQLSTATE points at, from the code's own entry or else its class's; None: no guess."""
    data = tables()
    if code in data["codes"]:
        return data["codes"][code].get("layer")
    return data["classes"][code[:2]].get("layer")


STRUCTURE_KINDS = {
    "caused by:": "cause",
    "[cause]:": "cause",
    "traceback (most recent call last)": "traceback",
    "the above exception was the direct cause": "chain",
    "during handling of the above exception": "chain",
}
STRUCTURE_MARKERS = tuple(STRUCTURE_KINDS)
MARKERS = (
    *STRUCTURE_MARKERS,
    "psycopg.errors.",
    "psycopg2.errors.",
    "asyncpg.exceptions.",
)
"""Lines worth reading besides those holding a rule's literal: cause-chain structure, driver exception classes."""

_CONTROL = bytes(b for b in range(32) if b not in (9, 10)) + b"\x7f"
_ANSI = re.compile(rb"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_PREFIX = re.compile(
    r"""^(?:
        [\w.-]+\s*\|\s?                                                        # compose: "app-1  | "
      | \[pod/[\w.-]+/[\w.-]+\]\s                                            # kubectl --prefix: "[pod/app-7d9/app] "
      | pod/[\w.-]+\ [\w.-]+\s                                                # "pod/app-7d9 app "
      | <\d{1,3}>(?:1\ )?                                                     # syslog priority "<34>1 "
      | \[?\d{4}-\d\d-\d\d[T\ ]\d\d:\d\d:\d\d(?:[.,]\d+)?
            (?:\ ?(?:Z|[+-]\d\d:?\d\d|[A-Z]{2,5}))?\]?\s+                     # ISO timestamp, optional zone
      | [A-Z][a-z]{2}\ [\ \d]\d\ \d\d:\d\d:\d\d(?:\.\d+)?\ \S+\ [\w./@-]+(?:\[\d+\])?:\s+  # syslog header
      | [\w.-]+\ [\w./@-]+\[\d+\]:\s+                                          # journald "host app[1234]: "
      | \[?\d\d:\d\d:\d\d(?:[.,]\d+)?\]?\s+                                    # clock time
      | \[\d+\]\s+                                                             # [pid]
    )""",
    re.VERBOSE,
)
_CONTINUATION = re.compile(
    r"""^(?:\t(?!at\s)
      | \s*(?:HINT|DETAIL|CONTEXT|LOCATION|WHERE|QUERY|STATEMENT):
      | \s*(?:Is\ the\ server\ running|This\ probably\ means|before\ or\ while\ processing|Either\ provide\ the\ file
             |and\ accepting|TCP/IP\ connections\ on\ port)
    )""",
    re.VERBOSE | re.IGNORECASE,
)
_FRAME = re.compile(r"^\s+at\s+\S.*(?:\)|:\d+)\s*$|^\s*File \"[^\"]*\", line \d+|^\s*\.\.\. \d+ (?:more|common frames)")
_PY_FILE = re.compile(r"^(\s*)File \"[^\"]*\", line \d+")
_CAUSED_BY = re.compile(r"^(?:Caused by:|\[cause\]:)", re.IGNORECASE)
_PY_CHAIN = re.compile(
    r"^(?:The above exception was the direct cause of the following exception|"
    r"During handling of the above exception, another exception occurred)",
    re.IGNORECASE,
)
_PY_TRACEBACK = re.compile(r"^Traceback \(most recent call last\)")
_EXCEPTION_HEAD = re.compile(r"^[\w$.]*(?:Exception|Error)\b")
_ATTEMPT = re.compile(r"(?:could not connect to server|connection to server (?:at|on)) ", re.IGNORECASE)
_ATTEMPT_DONE = re.compile(r"(?:failed:|FATAL:|ERROR:)[ \t]*\S")
_PROPERTY = re.compile(
    r"^(?:errno|code|syscall|address|port|severity|length|routine|file|line|position|name)\s*:\s*['\"\w-]"
)
_URL = re.compile(r"\bpostgres(?:ql)?(?:\+\w+)?://")
_SQLSTATE_SCAN = (  # on lower-cased text; a superset of _SQLSTATE, each with a literal prefix so the scan is fast
    re.compile(r"sql[ _-]?state\W{0,4}e?(?=[a-z]{0,4}\d)[0-9a-z]{5}\b"),
    re.compile(r"code\W{1,4}(?=[a-z]{0,4}\d)[0-9a-z]{5}\b"),
)
_BLANK_RUNS = re.compile(r"\n{2,}")
_ESCAPED = re.compile(r'(?<!\\)\\(?:[n"]|u[0-9a-fA-F]{4})')
r"""What a JSON-escaped line shows: ``\n``, ``\"`` or ``\uXXXX`` after a backslash that is not itself escaped.
A lone ``\\`` is no sign of JSON: libpq's key=value quoting writes a backslash so (``password='\\'``),
and unescaping it would break the quoting the redactor reads."""
_UNESCAPE = re.compile(r'\\(?:([nrt"/\\])|u([0-9a-fA-F]{4}))')
_UNESCAPED = {"n": "\n", "r": "\n", "t": "\t", '"': '"', "/": "/", "\\": "\\"}
_HTML_ESCAPED = re.compile(r"&(?:(quot|apos|lt|gt|amp|nbsp)|#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_HTML_ENTITIES = {"quot": '"', "apos": "'", "lt": "<", "gt": ">", "amp": "&", "nbsp": " "}
_UNREACHABLE = (
    r"(?:Network\ is\ unreachable|Cannot\ assign\ requested\ address"
    r"|Address\ family\ not\ supported\ by\ protocol|No\ route\ to\ host)"
)
_IPV6_UNREACHABLE = re.compile(
    rf"""connection\ to\ server\ at\ "(?P<host>[^"]*)"(?:\ \((?P<ip>[^)]*)\))?,\ port\ \d+\ failed:
            \s*{_UNREACHABLE}
       | could\ not\ connect\ to\ server:\ {_UNREACHABLE}
            \s+Is\ the\ server\ running\ on\ host\ "[^"]*"\ \((?P<ip2>[^)]*)\)
       | \b(?:ENETUNREACH|EHOSTUNREACH|EADDRNOTAVAIL|EAFNOSUPPORT)\b
            \s*(?P<ip3>\[?[0-9a-f]*:[0-9a-f:]*:[0-9a-f:.\]]*)""",
    re.VERBOSE | re.IGNORECASE,
)
_SQLSTATE = re.compile(
    r"""(?:\bsql[\ _-]?state\b["']?\s*[:=\[(]?\s*["'\[(]?
       | \b(?:pg)?code["']?\s*[:=]\s*["']?
       | \b(?-i:ERROR|FATAL|PANIC):\s+(?=[0-9A-Z]{5}:)
       | \bSqlState\(E?
    )(?-i:(?P<code>(?=[A-Z]{0,4}[0-9])[0-9A-Z]{5}))\b""",
    re.VERBOSE | re.IGNORECASE,
)
_EXCEPTION_CLASS = re.compile(r"\b(?:psycopg2?\.errors|asyncpg\.exceptions)\.(\w+?)(?:Error)?\b")


class Candidate:
    """One error block: a line, the continuation lines that belong to it, where it sits in the cause chain.

    A candidate is ``demoted`` (ranked after every other) when it is weak evidence: an IPv6 attempt
    that failed only because this machine has no IPv6 route, or a property line of an error dump
    (``  code: 'ENETUNREACH',``) rather than the error's own message.
    """

    __slots__ = ("demoted", "depth", "line", "lower", "order", "sqlstates", "text")

    def __init__(self, text: str, line: int, depth: int, order: int) -> None:
        self.text = text
        self.lower = text.lower()
        self.line = line
        self.depth = depth
        self.order = order
        self.demoted = bool(_PROPERTY.match(text)) or _is_ipv6_unreachable(text)
        self.sqlstates = find_sqlstates(text)


class Explanation:
    __slots__ = ("answer", "candidates", "empty", "guess", "has_url", "lines", "matches", "sqlstates", "truncated")

    def __init__(
        self, scanner: _Scanner, sqlstates: list[str], matches: list[dict[str, Any]], guess: dict[str, Any] | None
    ) -> None:
        self.matches = matches
        """Rule matches, best first."""
        self.guess = guess
        """When no rule matched: a match-shaped guess of the layer from a SQLSTATE (rules/engine.json)."""
        self.answer = _answer(matches or ([guess] if guess else []))
        """The top match (or the guess) summed up: its confidence, whether it is a guess, the runner-up."""
        self.sqlstates = sqlstates
        self.candidates = scanner.candidates
        self.lines = scanner.lines
        self.empty = scanner.empty
        self.truncated = scanner.truncated
        self.has_url = scanner.has_url
        """The input holds a postgres:// URL: a user who pasted a connection string wants ``neondoctor url``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "matches": [*self.matches, self.guess] if self.guess else self.matches,
            "sqlstates": [
                {"code": code, "class": code[:2], "meaning": sqlstate_meaning(code)}
                for code in self.sqlstates
            ],
        }


# --------------------------------------------------------------------------- reading


def read_text_chunks(
    stream: BinaryIO,
    chunk_size: int = CHUNK,
    max_line: int = MAX_LINE,
    sieve: Callable[[], Callable[[bytes], bytes] | None] | None = None,
) -> Iterator[str]:
    """Decoded text made of whole lines: CRs normalised, ANSI colours and control characters gone, lines capped.

    ``sieve`` makes a filter that empties the lines far from anything interesting, keeping every newline; it is
    made only when the input is longer than one chunk, so a pasted error never pays for it."""
    blocks = _whole_lines(_raw_chunks(stream, chunk_size), max_line)
    first = next(blocks, None)
    if first is None:
        return
    for bom in _BOMS:
        if first.startswith(bom):
            first = first[len(bom) :]
            break
    second = next(blocks, None)
    active = sieve() if sieve is not None and second is not None else None
    for block in itertools.chain([first], [second] if second is not None else [], blocks):
        if active is not None:
            if b"\x00" in block or b"\x1b" in block:
                block = clean_bytes(block)
            block = active(block)
        yield clean_bytes(block).decode("utf-8", "replace")


def clean_bytes(block: bytes) -> bytes:
    if b"\x1b" in block:
        block = _ANSI.sub(b"", block)
    return block.translate(None, _CONTROL)


def _raw_chunks(stream: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    while True:
        raw = stream.read(chunk_size)
        if not raw:
            return
        yield raw


def _whole_lines(chunks: Iterable[bytes], max_line: int) -> Iterator[bytes]:
    """Blocks of complete lines (CRLF and a lone CR end a line). An unfinished line that grows past
    ``max_line`` is cut there, which bounds memory; lines inside a block are capped where they are read."""
    pending = b""
    skipping = False
    for raw in chunks:
        if not skipping and b"\r" not in raw:  # the common case, with one copy of the block at most
            cut = raw.rfind(b"\n") + 1
            if cut and len(raw) - cut <= max_line:
                yield raw if cut == len(raw) and not pending else b"".join((pending, memoryview(raw)[:cut]))
                pending = raw[cut:]
                continue
        data = pending + raw if pending else raw
        held_cr = data.endswith(b"\r")  # maybe the first half of a CRLF split between two reads
        if held_cr:
            data = data[:-1]
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if skipping:
            newline = data.find(b"\n")
            if newline < 0:
                pending = b"\r" if held_cr else b""
                continue
            data = data[newline + 1 :]
            skipping = False
        cut = data.rfind(b"\n") + 1
        complete, rest = data[:cut], data[cut:]
        if len(rest) > max_line:
            complete += rest[:max_line] + b"\n"
            rest = b""
            skipping = True
        pending = rest + b"\r" if held_cr else rest
        if complete:
            yield complete
    if pending:
        yield pending.replace(b"\r", b"\n").rstrip(b"\n") + b"\n"


# --------------------------------------------------------------------------- finding the error lines


def strip_prefix(line: str) -> str:
    """Drop docker-compose service prefixes, timestamps, syslog headers and [pid] tags."""
    for _ in range(4):
        found = _PREFIX.match(line)
        if not found:  # every form of _PREFIX is at least two characters long
            break
        line = line[found.end() :]
    return line


def unescape(text: str) -> str:
    """See through a JSON log line's string escapes (nested ones too: one level per pass while the text still
    looks escaped) and an HTML-escaped paste."""
    for _ in range(3):
        if "\\" not in text or not _ESCAPED.search(text):
            break
        text = _UNESCAPE.sub(_unescape_one, text)
    if "&" in text:
        text = _HTML_ESCAPED.sub(_html_one, text)
    return text


def _unescape_one(found: re.Match[str]) -> str:
    if found.group(1):
        return _UNESCAPED[found.group(1)]
    return _printable(int(found.group(2), 16))


def _html_one(found: re.Match[str]) -> str:
    if found.group(1):
        return _HTML_ENTITIES[found.group(1)]
    return _printable(int(found.group(2)) if found.group(2) else int(found.group(3), 16))


def _printable(code: int) -> str:
    if code in (9, 10):
        return chr(code)
    if code < 32 or code == 127 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return " "
    return chr(code)


def _is_ipv6_unreachable(text: str) -> bool:
    for found in _IPV6_UNREACHABLE.finditer(text):
        address = found.group("ip") or found.group("ip2") or found.group("ip3") or found.group("host") or ""
        if address.count(":") >= 2:
            return True
    return False


def find_sqlstates(text: str) -> list[str]:
    codes: list[str] = []
    for found in _SQLSTATE.finditer(text):
        code = found.group("code")
        if code[:2] in tables()["classes"] and any(ch.isdigit() for ch in code) and code not in codes:
            codes.append(code)
    for found in _EXCEPTION_CLASS.finditer(text):
        code = tables()["exceptions"].get(found.group(1).lower())
        if code and code not in codes:
            codes.append(code)
    return codes


def split_attempts(line: str) -> list[str]:
    """libpq prints one ``connection to server … failed: …`` per host address; each is its own candidate."""
    cuts = [0]
    for found in _ATTEMPT.finditer(line):
        if _ATTEMPT_DONE.search(line, cuts[-1], found.start()):
            cuts.append(found.start())
    if len(cuts) == 1:
        return [line]
    cuts.append(len(line))
    return [piece for piece in (line[a:b].strip() for a, b in itertools.pairwise(cuts)) if piece]


def group_blocks(lines: list[str]) -> list[list[str]]:
    blocks: list[list[str]] = []
    for line in lines:
        if blocks and _CONTINUATION.match(line) and len(blocks[-1]) <= MAX_BLOCK_LINES:
            blocks[-1].append(line)
            continue
        blocks.extend([piece] for piece in split_attempts(line))
    return blocks


class _Scanner:
    """Turns chunks of text into candidates, keeping cause-chain state across chunks."""

    def __init__(self, literals: list[str] | None, max_line: int = MAX_LINE) -> None:
        self.literals = None if literals is None else sorted({needle(literal) for literal in {*literals, *MARKERS}})
        self.max_line = max_line
        self._trie: re.Pattern[str] | None = None
        self._ascii_trie: re.Pattern[str] | None = None
        self._structural: dict[str, str] = {}
        self._tails: dict[str, int] = {}
        self._keys: dict[str, str] = {}
        self._codes: dict[str, int] = {}
        self.repeats = 0
        self.candidates: list[Candidate] = []
        self.seen: set[str] = set()
        self.truncated = False
        self.empty = True
        self.has_url = False
        self.lines = 0
        self._last_head = -1
        self._chain_depth = 0
        self._py_level = 0
        self._py_pending = False
        self._carry = ""
        self._carry_from = 0
        self._base_line = 1
        self._base_offset = 0

    def feed(self, chunk: str, final: bool = False) -> None:
        if self.empty and chunk and not chunk.isspace():
            self.empty = False
        buffer = self._carry + chunk if self._carry else chunk
        start = self._carry_from
        if final:
            limit = len(buffer)
        else:
            tail = _back_lines(buffer, len(buffer), CONTEXT_LINES)
            limit = max(start, tail, _line_at(buffer, len(buffer) - MAX_CARRY))
        lower = buffer.lower()
        if len(lower) != len(buffer):
            lower = "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in buffer)
        if not self.has_url and "postgres" in lower:
            self.has_url = bool(_URL.search(lower))
        counted_pos, counted_line = 0, self._base_line
        for line_start, read, kind, times in self._interesting(buffer, lower, start, limit):
            if read and len(self.candidates) >= MAX_CANDIDATES:
                self.truncated = True  # more to read than candidates kept: say so
            elif read:
                counted_line += buffer.count("\n", counted_pos, line_start)
                counted_pos = line_start
                self._take(buffer, line_start, counted_line)
            if kind and times:
                self._follow(kind, times)
        if final:
            self.lines = self._base_line + buffer.count("\n") - 1
            self._carry = ""
            return
        back = max(_back_lines(buffer, limit, CONTEXT_LINES), _line_at(buffer, limit - MAX_CARRY))
        self._base_line += buffer.count("\n", 0, back)
        self._base_offset += back
        self._carry = buffer[back:]
        self._carry_from = limit - back

    def _interesting(
        self, buffer: str, lower: str, start: int, limit: int
    ) -> Iterator[tuple[int, bool, str | None, int]]:
        """Lines between ``start`` and ``limit`` that hold a literal, a marker or a SQLSTATE: each line's start,
        whether it is read (False: only its cause-chain structure counts), its structure kind (STRUCTURE_KINDS)
        and how many more times that structure counts. In a big input, a line whose text was read REPEATS times
        is not read again, and a run of identical lines is stepped over at once; a ``Caused by: …`` or
        ``Traceback …`` line still moves the chain depth for every copy. Per-line work on 20 MB of repeated
        traceback headers took 9 s; now it is one pass."""
        if self.literals is None:
            pos = start
            while pos < limit:
                yield pos, True, None, 0
                pos = buffer.find("\n", pos) + 1 or limit
            return
        starts: set[int] = set()
        extra: dict[int, tuple[str, int]] = {}
        small = limit - start <= SMALL
        if small:
            window = lower[start:limit]
            literals = self.literals
            if len(window) >= PRECHECK:
                compact = _BLANK_RUNS.sub("\n", window)
                literals = [literal for literal in literals if literal in compact]
            for literal in literals:
                found = window.find(literal)
                while found >= 0:
                    starts.add(start + window.rfind("\n", 0, found) + 1)
                    found = window.find(literal, window.find("\n", found) + 1 or len(window))
        else:
            if self._trie is None:
                anchors = {literal: _anchor(literal) for literal in self.literals}
                self._trie = re.compile(_trie_pattern(sorted(set(anchors.values()))))
                # an ASCII chunk cannot hold a localized literal: leave those out of its trie (fewer branches to try)
                self._ascii_trie = re.compile(_trie_pattern(sorted({a for a in anchors.values() if a.isascii()})))
                self._structural = {anchors[marker]: kind for marker, kind in STRUCTURE_KINDS.items()}
            trie = self._ascii_trie if lower.isascii() and self._ascii_trie is not None else self._trie
            pos = start
            while pos < limit:
                found = trie.search(lower, pos, limit)
                if found is None:
                    break
                end = lower.find("\n", found.start())
                end = limit if end < 0 else end
                line_start = lower.rfind("\n", 0, found.start()) + 1
                pos, copies = end + 1, 0
                if end < limit:
                    line = lower[line_start : end + 1]
                    while lower.startswith(line, pos) and pos + len(line) <= limit:
                        pos += len(line)
                        copies += 1
                kind = self._structural.get(found.group(0))
                if not self.truncated and self._first_copies(lower[found.start() : end]):
                    starts.add(line_start)
                    self._budget(starts)
                    if kind and copies:
                        extra[line_start] = (kind, copies)
                elif kind:
                    extra[line_start] = (kind, copies + 1)
        for pattern in _SQLSTATE_SCAN:
            for found in pattern.finditer(lower, start, limit):
                if self.truncated:
                    break
                if small or self._first_code(found.group(0)):
                    starts.add(lower.rfind("\n", 0, found.start()) + 1)
                    self._budget(starts)
        for line_start in sorted(starts.union(extra)):
            kind, times = extra.get(line_start, (None, 0))
            yield line_start, line_start in starts, kind, times

    def _budget(self, starts: set[int]) -> None:
        """Stop collecting once there are more lines to read than candidates left: reading them all would only
        be thrown away (20 MB of distinct SQLSTATE lines took 3.5 s)."""
        if len(self.candidates) + len(starts) >= MAX_CANDIDATES:
            self.truncated = True

    def _first_code(self, code: str) -> bool:
        """False once a line was read for this SQLSTATE REPEATS times: the SQLSTATE scan only collects codes."""
        seen = self._codes.get(code, 0)
        if seen >= REPEATS:
            self.repeats += 1
            return False
        if seen or len(self._codes) < MAX_TAILS:
            self._codes[code] = seen + 1
        return True

    def _first_copies(self, tail: str) -> bool:
        """False once the same line tail (from the literal on, digits ignored) was read REPEATS times."""
        raw = tail[:200]
        key = self._keys.get(raw)
        if key is None:
            key = raw.translate(_DIGITS)
            if len(self._keys) < MAX_TAILS:
                self._keys[raw] = key
        seen = self._tails.get(key, 0)
        if seen >= REPEATS:
            self.repeats += 1
            return False
        if seen or len(self._tails) < MAX_TAILS:
            self._tails[key] = seen + 1
        return True

    def _take(self, buffer: str, line_start: int, line_number: int) -> None:
        content = self._content(buffer, line_start)
        if _FRAME.match(content) or self._after_py_file(buffer, line_start, content):
            return
        if not self._follow_chain(content.lstrip()) and content[:1].strip() and _EXCEPTION_HEAD.match(content):
            self._chain_depth = 0
        head_start, head_line = line_start, line_number
        for _ in range(MAX_BLOCK_LINES):
            if not _CONTINUATION.match(self._content(buffer, head_start)) or head_start == 0:
                break
            previous = buffer.rfind("\n", 0, head_start - 1) + 1
            if _FRAME.match(self._content(buffer, previous)):
                break
            head_start, head_line = previous, head_line - 1
        absolute = self._base_offset + head_start
        if absolute == self._last_head:
            return
        self._last_head = absolute
        lines = [self._content(buffer, head_start)]
        position = buffer.find("\n", head_start) + 1
        while position and position < len(buffer) and len(lines) <= MAX_BLOCK_LINES:
            following = self._content(buffer, position)
            if not _CONTINUATION.match(following):
                break
            lines.append(following)
            position = buffer.find("\n", position) + 1
        lines = unescape("\n".join(lines)).split("\n")
        depth = self._chain_depth - self._py_level
        for block in group_blocks(lines):
            self._add("\n".join(block).strip()[:MAX_CANDIDATE], head_line, depth)

    def _follow_chain(self, stripped: str) -> bool:
        """Move the cause-chain depth for a structure line; False when it is not one."""
        if _CAUSED_BY.match(stripped):
            self._follow("cause")
        elif _PY_CHAIN.match(stripped):
            self._follow("chain")
        elif _PY_TRACEBACK.match(stripped):
            self._follow("traceback")
        else:
            return False
        return True

    def _follow(self, kind: str, times: int = 1) -> None:
        if kind == "cause":
            self._chain_depth += times
        elif kind == "chain":
            self._py_level += times
            self._py_pending = True
        elif not self._py_pending:
            self._py_level = 0
        else:
            self._py_pending = False

    def _add(self, text: str, line: int, depth: int) -> None:
        if not text or text in self.seen:
            return
        if len(self.candidates) >= MAX_CANDIDATES:
            self.truncated = True
            return
        self.seen.add(text)
        self.candidates.append(Candidate(text, line, depth, len(self.candidates)))

    def _content(self, buffer: str, line_start: int) -> str:
        end = buffer.find("\n", line_start)
        line = buffer[line_start : end if end >= 0 else len(buffer)]
        return strip_prefix(line[: self.max_line])

    def _after_py_file(self, buffer: str, line_start: int, content: str) -> bool:
        """A source line under a ``File "…", line N`` frame: indented deeper than the frame. A frame without
        source (Cython, ``<stdin>``, ``python -c``) is followed directly by the exception line, which is kept."""
        if line_start == 0:
            return False
        previous = buffer.rfind("\n", 0, line_start - 1) + 1
        frame = _PY_FILE.match(self._content(buffer, previous))
        if frame is None:
            return False
        return len(content) - len(content.lstrip()) > len(frame.group(1))


def _back_lines(buffer: str, end: int, count: int) -> int:
    """Offset of the start of the line ``count`` lines before ``end`` (a line start)."""
    position = end
    for _ in range(count):
        if position <= 0:
            return 0
        position = buffer.rfind("\n", 0, position - 1) + 1
    return position


def _line_at(buffer: str, offset: int) -> int:
    """The start of the first line that begins at or after ``offset``."""
    if offset <= 0:
        return 0
    if offset >= len(buffer) or buffer[offset - 1] == "\n":
        return min(offset, len(buffer))
    return buffer.find("\n", offset) + 1 or len(buffer)


_DIGITS = str.maketrans("0123456789", "0000000000")
_RARITY = {ch: rank for rank, ch in enumerate(" etaoinsrhldcumfpgwybvkxjqz")}


_UNSAFE = re.compile(r"[\"'\\&;<>\n]+")


def needle(literal: str) -> str:
    """The longest piece of a literal that has no quote, backslash or HTML-entity character: the piece a JSON
    log line (``\\"``) or an HTML-escaped paste (``&quot;``) still shows verbatim, so the prefilter finds it."""
    pieces = _UNSAFE.split(literal)
    best = max(pieces, key=len)
    return best if len(best) >= 3 else literal


def _anchor(literal: str, width: int = 16, keep: int = 4) -> str:
    """The part of a literal that starts at its rarest letter: the regex engine skips positions whose
    character cannot start any literal, so rare first characters make the scan of a big log ~4x faster."""
    need = min(len(literal), keep)

    def rarity(index: int) -> tuple[int, int]:
        ch = literal[index]
        return (_RARITY.get(ch, 0 if ch.isdigit() or ch.isspace() else 5), -index)

    start = max(range(len(literal) - need + 1), key=rarity)
    return literal[start : start + width]


def _trie_pattern(literals: list[str], *, longest: bool = False) -> str:
    """One regex for many literals that shares their prefixes, so the regex engine rejects most positions fast;
    ``longest``: it matches the longest literal at a position, else the shortest."""
    trie: dict[str, Any] = {}
    for literal in literals:
        node = trie
        for ch in literal:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        ends = "" in node
        if ends and not longest:
            return ""  # a shorter literal already ends here: enough for a line to be interesting
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 and not ends else "(?:" + "|".join(branches) + ")"
        return body + "?" if ends else body

    return build(trie)


class RuleIndex:
    """Which of the rules' regexes can match a text, from one regex scan for the anchors of all their literals,
    instead of testing every rule's literals in turn: the cost per candidate stays flat as rules are added."""

    MIN_CANDIDATES = 32
    """Below this many candidates the index costs more to build (one regex compile) than it saves."""

    def __init__(self, rules: list[Rule]) -> None:
        self.entries: dict[str, list[tuple[int, int, str]]] = {}
        self.always: list[tuple[int, int]] = []
        for position, rule in enumerate(rules):
            for index, literals in enumerate(rule.literals):
                if literals is None:
                    self.always.append((position, index))
                    continue
                for literal in literals:
                    self.entries.setdefault(_anchor(needle(literal)), []).append((position, index, literal))
        anchors = sorted(self.entries)
        self.closure = {anchor: [other for other in anchors if anchor.startswith(other)] for anchor in anchors}
        self.pattern = re.compile("(?=(" + _trie_pattern(anchors, longest=True) + "))")

    def regexes(self, lower: str) -> dict[int, set[int]] | None:
        """Rule position → indices of its regexes worth trying on this text; None: try them all."""
        if not lower.isascii():
            return None
        wanted: dict[int, set[int]] = {}
        seen: set[str] = set()
        for found in self.pattern.finditer(lower):
            anchor = found.group(1)
            if anchor in seen:
                continue
            seen.add(anchor)
            for prefix in self.closure[anchor]:
                for position, index, literal in self.entries[prefix]:
                    if literal in lower:
                        wanted.setdefault(position, set()).add(index)
        for position, index in self.always:
            wanted.setdefault(position, set()).add(index)
        return wanted


def scan(chunks: Iterable[str], literals: list[str] | None) -> _Scanner:
    scanner = _Scanner(literals)
    pending: str | None = None
    for chunk in chunks:
        if pending is not None:
            scanner.feed(pending)
        pending = chunk
    scanner.feed(pending or "", final=True)
    return scanner


# --------------------------------------------------------------------------- matching and ranking


def explain_stream(stream: BinaryIO, ruleset: RuleSet) -> Explanation:
    literals = ruleset.literals()
    scanner = scan(read_text_chunks(stream, sieve=None if literals is None else lambda: _sieve(literals)), literals)
    return _rank(scanner, ruleset)


def _sieve(literals: list[str]) -> Callable[[bytes], bytes] | None:
    from neondoctor.sieve import make_sieve

    return make_sieve({needle(literal) for literal in (*literals, *MARKERS)}, STRUCTURE_MARKERS)


def explain_text(text: str, ruleset: RuleSet) -> Explanation:
    return explain_stream(io.BytesIO(text.encode("utf-8", "surrogateescape")), ruleset)


class _Hit:
    __slots__ = ("candidate", "found", "key", "rule", "sqlstate")

    def __init__(
        self, rule: Rule, candidate: Candidate, found: re.Match[str] | None, sqlstate: str | None
    ) -> None:
        self.rule = rule
        self.candidate = candidate
        self.found = found
        self.sqlstate = sqlstate
        self.key = (
            not candidate.demoted,
            LEVELS.index(confidence(rule.priority, text=found is not None, weak=False, agree=0)),
            found is not None,
            rule.priority,
            sqlstate is not None,
            candidate.depth,
            len(found.group(0)) if found else 0,
            -candidate.order,
        )


_INDEXES: weakref.WeakKeyDictionary[RuleSet, RuleIndex] = weakref.WeakKeyDictionary()


def _rule_index(ruleset: RuleSet) -> RuleIndex:
    """One index per loaded rule set: building it is quadratic in the anchors (rules lint explains every example)."""
    index = _INDEXES.get(ruleset)
    if index is None:
        index = _INDEXES[ruleset] = RuleIndex(ruleset.rules)
    return index


def _rank(scanner: _Scanner, ruleset: RuleSet) -> Explanation:
    sqlstate_at: dict[str, Candidate] = {}
    for candidate in scanner.candidates:
        for code in candidate.sqlstates:
            sqlstate_at.setdefault(code, candidate)
    best: dict[str, _Hit] = {}
    index = _rule_index(ruleset) if len(scanner.candidates) >= RuleIndex.MIN_CANDIDATES else None
    for candidate in scanner.candidates:
        wanted = index.regexes(candidate.lower) if index else None
        for position, rule in enumerate(ruleset.rules):
            if wanted is not None and position not in wanted:
                continue
            found = rule.search(candidate.text, candidate.lower, None if wanted is None else wanted[position])
            if found is None or rule.vetoed(candidate.text):
                continue
            confirmed = next((code for code in rule.sqlstate if code in sqlstate_at), None)
            hit = _Hit(rule, candidate, found, confirmed)
            if rule.id not in best or hit.key > best[rule.id].key:
                best[rule.id] = hit
    for rule in ruleset.rules:
        if rule.id in best:
            continue
        for code in rule.sqlstate:
            candidate = sqlstate_at.get(code)
            if candidate is not None and not rule.vetoed(candidate.text):
                best[rule.id] = _Hit(rule, candidate, None, code)
                break
    redactor = Redactor(_harvest_secrets(c.text for c in scanner.candidates))
    hits = sorted(best.values(), key=lambda hit: hit.key, reverse=True)
    agreeing: dict[str, int] = {}
    for hit in hits:
        if hit.found is not None and not hit.candidate.demoted:
            agreeing[hit.rule.layer] = agreeing.get(hit.rule.layer, 0) + 1
    matches = [_as_match(hit, redactor, agreeing) for hit in hits]
    sqlstates = list(sqlstate_at)
    return Explanation(scanner, sqlstates, matches, None if matches else _sqlstate_guess(sqlstates))


def confidence(priority: int, *, text: bool, weak: bool, agree: int) -> str:
    """From data (rules/engine.json): the priority band, one level down for a SQLSTATE-only match or weak
    evidence, one level up when another rule of the same layer matched the text too."""
    level = next(lvl for floor, lvl in tables()["bands"] if priority >= floor)  # the last band starts at 0
    index = LEVELS.index(level) - (not text) - weak + (agree > 0)
    return LEVELS[max(0, min(index, len(LEVELS) - 1))]


def _sqlstate_guess(codes: list[str]) -> dict[str, Any] | None:
    """No rule matched, but a SQLSTATE in the text belongs to a class that points at one layer."""
    for code in codes:
        layer = sqlstate_layer(code)
        if layer:
            meaning = sqlstate_meaning(code)
            return {
                "id": f"sqlstate-{code[:2].lower()}",
                "layer": layer,
                "blame": None,
                "title": f"SQLSTATE {code}: {meaning.split(':')[0]}",
                "hint": None,
                "cause": f"No rule knows this text, but its SQLSTATE {code} is of class {code[:2]}: {meaning}.",
                "fix": [f"Run `{CHECK_COMMAND}`: it tries each step of the connection and stops where it fails."],
                "docs": ["https://www.postgresql.org/docs/current/errcodes-appendix.html"],
                "excerpt": None,
                "line": None,
                "priority": 0,
                "captures": {},
                "sqlstate": code,
                "origin": "sqlstate-class",
                "matched": f"SQLSTATE {code}",
                "confidence": "low",
                "agree": 0,
            }
    return None


def _answer(matches: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The top match summed up. The runner-up is the best match of another layer, named when the top is not
    a confident answer and the runner-up is at least as confident."""
    if not matches:
        return None
    top = matches[0]
    rank = LEVELS.index(top["confidence"])
    runner = next((m for m in matches[1:] if m["layer"] != top["layer"] and not m.get("weak")), None)
    close = runner is not None and top["confidence"] != "high" and LEVELS.index(runner["confidence"]) >= rank
    guess = top["confidence"] == "low"
    return {
        "id": top["id"],
        "layer": top["layer"],
        "title": top["title"],
        "confidence": top["confidence"],
        "guess": guess,
        "guess_from": top.get("matched") if guess else None,
        "runner_up": {key: runner[key] for key in ("id", "layer", "title", "confidence")} if close else None,
        "next_step": CHECK_COMMAND if guess else None,
    }


def _as_match(hit: _Hit, redactor: Redactor, agreeing: dict[str, int]) -> dict[str, Any]:
    from neondoctor.rules import format_hint

    rule = hit.rule
    captures = {k: v for k, v in hit.found.groupdict().items() if v is not None} if hit.found else {}
    text = hit.found is not None
    agree = max(0, agreeing.get(rule.layer, 0) - text)
    weak = hit.candidate.demoted
    matched = " ".join(hit.found.group(0).split())[:80] if hit.found else f"SQLSTATE {hit.sqlstate}"
    hint = format_hint(rule.hint, captures)
    return {
        "id": rule.id,
        "layer": rule.layer,
        "blame": rule.blame,
        "title": rule.title,
        "hint": hint and redactor(hint),
        "cause": rule.cause,
        "fix": list(rule.fix),
        "fix_when": list(rule.fix_when),
        "docs": list(rule.docs),
        "excerpt": redactor(hit.candidate.text),
        "line": hit.candidate.line,
        "priority": rule.priority,
        "captures": redactor.obj(captures),
        "sqlstate": hit.sqlstate,
        "origin": rule.origin,
        "matched": redactor(matched),
        "confidence": confidence(rule.priority, text=text, weak=weak, agree=agree),
        "agree": agree,
        "weak": weak,
    }


def _harvest_secrets(texts: Iterable[str]) -> list[str]:
    """Passwords visible in the input by their shape, so the same string is hidden wherever else it appears."""
    from neondoctor.redact import find_secrets

    return [secret for text in texts for secret in find_secrets(text)]
