"""The `report` command's document: what `check` found, plus what support needs to act on it.

The model is a plain dict (the ``report --format json`` contract); renderers turn it into Markdown.
Nothing here prints. Secrets are gone before the model is built (``run_check`` redacts), and
``--redact-host`` / ``--redact-user`` replace those names with one placeholder each, everywhere.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import platform
import re
import ssl
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neondoctor import __version__

if TYPE_CHECKING:
    from neondoctor.checklist import CheckReport
    from neondoctor.target import Target

SCHEMA = "neondoctor.report/1"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
USER_PLACEHOLDER = "<user>"
SHORT_NAME = 4
"""Names shorter than this are replaced only where they stand alone or quoted, never inside words."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def timestamp_slug(now: dt.datetime) -> str:
    """``20261204T142600Z``: sortable, and safe in a file name on every OS."""
    return now.strftime("%Y%m%dT%H%M%SZ")


def default_file_name(now: dt.datetime, fmt: str) -> str:
    return f"neondoctor-report-{timestamp_slug(now)}.{'json' if fmt == 'json' else 'md'}"


def collect_versions(now: dt.datetime | None = None) -> dict[str, Any]:
    """The header: neondoctor, the OS, Python and every library on the connection path."""
    now = now or utc_now()
    header: dict[str, Any] = {
        "neondoctor": __version__,
        "generated_at": now.isoformat().replace("+00:00", "Z"),
        "os": f"{platform.system()} {platform.release()}".strip(),
        "arch": platform.machine() or None,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "psycopg": None,
        "libpq": None,
        "dnspython": None,
        "openssl": ssl.OPENSSL_VERSION,
    }
    try:
        import psycopg

        from neondoctor.target import libpq_version

        header["psycopg"] = f"{psycopg.__version__} ({psycopg.pq.__impl__})"
        header["libpq"] = libpq_version()
    except Exception:  # a broken install is itself worth reporting, not a reason to write nothing
        pass
    try:
        import dns.version

        header["dnspython"] = dns.version.version
    except Exception:
        pass
    return header


def environment_hints(target: Target, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Facts about the machine that change what libpq does: variable names only, never their values."""
    environ = os.environ if environ is None else environ
    pg_variables = sorted(name for name, value in environ.items() if name.startswith("PG") and value)
    proxy_variables = sorted(
        name for name, value in environ.items() if name.upper() in PROXY_VARIABLES and value
    )
    return {
        "source": target.source,
        "pg_variables": pg_variables,
        "proxy_variables": proxy_variables,
        "database_url_set": bool(environ.get("DATABASE_URL")),
        "sslrootcert": sslrootcert_fact(target, environ),
    }


def sslrootcert_fact(target: Target, environ: Mapping[str, str]) -> dict[str, Any]:
    """Where libpq looks for CA certificates, and whether that file is there."""
    value = target.params.get("sslrootcert")
    if value == "system":
        return {"setting": "system", "path": None, "exists": None, "note": "the OS certificate store (libpq >= 16)"}
    if value:
        path = Path(value).expanduser()
        return {"setting": "sslrootcert", "path": value, "exists": path.is_file(), "note": None}
    home = environ.get("HOME") or str(Path.home())
    default = Path(home) / ".postgresql" / "root.crt"
    used = target.sslmode in ("verify-ca", "verify-full")
    return {
        "setting": "default",
        "path": "~/.postgresql/root.crt",
        "exists": default.is_file(),
        "note": "used because sslmode checks the certificate" if used else "not used with this sslmode",
    }


def build_report(
    target: Target,
    check: CheckReport,
    *,
    now: dt.datetime | None = None,
    redact_host: bool = False,
    redact_user: bool = False,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The whole document as data: header, target, probes, verdict, rules, error texts, environment."""
    body = check.to_json()
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "header": collect_versions(now),
        "redacted": {"password": True, "host": redact_host, "user": redact_user},
        **body,
        "rules": matched_rules(body["probes"]),
        "errors": error_texts(body),
        "environment": environment_hints(target, environ),
    }
    names = name_placeholders(target, check, redact_host=redact_host, redact_user=redact_user)
    return placeholder_walk(document, names) if names else document


AUTHORED = frozenset({"title", "cause", "fix", "docs"})
"""A rule's own words: written in a rule file, so they hold no user's host or user name (only words like
``localhost`` that a placeholder would mangle)."""


def matched_rules(probes: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every rule that matched a failing or warning probe, once, best first per probe."""
    seen: set[str] = set()
    rules = []
    for probe in probes:
        for match in probe.get("matches") or []:
            if match.get("id") in seen:
                continue
            seen.add(match["id"])
            rules.append(
                {
                    "probe": probe["name"],
                    "id": match["id"],
                    "title": match.get("title"),
                    "layer": match.get("layer"),
                    "cause": match.get("cause"),
                    "fix": list(match.get("fix") or []),
                    "docs": list(match.get("docs") or []),
                }
            )
    return rules


def error_texts(body: dict[str, Any]) -> list[dict[str, str]]:
    """The raw error texts (already redacted) that the probes and libpq saw, one entry per distinct text."""
    found: list[dict[str, str]] = []
    seen: set[str] = set()

    def keep(where: str, text: Any) -> None:
        if isinstance(text, str) and text.strip() and text not in seen:
            seen.add(text)
            found.append({"probe": where, "text": text})

    keep("url", body["target"].get("libpq_error"))
    for probe in body["probes"]:
        stack: list[Any] = [probe.get("details") or {}]
        while stack:
            value = stack.pop(0)
            if isinstance(value, dict):
                for key, item in value.items():
                    if key in ("error", "errors") and isinstance(item, str):
                        keep(probe["name"], item)
                    elif key == "errors" and isinstance(item, list):
                        for text in item:
                            keep(probe["name"], text)
                    else:
                        stack.append(item)
            elif isinstance(value, list):
                stack.extend(value)
    return found


# --------------------------------------------------------------------------- host and user placeholders


def name_placeholders(
    target: Target, check: CheckReport, *, redact_host: bool, redact_user: bool
) -> dict[str, str]:
    """Each name to hide → its placeholder: ``<host-1>``…, ``<endpoint-1>``, ``<addr-1>``…, ``<user>``."""
    from urllib.parse import quote

    names: dict[str, str] = {}
    if redact_host:
        hosts = [host for host, _port in target.hosts if host and not host.startswith("/")]
        for host in [*hosts, target.params.get("hostaddr", "")]:
            for one in host.split(","):
                one = one.strip().strip("[]")
                if one and one.lower() not in {n.lower() for n in names}:
                    names[one] = f"<host-{sum(v.startswith('<host-') for v in names.values()) + 1}>"
        if target.neon is not None:
            names[target.neon.endpoint_id] = "<endpoint-1>"
        for address in _resolved_addresses(check):
            if address not in names and not _is_loopback(address):
                names[address] = f"<addr-{sum(v.startswith('<addr-') for v in names.values()) + 1}>"
    if redact_user and target.user:
        names[target.user] = USER_PLACEHOLDER
        if quote(target.user, safe="") != target.user:
            names[quote(target.user, safe="")] = USER_PLACEHOLDER
    return names


def _resolved_addresses(check: CheckReport) -> list[str]:
    addresses = []
    for probe in check.probes:
        if probe.name != "dns":
            continue
        for entry in probe.details.get("hosts") or []:
            for address in entry.get("addresses") or []:
                if isinstance(address, dict) and address.get("ip"):
                    addresses.append(str(address["ip"]))
    return addresses


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def placeholder_walk(document: dict[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """Replace every name in every string (and dict key) of the document, except in a rule's own words."""
    replace = name_replacer(names)
    authored_steps = {step for rule in document.get("rules") or [] for step in rule.get("fix") or []}
    verdict = document.get("verdict") or {}
    keep_next_step = verdict.get("next_step") in authored_steps
    walked = _walk(document, replace)
    if keep_next_step:
        walked["verdict"]["next_step"] = verdict["next_step"]
    return walked


def _walk(value: Any, replace: Callable[[str], str], *, rule: bool = False) -> Any:
    if isinstance(value, str):
        return replace(value)
    if isinstance(value, dict):
        return {
            replace(k) if isinstance(k, str) else k: (
                v if rule and k in AUTHORED else _walk(v, replace, rule=_is_rule(k))
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_walk(v, replace, rule=rule) for v in value]
    return value


def _is_rule(key: Any) -> bool:
    """Lists under these keys hold rule matches (probes' ``matches``, the report's ``rules``)."""
    return key in ("matches", "rules")


def name_replacer(names: Mapping[str, str]) -> Callable[[str], str]:
    """A function that puts placeholders in text, at name boundaries only.

    A host matches case-insensitively and never inside a longer host name; a user matches exactly
    and never inside a word (user ``postgres`` leaves ``postgresql://`` alone). A name shorter than
    four characters is replaced only when it is the whole string or stands quoted, after ``user=``
    or in a URL's userinfo, because ``a`` or ``db`` also occur as words.
    """
    if not names:
        return lambda text: text
    parts = []
    for name in sorted(names, key=len, reverse=True):
        escaped = re.escape(name)
        if names[name] == USER_PLACEHOLDER:
            inner = rf"(?<![\w.-]){escaped}(?![\w-])"
            short = rf"(?<=[\"'=/]){escaped}(?=[\"':@\s,;&)]|$)"
        else:
            inner = rf"(?i:(?<![A-Za-z0-9.-]){escaped}(?!\.?[A-Za-z0-9-]))"
            short = rf"(?i:(?<=[\"'=/@\[]){escaped}(?=[\"':/\]\s,;&)]|$))"
        parts.append(f"(?P<n{len(parts)}>{short if len(name) < SHORT_NAME else inner})")
    pattern = re.compile("|".join(parts))
    ordered = sorted(names, key=len, reverse=True)

    def replace(text: str) -> str:
        if text in names:
            return names[text]
        return pattern.sub(lambda m: names[ordered[int(m.lastgroup[1:])]] if m.lastgroup else m.group(0), text)

    return replace
