"""Read pasted errors and whole logs, find the error lines in them, and rank the rules they match.

The input is streamed in chunks of whole lines, so a 100 MB log never sits in memory. Each chunk is
scanned for the literal strings the rules need (plus stack-trace markers and SQLSTATE markers); only
those lines, with their neighbours, become candidates that the rules' regexes are tried on.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterable, Iterator
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

SQLSTATE_CLASSES = {
    "00": "successful completion",
    "01": "warning",
    "02": "no data",
    "03": "SQL statement not yet complete",
    "08": "connection exception: the connection could not be made, or it was lost",
    "09": "triggered action exception",
    "0A": "feature not supported",
    "0B": "invalid transaction initiation",
    "0F": "locator exception",
    "0L": "invalid grantor",
    "0P": "invalid role specification",
    "0Z": "diagnostics exception",
    "20": "case not found",
    "21": "cardinality violation",
    "22": "data exception: a value the server could not accept",
    "23": "integrity constraint violation",
    "24": "invalid cursor state",
    "25": "invalid transaction state",
    "26": "invalid SQL statement name: a prepared statement that does not exist (often a transaction-mode pooler)",
    "27": "triggered data change violation",
    "28": "invalid authorization specification: the server rejected the role, the password or the pg_hba.conf rule",
    "2B": "dependent privilege descriptors still exist",
    "2D": "invalid transaction termination",
    "2F": "SQL routine exception",
    "34": "invalid cursor name",
    "38": "external routine exception",
    "39": "external routine invocation exception",
    "3B": "savepoint exception",
    "3D": "invalid catalog name: the database does not exist",
    "3F": "invalid schema name: the schema does not exist",
    "40": "transaction rollback (serialization failure or deadlock): retry the transaction",
    "42": "syntax error or access rule violation: bad SQL, a missing table or column, or a missing privilege",
    "44": "WITH CHECK OPTION violation",
    "53": "insufficient resources: too many connections, or the server is out of memory or disk",
    "54": "program limit exceeded",
    "55": "object not in prerequisite state",
    "57": "operator intervention: the server is shutting down or restarting, or cancelled the statement",
    "58": "system error: an I/O error on the server",
    "72": "snapshot failure",
    "F0": "configuration file error",
    "HV": "foreign data wrapper error",
    "P0": "PL/pgSQL error",
    "XX": "internal error; Neon's proxy sends XX000 for every error it reports, so read the message text",
}
EXCEPTION_SQLSTATES = {
    "invalidpassword": "28P01",
    "invalidauthorizationspecification": "28000",
    "invalidcatalogname": "3D000",
    "toomanyconnections": "53300",
    "adminshutdown": "57P01",
    "cannotconnectnow": "57P03",
    "idlesessiontimeout": "57P05",
    "querycanceled": "57014",
    "sqlclientunabletoestablishsqlconnection": "08001",
    "clientcannotconnect": "08001",
    "connectionfailure": "08006",
    "connectiondoesnotexist": "08003",
    "protocolviolation": "08P01",
    "undefinedtable": "42P01",
    "undefinedobject": "42704",
    "invalidschemaname": "3F000",
    "invalidsqlstatementname": "26000",
    "duplicatepreparedstatement": "42P05",
    "idleintransactionsessiontimeout": "25P03",
    "internalerror_": "XX000",
    "internalserver": "XX000",
}
STRUCTURE_MARKERS = (
    "caused by:",
    "[cause]:",
    "traceback (most recent call last)",
    "the above exception was the direct cause",
    "during handling of the above exception",
)
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
      | \[?\d{4}-\d\d-\d\d[T\ ]\d\d:\d\d:\d\d(?:[.,]\d+)?
            (?:\ ?(?:Z|[+-]\d\d:?\d\d|[A-Z]{2,5}))?\]?\s+                     # ISO timestamp, optional zone
      | [A-Z][a-z]{2}\ [\ \d]\d\ \d\d:\d\d:\d\d\ \S+\ [\w./-]+(?:\[\d+\])?:\s+  # syslog header
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
_PY_FILE = re.compile(r"^\s*File \"[^\"]*\", line \d+")
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
_ESCAPED = re.compile(r'\\[nt"]')
_UNESCAPE = re.compile(r'\\([nt"\\])')
_UNESCAPED = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
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
    __slots__ = ("candidates", "empty", "has_url", "lines", "matches", "sqlstates", "truncated")

    def __init__(self) -> None:
        self.matches: list[dict[str, Any]] = []
        self.sqlstates: list[str] = []
        self.candidates: list[Candidate] = []
        self.lines = 0
        self.empty = True
        self.truncated = False
        self.has_url = False
        """The input holds a postgres:// URL: a user who pasted a connection string wants ``neondoctor url``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "matches": self.matches,
            "sqlstates": [
                {"code": code, "class": code[:2], "meaning": SQLSTATE_CLASSES.get(code[:2], "")}
                for code in self.sqlstates
            ],
        }


# --------------------------------------------------------------------------- reading


def read_text_chunks(stream: BinaryIO, chunk_size: int = CHUNK, max_line: int = MAX_LINE) -> Iterator[str]:
    """Decoded text made of whole lines: CRs normalised, ANSI colours and control characters gone, lines capped."""
    first = True
    for block in _whole_lines(_raw_chunks(stream, chunk_size), max_line):
        if first:
            for bom in _BOMS:
                if block.startswith(bom):
                    block = block[len(bom) :]
                    break
            first = False
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
        if not found or not found.end():
            break
        line = line[found.end() :]
    return line


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
        if code[:2] in SQLSTATE_CLASSES and any(ch.isdigit() for ch in code) and code not in codes:
            codes.append(code)
    for found in _EXCEPTION_CLASS.finditer(text):
        code = EXCEPTION_SQLSTATES.get(found.group(1).lower())
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
        self.literals = None if literals is None else sorted({*literals, *MARKERS})
        self.max_line = max_line
        self._trie: re.Pattern[str] | None = None
        self._ascii_trie: re.Pattern[str] | None = None
        self._structural: frozenset[str] = frozenset()
        self._tails: dict[str, int] = {}
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
        for line_start in self._interesting(buffer, lower, start, limit):
            counted_line += buffer.count("\n", counted_pos, line_start)
            counted_pos = line_start
            self._take(buffer, line_start, counted_line)
        if final:
            self.lines = self._base_line + buffer.count("\n") - 1
            self._carry = ""
            return
        back = max(_back_lines(buffer, limit, CONTEXT_LINES), _line_at(buffer, limit - MAX_CARRY))
        self._base_line += buffer.count("\n", 0, back)
        self._base_offset += back
        self._carry = buffer[back:]
        self._carry_from = limit - back

    def _interesting(self, buffer: str, lower: str, start: int, limit: int) -> Iterator[int]:
        """Starts of the lines between ``start`` and ``limit`` that hold a literal, a marker or a SQLSTATE."""
        if self.literals is None:
            pos = start
            while pos < limit:
                yield pos
                pos = buffer.find("\n", pos) + 1 or limit
            return
        starts: set[int] = set()
        small = limit - start <= SMALL
        if small:
            window = lower[start:limit]
            present = [lit for lit in self.literals if lit in window]
            if present:
                pos = start
                for line in window.split("\n"):
                    if any(lit in line for lit in present):
                        starts.add(pos)
                    pos += len(line) + 1
        else:
            if self._trie is None:
                anchors = {literal: _anchor(literal) for literal in self.literals}
                self._trie = re.compile(_trie_pattern(sorted(set(anchors.values()))))
                # an ASCII chunk cannot hold a localized literal: leave those out of its trie (fewer branches to try)
                self._ascii_trie = re.compile(_trie_pattern(sorted({a for a in anchors.values() if a.isascii()})))
                self._structural = frozenset(anchors[marker] for marker in STRUCTURE_MARKERS)
            trie = self._ascii_trie if lower.isascii() and self._ascii_trie is not None else self._trie
            pos = start
            while pos < limit:
                found = trie.search(lower, pos, limit)
                if found is None:
                    break
                end = lower.find("\n", found.start())
                end = limit if end < 0 else end
                if found.group(0) in self._structural or self._first_copies(lower[found.start() : end]):
                    starts.add(lower.rfind("\n", 0, found.start()) + 1)
                pos = end + 1
        for pattern in _SQLSTATE_SCAN:
            for found in pattern.finditer(lower, start, limit):
                end = lower.find("\n", found.start())
                if small or self._first_copies(lower[found.start() : end if end >= 0 else limit]):
                    starts.add(lower.rfind("\n", 0, found.start()) + 1)
        yield from sorted(starts)

    def _first_copies(self, tail: str) -> bool:
        """False once the same line tail (from the literal on, digits ignored) was read REPEATS times."""
        key = tail[:200].translate(_DIGITS)
        seen = self._tails.get(key, 0)
        if seen >= REPEATS:
            self.repeats += 1
            return False
        if seen or len(self._tails) < MAX_TAILS:
            self._tails[key] = seen + 1
        return True

    def _take(self, buffer: str, line_start: int, line_number: int) -> None:
        content = self._content(buffer, line_start)
        if _FRAME.match(content) or self._after_py_file(buffer, line_start):
            return
        stripped = content.lstrip()
        if _CAUSED_BY.match(stripped):
            self._chain_depth += 1
        elif _PY_CHAIN.match(stripped):
            self._py_level += 1
            self._py_pending = True
        elif _PY_TRACEBACK.match(stripped):
            if not self._py_pending:
                self._py_level = 0
            self._py_pending = False
        elif content[:1].strip() and _EXCEPTION_HEAD.match(content):
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
        if _ESCAPED.search(lines[0]):
            lines = _UNESCAPE.sub(lambda m: _UNESCAPED[m.group(1)], "\n".join(lines)).split("\n")
        depth = self._chain_depth - self._py_level
        for block in group_blocks(lines):
            self._add("\n".join(block).strip()[:MAX_CANDIDATE], head_line, depth)

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

    def _after_py_file(self, buffer: str, line_start: int) -> bool:
        if line_start == 0:
            return False
        previous = buffer.rfind("\n", 0, line_start - 1) + 1
        return bool(_PY_FILE.match(self._content(buffer, previous)))


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


def _anchor(literal: str, width: int = 16, keep: int = 4) -> str:
    """The part of a literal that starts at its rarest letter: the regex engine skips positions whose
    character cannot start any literal, so rare first characters make the scan of a big log ~4x faster."""
    need = min(len(literal), keep)

    def rarity(index: int) -> tuple[int, int]:
        ch = literal[index]
        return (_RARITY.get(ch, 0 if ch.isdigit() or ch.isspace() else 5), -index)

    start = max(range(len(literal) - need + 1), key=rarity)
    return literal[start : start + width]


def _trie_pattern(literals: list[str]) -> str:
    """One regex for many literals that shares their prefixes, so the regex engine rejects most positions fast."""
    trie: dict[str, Any] = {}
    for literal in literals:
        node = trie
        for ch in literal:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        if "" in node:
            return ""  # a shorter literal already ends here: enough for a line to be interesting
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items())]
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return build(trie)


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
    scanner = scan(read_text_chunks(stream), ruleset.literals())
    return _rank(scanner, ruleset)


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
            found is not None,
            rule.priority,
            sqlstate is not None,
            candidate.depth,
            len(found.group(0)) if found else 0,
            -candidate.order,
        )


def _rank(scanner: _Scanner, ruleset: RuleSet) -> Explanation:
    result = Explanation()
    result.candidates = scanner.candidates
    result.lines = scanner.lines
    result.empty = scanner.empty
    result.has_url = scanner.has_url
    result.truncated = scanner.truncated
    sqlstate_at: dict[str, Candidate] = {}
    for candidate in scanner.candidates:
        for code in candidate.sqlstates:
            sqlstate_at.setdefault(code, candidate)
    result.sqlstates = list(sqlstate_at)
    best: dict[str, _Hit] = {}
    for candidate in scanner.candidates:
        for rule in ruleset.rules:
            found = rule.search(candidate.text, candidate.lower)
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
    result.matches = [_as_match(hit, redactor) for hit in hits]
    return result


def _as_match(hit: _Hit, redactor: Redactor) -> dict[str, Any]:
    from neondoctor.rules import format_hint

    rule = hit.rule
    captures = {k: v for k, v in hit.found.groupdict().items() if v is not None} if hit.found else {}
    return {
        "id": rule.id,
        "layer": rule.layer,
        "blame": rule.blame,
        "title": rule.title,
        "hint": redactor(hint) if (hint := format_hint(rule.hint, captures)) else None,
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
    }


def _harvest_secrets(texts: Iterable[str]) -> list[str]:
    """Passwords visible in the input by their shape, so the same string is hidden wherever else it appears."""
    from neondoctor.redact import find_secrets

    return [secret for text in texts for secret in find_secrets(text)]
