"""The one place that hides secrets. Every output path goes through a Redactor.

Two layers:
- known secrets (the password of the target being checked), hidden in every encoding we
  can think of: raw, percent-encoded, form-encoded, JSON/repr-escaped, libpq-quoted, base64;
- patterns, for text whose secrets we do not know (a pasted log): URL userinfo passwords,
  ``password=…`` pairs, PGPASSWORD, Neon API keys, bearer tokens.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

MASK = "****"

_URL_USERINFO = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.\-]*:(?://)?[^\s:/?#@'\"]*:)(?P<secret>[^\s'\"]*)(?P<tail>@)",
    re.IGNORECASE,
)
_KEY_VALUE = re.compile(
    r"(?P<head>\b(?:pg)?(?:password|passwd|pwd|passphrase|secret|api[_-]?key|(?:access|auth|api|refresh)[_-]?token)"
    r"(?P<quote>['\"]?)\s*(?:=|:)\s*)"
    r"(?P<secret>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&;,'\")}\]]+)",
    re.IGNORECASE,
)
_NEON_API_KEY = re.compile(r"\bnapi_[A-Za-z0-9]{16,}")
_BEARER = re.compile(r"(?P<head>\bBearer\s+)[A-Za-z0-9._~+/=\-]{8,}", re.IGNORECASE)
_SHORT = 4


def _variants(secret: str) -> set[str]:
    import base64
    from urllib.parse import quote, quote_plus

    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
        secret.replace("\\", "\\\\").replace("'", "\\'"),
        base64.b64encode(secret.encode()).decode().rstrip("="),
    }
    return {f for f in forms if f}


class Redactor:
    """Callable that hides known secrets and secret-looking patterns in text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        self._known: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if not secret or secret == MASK:
            return
        self._secrets |= _variants(secret)
        long_forms = sorted((s for s in self._secrets if len(s) >= _SHORT), key=len, reverse=True)
        short_forms = sorted((s for s in self._secrets if len(s) < _SHORT), key=len, reverse=True)
        parts = [re.escape(s) for s in long_forms]
        parts += [rf"(?<![A-Za-z0-9]){re.escape(s)}(?![A-Za-z0-9])" for s in short_forms]
        self._known = re.compile("|".join(parts), re.IGNORECASE) if parts else None

    def __call__(self, text: str) -> str:
        return redact_patterns(self.known(text))

    def known(self, text: str) -> str:
        """Hide only the known secrets: for text we wrote ourselves, which patterns would mangle."""
        return self._known.sub(MASK, text) if self._known is not None else text

    def obj(self, value: Any, *, patterns: bool = True) -> Any:
        """Redact every string inside a JSON-like structure."""
        if isinstance(value, str):
            return self(value) if patterns else self.known(value)
        if isinstance(value, dict):
            return {k: self.obj(v, patterns=patterns) for k, v in value.items()}
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
    if not match.group("secret"):
        return match.group(0)
    return f"{match.group('head')}{MASK}{match.group('tail')}"


def redact_patterns(text: str) -> str:
    """Hide secrets we can recognise by shape alone."""
    if not text:
        return text
    text = _URL_USERINFO.sub(_mask_userinfo, text)
    text = _KEY_VALUE.sub(_mask_value, text)
    text = _NEON_API_KEY.sub("napi_" + MASK, text)
    return _BEARER.sub(lambda m: m.group("head") + MASK, text)


def find_secrets(text: str) -> list[str]:
    """Secrets visible in a text by their shape (URL passwords, ``password=…``), at least 4 characters."""
    found = []
    for shape in (_URL_USERINFO, _KEY_VALUE):
        for match in shape.finditer(text):
            secret = match.group("secret").strip("'\"")
            if len(secret) >= _SHORT and secret != MASK:
                found.append(secret)
    return found


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    return Redactor(secrets)(text)
