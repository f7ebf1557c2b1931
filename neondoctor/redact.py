"""The one place that hides secrets. Every output path goes through a Redactor.

Secrets are hidden by STRUCTURE, where they are, before anything is serialised:

- the spans of a connection string that hold the password (URL userinfo, ``password=`` values,
  a JDBC ``?password=``) are *regions*: any fragment of that string which libpq, psycopg or our
  own findings echo back (``invalid percent-encoded token: "…"``, ``host='…'``) is masked when it
  overlaps a region, however short the password is (:meth:`Redactor.fragment`, :meth:`Redactor.libpq`);
- text whose secrets we do not know (a pasted log, a server message) loses what looks like a
  secret by its shape: URL userinfo passwords, ``password=…`` pairs (quoted or not), PGPASSWORD,
  Neon's ``endpoint=<id>;<password>`` / ``endpoint=<id>$<password>``, Neon API keys, bearer tokens.

Masking a known password by VALUE is only the last net, applied to strings inside structures
(never to serialised JSON, so JSON stays valid), case-sensitively, and only for a secret that
cannot destroy unrelated text (:func:`value_maskable`): at least ``MIN_VALUE_CHARS`` characters,
and not found in the product's own vocabulary (its code and rule texts). So the common password
``postgres`` never turns ``postgresql://`` into ``****ql://``, and ``wrong`` never turns advice
into "a **** password": both are hidden by structure wherever they really are.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MASK = "****"
MIN_VALUE_CHARS = 6
"""Shortest secret masked by value; shorter ones are hidden by structure only."""

_USER = r"[^\s:/?#@'\"]*"
_URL_USERINFO = re.compile(
    rf"(?P<head>\b[a-z][a-z0-9+.\-]{{0,30}}://{_USER}:)"
    r"(?P<secret>[^\n]{0,200}?)"
    r"(?P<tail>@)(?=[^@\s'\"<>]*(?:[\s'\"<>]|$))",
    re.IGNORECASE,
)
_KEY_VALUE = re.compile(
    r"(?P<head>\b(?:pg)?(?:password|passwd|pwd|passphrase|secret|api[_-]?key|(?:access|auth|api|refresh)[_-]?token)"
    r"(?P<quote>['\"]?)\s*(?:=|:)\s*)"
    r"(?P<secret>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&;,'\")}\]]+)",
    re.IGNORECASE,
)
_NEON_ENDPOINT_PASSWORD = re.compile(
    r"(?P<head>\b(?:endpoint|project)=[A-Za-z0-9-]+[;$])(?P<secret>[^\s'\"@&]+)", re.IGNORECASE
)
_ENV_PASSWORD = re.compile(
    r"(?P<head>(?:^[ \t]*|\bexport\s+|\benv\s+|\bset\s+)PGPASSWORD=)"
    r"(?P<secret>(?:'[^'\n]*'|\"(?:[^\"\\\n]|\\.)*\"|\\.|[^\s'\"\\])+(?:[ \t]+[^\s=]+(?=[ \t]*$))*)",
    re.MULTILINE,
)
"""PGPASSWORD as a shell or ``env`` line: a whole shell word (``'a'"'"'b'``), and at a line's end the rest of it."""
_NEON_API_KEY = re.compile(r"\bnapi_[A-Za-z0-9]{16,}")
_BEARER = re.compile(r"(?P<head>\bBearer\s+)[A-Za-z0-9._~+/=\-]{8,}", re.IGNORECASE)
_FIND_MIN = 4

# libpq's messages that quote a piece of the connection string: the format strings in the libpq 18.6 that
# psycopg-binary 3.3.9 ships (`strings libpq*.so`; fe-connect.c in PostgreSQL's source).
_LIBPQ_TEMPLATES = (
    'invalid URI propagated to internal parser routine: "%s"',
    'end of string reached when looking for matching "]" in IPv6 host address in URI: "%s"',
    'IPv6 host address may not be empty in URI: "%s"',
    'unexpected character "%c" at position %d in URI (expected ":" or "/"): "%s"',
    'extra key/value separator "=" in URI query parameter: "%s"',
    'missing key/value separator "=" in URI query parameter: "%s"',
    'invalid URI query parameter: "%s"',
    'invalid percent-encoded token: "%s"',
    'forbidden value %%00 in percent-encoded value: "%s"',
    'unexpected spaces found in "%s", use percent-encoded spaces (%%20) instead',
    'missing "=" after "%s" in connection info string',
    'invalid connection option "%s"',
    'invalid integer value "%s" for connection option "%s"',
    'invalid port number: "%s"',
    'invalid %s value: "%s"',
    'connection to server at "%s" (%s), port %s failed',
    'connection to server at "%s", port %s failed',
    'could not translate host name "%s" to address',
    'could not parse network address "%s"',
)


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(%[scd%])", template)
    out = []
    for index, part in enumerate(parts):
        if part == "%s":
            closing = index == len(parts) - 2 and parts[-1] == '"'
            out.append(rf"(?P<f{index}>[^\n]*{'' if closing else '?'})")
        elif part == "%c":
            out.append(rf"(?P<f{index}>[^\n])")
        elif part == "%d":
            out.append(r"-?\d+")
        elif part == "%%":
            out.append("%")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


@functools.cache
def _libpq_patterns() -> tuple[re.Pattern[str], ...]:
    return tuple(_template_regex(t) for t in _LIBPQ_TEMPLATES)


@functools.cache
def _vocabulary() -> str:
    """The product's own words (its code and rule files), lower-cased: secrets found here are not value-masked."""
    package = Path(__file__).parent
    texts = []
    for pattern in ("*.py", "*/*.py", "_rules/*.yaml"):
        for path in sorted(package.glob(pattern)):
            try:
                texts.append(path.read_text(encoding="utf-8", errors="replace"))
            except OSError:
                continue
    rules = package.parent / "rules"
    if not (package / "_rules").is_dir() and rules.is_dir():
        texts += [p.read_text(encoding="utf-8", errors="replace") for p in sorted(rules.glob("*.yaml"))]
    return "\n".join(texts).lower()


def value_maskable(secret: str) -> bool:
    """May this secret be masked wherever its text appears? Only when that cannot mangle unrelated text.

    The rule: at least ``MIN_VALUE_CHARS`` characters, not made of white space alone, and not a
    piece of the product's own vocabulary (``postgres``, ``password``, ``require``, ``verify-full``…),
    compared case-insensitively. A secret that fails it is still hidden wherever it structurally is.
    """
    return _long_enough(secret) and secret.lower() not in _vocabulary()


def _long_enough(secret: str) -> bool:
    """The cheap half of :func:`value_maskable`; the vocabulary (1 MB of code and rules) is read only when
    a secret's text really turns up in an output, which a healthy run never sees."""
    return len(secret) >= MIN_VALUE_CHARS and bool(secret.strip()) and secret != MASK


def _variants(secret: str) -> set[str]:
    import base64
    from urllib.parse import quote, quote_plus

    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        secret.replace("\\", "\\\\").replace("'", "\\'"),
        base64.b64encode(secret.encode()).decode().rstrip("="),
    }
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in forms}
    forms |= {re.sub(r'\\(["\\])', r"\1", f) for f in forms}  # as explain reads a JSON-escaped log line
    return {f for f in forms if f}


def _overlaps(piece: str, text: str, start: int, end: int) -> bool:
    """Does any occurrence of ``piece`` in ``text`` overlap ``text[start:end]``?"""
    at = text.find(piece)
    while at != -1:
        if at < end and at + len(piece) > start:
            return True
        at = text.find(piece, at + 1)
    return False


class Redactor:
    """Hides the secrets of one target (known values and regions) and secret-looking patterns.

    ``redactor(text)`` is for foreign text (server, libpq and psycopg errors, pasted logs);
    ``redactor.known(text)`` for text we wrote; ``redactor.fragment(piece)`` for a piece of the
    connection string that we echo back; ``redactor.obj(data)`` redacts a JSON-like structure.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        self._net_forms: dict[str, set[str]] = {}
        """Each form a secret may take in text (raw, percent-encoded, JSON, …) → the secrets it stands for."""
        self._net: re.Pattern[str] | None = None
        self._net_stale = False
        self._regions: list[tuple[str, int, int]] = []
        for secret in secrets:
            self.add(secret)

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def add(self, secret: str | None) -> None:
        """A secret value: hidden structurally wherever it is echoed, and by value when that is safe."""
        if not secret or secret == MASK or secret in self._secrets:
            return
        self._secrets.add(secret)
        if not _long_enough(secret):
            return
        for form in _variants(secret):
            if _long_enough(form):
                self._net_forms.setdefault(form, set()).add(secret)
        self._net_stale = True

    def _value_net(self) -> re.Pattern[str] | None:
        """One alternation of every form of every secret, longest first; compiled when first used, since a
        target adds its secrets one by one (user, password, each region) and a healthy run may never ask."""
        if self._net_stale:
            ordered = sorted(self._net_forms, key=len, reverse=True)
            self._net = re.compile("|".join(re.escape(form) for form in ordered)) if ordered else None
            self._net_stale = False
        return self._net

    def add_region(self, text: str, start: int, end: int) -> None:
        """``text[start:end]`` is secret: fragments of ``text`` overlapping it are never echoed."""
        if not 0 <= start < end <= len(text):
            return
        from urllib.parse import unquote

        self._regions.append((text, start, end))
        self.add(text[start:end])
        head, body, tail = (unquote(part, errors="replace") for part in (text[:start], text[start:end], text[end:]))
        if body:
            self._regions.append((head + body + tail, len(head), len(head) + len(body)))

    def fragment(self, piece: str | None) -> str | None:
        """A piece of the user's string, or the mask when it may hold (part of) the password."""
        if not piece:
            return piece
        for text, start, end in self._regions:
            if piece == text:
                return self.known(text[:start] + MASK + text[end:])
        if any(_overlaps(piece, text, start, end) for text, start, end in self._regions):
            return MASK
        if piece in self._secrets:
            return MASK
        return self.known(piece)

    def libpq(self, text: str) -> str:
        """libpq's or psycopg's words about the string: the fragments it quotes lose their secret parts."""
        if '"' not in text or not (self._regions or self._secrets):
            return text  # every template quotes its fragment
        for pattern in _libpq_patterns():
            text = pattern.sub(self._mask_groups, text)
        return text

    def _mask_groups(self, match: re.Match[str]) -> str:
        out, last = [], match.start()
        for name, value in match.groupdict().items():
            if value is None:
                continue
            start, end = match.span(name)
            out += [match.string[last:start], self.fragment(value) or ""]
            last = end
        out.append(match.string[last : match.end()])
        return "".join(out)

    def __call__(self, text: str) -> str:
        return self.known(redact_patterns(self.libpq(text)))

    def known(self, text: str) -> str:
        """Only the last net (long known secrets by value): for text we wrote, which patterns would mangle."""
        net = self._value_net() if text else None
        return net.sub(self._mask_form, text) if net is not None else text

    def _mask_form(self, match: re.Match[str]) -> str:
        form = match.group(0)
        maskable = value_maskable(form) and any(value_maskable(secret) for secret in self._net_forms[form])
        return MASK if maskable else form

    def obj(self, value: Any, *, patterns: bool = True) -> Any:
        """Redact every string inside a JSON-like structure (keys included), before it is serialised."""
        if isinstance(value, str):
            return self(value) if patterns else self.known(value)
        if isinstance(value, dict):
            return {
                self.known(k) if isinstance(k, str) else k: self.obj(v, patterns=patterns) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.obj(v, patterns=patterns) for v in value]
        return value


def _mask_value(match: re.Match[str]) -> str:
    secret = match.group("secret")
    if secret in (MASK, f"'{MASK}'", f'"{MASK}"'):
        return match.group(0)
    if secret[:1] in "'\"" and len(secret) >= 2 and secret[-1] == secret[0]:
        return f"{match.group('head')}{secret[0]}{MASK}{secret[0]}"
    return f"{match.group('head')}{MASK}"


def _mask_userinfo(match: re.Match[str]) -> str:
    if not match.group("secret") or match.group("secret") == MASK:
        return match.group(0)
    return f"{match.group('head')}{MASK}{match.group('tail')}"


def redact_patterns(text: str) -> str:
    """Hide secrets we can recognise by shape alone."""
    if not text:
        return text
    text = _URL_USERINFO.sub(_mask_userinfo, text)
    text = _ENV_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    text = _NEON_ENDPOINT_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    text = _KEY_VALUE.sub(_mask_value, text)
    text = _NEON_API_KEY.sub("napi_" + MASK, text)
    return _BEARER.sub(lambda m: m.group("head") + MASK, text)


def find_secrets(text: str) -> list[str]:
    """Secrets visible in a text by their shape (URL passwords, ``password=…``), at least 4 characters."""
    found = []
    for shape in (_URL_USERINFO, _NEON_ENDPOINT_PASSWORD, _KEY_VALUE):
        for match in shape.finditer(text):
            secret = match.group("secret").strip("'\"")
            if len(secret) >= _FIND_MIN and secret != MASK:
                found.append(secret)
    return found

