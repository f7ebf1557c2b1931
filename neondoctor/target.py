"""Where the target comes from, what libpq makes of it, and what the user meant.

libpq is the judge: ``psycopg.conninfo.conninfo_to_dict`` runs libpq's own parser. This module adds
only what libpq cannot tell: which driver prefix or client dialect the string was written for,
which mistake it holds, and what the user most likely meant. psycopg is imported lazily, so that
modules that only need redaction do not pay for it.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from neondoctor.redact import MASK, Redactor

DEFAULT_ENV_VAR = "DATABASE_URL"
MAX_INPUT_CHARS = 16_384

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
SQLALCHEMY_DRIVERS = ("psycopg2", "psycopg", "psycopg2cffi", "asyncpg", "pg8000", "pygresql")
PRISMA_PARAMS = {
    "pgbouncer": "tells Prisma the URL points at PgBouncer (disables prepared statements)",
    "connection_limit": "Prisma's pool size",
    "pool_timeout": "seconds Prisma waits for a pooled connection",
    "schema": "Prisma's default schema",
    "socket_timeout": "Prisma's socket timeout",
    "sslaccept": "Prisma's certificate check switch",
    "sslidentity": "Prisma's client identity file",
    "statement_cache_size": "Prisma's prepared statement cache size",
}
DRIVER_PARAMS = {
    "ssl": "node-postgres / JDBC switch for TLS; libpq spells it sslmode=require",
    "sslfactory": "a JDBC-only TLS option",
    "currentschema": "a JDBC-only option; libpq uses options=-csearch_path%3D<schema>",
    "loggerlevel": "a JDBC-only option",
    "prepareThreshold".lower(): "a JDBC-only option",
    "search_path": "not a libpq parameter; use options=-csearch_path%3D<schema>",
    "statement_timeout": "not a libpq parameter; use options=-cstatement_timeout%3D<ms>",
    "endpoint": "Neon's endpoint id given as a plain parameter; libpq has no such parameter: Neon reads it from "
    "options=endpoint%3D<id>",
}
PARAM_MEANINGS = {
    "sslmode": "how hard libpq insists on TLS and on checking the server certificate",
    "sslrootcert": "CA certificates used to verify the server ('system' = the OS store, libpq >= 16)",
    "sslnegotiation": "how TLS starts: 'postgres' (SSLRequest first) or 'direct' (libpq >= 17)",
    "sslsni": "whether libpq sends the host name in TLS SNI (Neon routes on it)",
    "channel_binding": "whether SCRAM must bind to the TLS channel (stops man-in-the-middle proxies)",
    "connect_timeout": "seconds libpq waits for each connection attempt",
    "application_name": "name shown in pg_stat_activity",
    "options": "command-line options sent to the server at start-up",
    "target_session_attrs": "which of several hosts is acceptable (read-write, any, …)",
    "load_balance_hosts": "whether libpq tries the hosts in random order",
    "gssencmode": "whether to try GSSAPI encryption",
    "keepalives": "whether TCP keepalives are on",
    "client_encoding": "character set of the client",
    "hostaddr": "IP address to connect to, skipping DNS",
    "passfile": "path of the .pgpass file",
    "require_auth": "which authentication methods libpq accepts (libpq >= 16)",
}
NEON_HOST = re.compile(
    r"^(?P<endpoint>ep-[a-z0-9]+(?:-[a-z0-9]+)*?)(?P<pooler>-pooler)?"
    r"\.(?:(?P<cell>c-\d+)\.)?(?P<region>[a-z0-9-]+)\.(?P<cloud>aws|azure|gcp)\.neon\.(?:tech|build|com)$",
    re.IGNORECASE,
)
LIBPQ_ENV = {
    "PGHOST": "host",
    "PGHOSTADDR": "hostaddr",
    "PGPORT": "port",
    "PGDATABASE": "dbname",
    "PGUSER": "user",
    "PGPASSWORD": "password",
    "PGSERVICE": "service",
    "PGSSLMODE": "sslmode",
    "PGSSLROOTCERT": "sslrootcert",
    "PGCONNECT_TIMEOUT": "connect_timeout",
    "PGAPPNAME": "application_name",
    "PGOPTIONS": "options",
    "PGCHANNELBINDING": "channel_binding",
    "PGSSLNEGOTIATION": "sslnegotiation",
    "PGTARGETSESSIONATTRS": "target_session_attrs",
}


ASYNCPG_URL_KEYWORDS = frozenset({"host", "port", "user", "password", "dbname", "passfile", "target_session_attrs"})
"""libpq parameters that are also asyncpg.connect() keywords (SQLAlchemy maps dbname to database)."""
ASYNCPG_ONLY_KEYWORDS = frozenset(
    {"ssl", "timeout", "command_timeout", "statement_cache_size", "prepared_statement_cache_size", "direct_tls"}
)
"""asyncpg.connect() keywords that a postgresql+asyncpg:// URL may carry and libpq does not know."""

ENV_NAMES = {keyword: name for name, keyword in LIBPQ_ENV.items()}


class NoTarget(Exception):
    """No target anywhere, or a source that cannot be read: a usage problem."""


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    """One thing the string gets wrong or risks, with the fix for it."""

    id: str
    severity: Severity
    message: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "severity": str(self.severity), "message": self.message, "fix": self.fix}


@dataclass(frozen=True)
class NeonHost:
    """A Neon host name read into its parts (endpoint id, region, pooled or direct)."""

    endpoint_id: str
    region: str
    cloud: str
    pooled: bool
    cell: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint_id": self.endpoint_id,
            "region": self.region,
            "cloud": self.cloud,
            "pooled": self.pooled,
            "cell": self.cell,
        }


@dataclass(frozen=True)
class TargetText:
    """The string as the user gave it and where it came from."""

    text: str
    source: str
    env_defaults: dict[str, str] = field(default_factory=dict, repr=False)
    """libpq parameters from PG* variables: libpq uses each one the string does not set itself."""

    @property
    def password_default(self) -> str | None:
        return self.env_defaults.get("password")


@dataclass
class Target:
    """Every string form read into one connection target: what libpq would use, and what is wrong with it."""

    source: str
    form: str
    """url | keyvalue | jdbc | libpq-env"""
    driver: str | None
    scheme: str | None
    params: dict[str, str] = field(repr=False)
    """What libpq will use, password included: never print this dict."""
    findings: list[Finding]
    neon: NeonHost | None
    redactor: Redactor = field(repr=False)
    password_source: str | None = None
    from_env: list[str] = field(default_factory=list)
    """Parameters taken from PG* environment variables because the string does not set them."""
    libpq_error: str | None = None
    """libpq's own complaint about the string, redacted, or None when libpq accepts it."""
    given_query: list[tuple[str, str]] = field(default_factory=list, repr=False)
    """The URL's query parameters as written, driver-only ones included (values may hold secrets)."""

    @property
    def password(self) -> str | None:
        return self.params.get("password") or None

    @property
    def user(self) -> str | None:
        return self.params.get("user") or None

    @property
    def database(self) -> str | None:
        return self.params.get("dbname") or None

    @property
    def hosts(self) -> list[tuple[str, int]]:
        """(host, port) pairs in the order libpq tries them; an empty host means the Unix socket."""
        hosts = (self.params.get("host") or "").split(",")
        ports = [p.strip() for p in (self.params.get("port") or "").split(",")]
        pairs = []
        for index, host in enumerate(hosts):
            raw_port = ports[index] if index < len(ports) else (ports[0] if len(ports) == 1 else "")
            pairs.append((host.strip(), _port_or_default(raw_port)))
        return pairs

    @property
    def ports_written(self) -> list[int | str]:
        """The port of each host as the string names it, even when it is not a valid TCP port."""
        hosts = (self.params.get("host") or "").split(",")
        ports = [p.strip() for p in (self.params.get("port") or "").split(",")]
        written: list[int | str] = []
        for index in range(len(hosts)):
            raw = ports[index] if index < len(ports) else (ports[0] if len(ports) == 1 else "")
            written.append(int(raw) if raw.isdigit() else raw or 5432)
        return written

    @property
    def host(self) -> str | None:
        return self.hosts[0][0] or None

    @property
    def port(self) -> int:
        return self.hosts[0][1]

    @property
    def sslmode(self) -> str:
        return self.params.get("sslmode") or "prefer"

    @property
    def has_errors(self) -> bool:
        return any(f.severity is Severity.ERROR for f in self.findings)

    def dsn(self) -> str:
        """The libpq-ready URL, password masked."""
        return build_url(self.params, password=MASK if self.password else None)

    def connect_kwargs(self) -> dict[str, str]:
        """Parameters for psycopg.connect / libpq, password included: never print."""
        return dict(self.params)

    def to_json(self) -> dict[str, Any]:
        params = {k: v for k, v in self.params.items() if k not in {"user", "password", "host", "port", "dbname"}}
        host = self.params.get("host")
        ports = self.ports_written
        return self.redactor.obj(
            {
                "source": self.source,
                "form": self.form,
                "scheme": self.scheme,
                "dsn": self.dsn(),
                "driver": self.driver,
                "user": self.user,
                "password": "set" if self.password else "missing",
                "password_source": self.password_source,
                "from_env": {key: ENV_NAMES[key] for key in self.from_env},
                "host": host or None,
                "hosts": [{"host": h or None, "port": ports[i]} for i, (h, _) in enumerate(self.hosts)]
                if host and "," in host
                else None,
                "port": ports[0],
                "database": self.database,
                "params": params,
                "neon": self.neon.to_json() if self.neon else None,
                "libpq_error": self.libpq_error,
                "libpq_version": libpq_version(),
                "findings": [f.to_json() for f in self.findings],
            },
            patterns=False,
        )


def _port_or_default(raw: str) -> int:
    return int(raw) if raw.isdigit() and 0 < int(raw) < 65536 else 5432


# --------------------------------------------------------------------------- sources


def find_target(
    argument: str | None,
    *,
    env_file: str | None = None,
    env_var: str | None = None,
    cwd: Path | None = None,
    environ: dict[str, str] | None = None,
) -> TargetText:
    """The connection string and the name of its source, in order of precedence."""
    environ = dict(os.environ if environ is None else environ)
    name = env_var or DEFAULT_ENV_VAR
    defaults = {LIBPQ_ENV[k]: v for k, v in environ.items() if k in LIBPQ_ENV and v}
    if argument is not None:
        return TargetText(argument, "argument", defaults)
    if env_file is not None:
        text = _read_env_file(Path(env_file)).get(name)
        if not text:
            raise NoTarget(f"{name} is not set in {env_file}")
        return TargetText(text, f"env-file:{env_file}", defaults)
    if environ.get(name):
        return TargetText(environ[name], f"env:{name}", defaults)
    dotenv_path = (cwd or Path.cwd()) / ".env"
    if dotenv_path.is_file() and (text := _read_env_file(dotenv_path).get(name)):
        return TargetText(text, f"dotenv:{dotenv_path}", defaults)
    if defaults.keys() & {"host", "hostaddr", "dbname", "user", "service"}:
        return TargetText(" ".join(f"{k}={_quote_kv(v)}" for k, v in defaults.items()), "libpq-env")
    where = f"{name} is not set" + (f", and {dotenv_path} has none" if dotenv_path.is_file() else "")
    raise NoTarget(
        f"no connection string: pass one as an argument, set {name}, or use --env-file FILE ({where})"
    )


def _read_env_file(path: Path) -> dict[str, str | None]:
    from dotenv import dotenv_values

    try:
        with path.open(encoding="utf-8", errors="replace") as stream:
            return dict(dotenv_values(stream=stream))
    except OSError as exc:
        raise NoTarget(f"cannot read {path}: {exc.strerror or exc}") from None


def _quote_kv(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --------------------------------------------------------------------------- parsing


@dataclass
class _Intent:
    """What the user meant, read tolerantly from a URL before libpq sees it."""

    user: str | None = None
    password_raw: str | None = None
    password_span: tuple[int, int] | None = None
    """Where password_raw sits in the text given to :func:`_read_url`."""
    hostport: str = ""
    path: str | None = None
    query: str = ""


def parse_target(found: TargetText | str, source: str = "argument") -> Target:
    if isinstance(found, str):
        found = TargetText(found, source)
    findings: list[Finding] = []
    redactor = Redactor([found.password_default])
    text = _clean_input(found.text, findings)
    driver: str | None = None
    scheme: str | None = None
    form = "libpq-env" if found.source == "libpq-env" else "keyvalue"
    dropped: dict[str, str] = {}
    intent: _Intent | None = None

    url = re.match(r"^(?P<jdbc>jdbc:)?(?P<scheme>[a-z][a-z0-9+.\-]*)://", text, re.IGNORECASE)
    if url:
        form = "jdbc" if url.group("jdbc") else "url"
        scheme, _, driver_part = url.group("scheme").lower().partition("+")
        driver = driver_part or None
        intent = _read_url(text[url.end() :])
        if intent.password_span:
            redactor.add_region(text, url.end() + intent.password_span[0], url.end() + intent.password_span[1])
        redactor.add(unquote(intent.password_raw or ""))
        _scheme_findings(scheme, driver, bool(url.group("jdbc")), findings)
        fixed_text, dropped, fixed_span = _libpq_url(scheme, intent, jdbc=bool(url.group("jdbc")), driver=driver)
        if fixed_span:
            redactor.add_region(fixed_text, *fixed_span)
        _query_password_regions(text, redactor)
        _query_password_regions(fixed_text, redactor)
    else:
        if re.match(r"(?i)jdbc:postgresql:", text):
            findings.append(
                Finding(
                    "url-jdbc-short-form",
                    Severity.ERROR,
                    "jdbc:postgresql:<db> without '//host' is a JDBC-only form; libpq cannot read it",
                    "Write it as postgresql://HOST:5432/DBNAME",
                )
            )
            text = ""
        _keyvalue_password_regions(text, redactor)
        fixed_text = text

    literal_params, libpq_error = _libpq_parse(text, redactor)
    params, fixed_error = _libpq_parse(fixed_text, redactor)
    if intent is not None:
        _password_findings(intent, literal_params, libpq_error, params, findings, redactor)
        params = _in_written_order(params, intent.query)
    if fixed_error:
        findings.append(_libpq_error_finding(fixed_error, form))
    password_source = "string" if params.get("password") else None
    from_env = []
    if params or not libpq_error:
        for key, value in found.env_defaults.items():
            if key not in params:
                params[key] = value
                from_env.append(key)
    if "password" in from_env:
        password_source = "PGPASSWORD"
    redactor.add(params.get("password"))
    redactor.add(params.get("sslpassword"))  # the client key's passphrase

    shown = {redactor.fragment(k) or MASK: redactor.fragment(v) or "" for k, v in dropped.items()}
    _param_findings(params, shown, form, driver, findings)
    if driver == "asyncpg" and dropped.get("ssl") in SSLMODES and "sslmode" not in params and not fixed_error:
        params["sslmode"] = dropped["ssl"]
    _host_findings(params, findings)
    neon = neon_host(params["host"].split(",")[0] if "host" in params else None)
    _neon_findings(neon, params, driver, findings)
    if form == "jdbc":
        findings.append(
            Finding(
                "url-jdbc-form",
                Severity.WARNING,
                "a jdbc:postgresql:// URL is for Java's JDBC driver; libpq, psql and Python drivers reject it",
                "Keep it for Java; give other clients the libpq-ready URL shown",
            )
        )
    elif libpq_error and not any(f.severity is Severity.ERROR for f in findings):
        findings.append(_libpq_error_finding(libpq_error, form))

    return Target(
        source=found.source,
        form=form,
        driver=driver,
        scheme=scheme,
        params=params,
        findings=_dedupe(findings),
        neon=neon,
        redactor=redactor,
        password_source=password_source,
        from_env=from_env,
        libpq_error=libpq_error,
        given_query=parse_qsl(intent.query, keep_blank_values=True) if intent is not None else [],
    )


def _clean_input(text: str, findings: list[Finding]) -> str:
    if len(text) > MAX_INPUT_CHARS:
        findings.append(
            Finding(
                "url-too-long",
                Severity.ERROR,
                f"the connection string is {len(text):,} characters long; a real one is a few hundred",
                "Check that DATABASE_URL holds one connection string, not a file or a log",
            )
        )
        return ""
    stripped = text.strip()
    if stripped != text and stripped:
        findings.append(
            Finding(
                "url-whitespace",
                Severity.WARNING,
                "the string has leading or trailing white space (a newline from a copy or an echo?)",
                "Remove the white space; some drivers keep it in the database name",
            )
        )
    prefix = re.match(r"^(?:export\s+)?(?P<name>[A-Z_][A-Z0-9_]*)\s*=\s*(?=['\"]?[a-z]+(?:\+\w+)?://)", stripped)
    if prefix:
        findings.append(
            Finding(
                "url-variable-assignment",
                Severity.WARNING,
                f"the value includes the assignment '{prefix.group('name')}=': read the rest as the string",
                f"Set {prefix.group('name')} to the URL alone",
            )
        )
        stripped = stripped[prefix.end() :]
    psql = re.match(r"^psql\s+(?=['\"]?[a-z]+://)", stripped)
    if psql:
        findings.append(
            Finding(
                "url-psql-command",
                Severity.WARNING,
                "the value is a psql command line (the console's psql snippet); read the quoted URL inside it",
                "Use only the part inside the quotes as DATABASE_URL",
            )
        )
        stripped = stripped[psql.end() :]
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\"":
        findings.append(
            Finding(
                "url-quoted",
                Severity.WARNING,
                "the string is wrapped in quotes; libpq would read them as part of it",
                "Remove the surrounding quotes (in .env files, quotes are fine: python-dotenv strips them)",
            )
        )
        stripped = stripped[1:-1].strip()
    bad = [c for c in stripped if unicodedata.category(c) in ("Cc", "Cs", "Co") or c == "\ufffd"]
    if bad:
        findings.append(
            Finding(
                "url-control-characters",
                Severity.ERROR,
                f"the string holds {len(bad)} control or non-text character(s) (binary data, or a stray escape)",
                "Re-copy the connection string as plain text",
            )
        )
        stripped = "".join(c for c in stripped if c not in bad)
    if not stripped:
        findings.append(
            Finding(
                "url-empty",
                Severity.ERROR,
                "the connection string is empty",
                "Copy it from the Neon console (Dashboard → Connect) into DATABASE_URL",
            )
        )
    return stripped


_QUERY_AFTER_AUTHORITY = re.compile(
    r"(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]*\])(?::\d*)?(?:,(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]*\])(?::\d*)?)*"
    r"(?:/[^?#@/]*)?\?(?P<key>[A-Za-z_]+)="
)


def _userinfo_end(rest: str) -> int:
    """Where the userinfo ends: the LAST '@', so that a password holding unescaped '@', '/', '?', '#',
    '=' or ':' stays whole (reading it short would print the rest as host, port or options).

    The one exception: an '@' inside the query string of a URL, recognised when the text after an
    earlier '@' (or the start, for a URL without userinfo) reads as host[:port][/db]?keyword= with a
    real libpq or driver keyword (``?application_name=me@laptop``).
    """
    at = rest.rfind("@")
    known = libpq_keywords() | set(PRISMA_PARAMS) | set(DRIVER_PARAMS)
    starts = [-1] + [i for i, c in enumerate(rest[:at]) if c == "@"]
    for start in starts:
        match = _QUERY_AFTER_AUTHORITY.match(rest, start + 1)
        if match and match.end() <= at and match.group("key") in known:
            return start
    return at


def _read_url(rest: str) -> _Intent:
    """Split scheme-less URL text into its parts the way a human reads it (see :func:`_userinfo_end`)."""
    intent = _Intent()
    at = _userinfo_end(rest)
    if at != -1:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, _, password = userinfo.partition(":")
        intent.user = user
        intent.password_raw = password or None
        if password:
            intent.password_span = (len(user) + 1, at)
    intent.hostport = re.match(r"[^/?]*", rest).group()  # type: ignore[union-attr]
    rest = rest[len(intent.hostport) :]
    if rest.startswith("/"):
        path, _, query = rest[1:].partition("?")
        intent.path = path
        intent.query = query
    elif rest.startswith("?"):
        intent.query = rest[1:]
    return intent


def _query_password_regions(text: str, redactor: Redactor) -> None:
    """``?password=…`` in a URL's query (JDBC writes it there): secret up to the next ``&key=`` whose key is a
    real libpq or driver parameter, or the end (an unencoded ``&`` inside the password stays inside)."""
    known = libpq_keywords() | set(PRISMA_PARAMS) | set(DRIVER_PARAMS) | {"applicationname"}
    for match in re.finditer(r"(?i)[?&;]password=", text):
        start = match.end()
        end = len(text)
        for following in re.finditer(r"[&;#](?P<key>[A-Za-z_]+)=", text[start:]):
            if following.group("key") in known or following.group("key").lower() in known:
                end = start + following.start()
                break
        redactor.add_region(text, start, end)


def _keyvalue_password_regions(text: str, redactor: Redactor) -> None:
    """``password=…`` in a key=value string: a quoted value to its closing quote; an unquoted one up to
    the next ``key=`` (a password with a space, unquoted, is still hidden whole)."""
    for match in re.finditer(r"(?i)(?:^|\s)password\s*=\s*", text):
        start = match.end()
        if text[start : start + 1] == "'":
            quoted = re.compile(r"'((?:[^'\\]|\\.)*)('?)").match(text, start)
            assert quoted is not None
            redactor.add_region(text, quoted.start(1), quoted.end(1))
            continue
        following = re.compile(r"\s+[A-Za-z_]+\s*=").search(text, start)
        redactor.add_region(text, start, following.start() if following else len(text.rstrip()))


def _scheme_findings(scheme: str, driver: str | None, jdbc: bool, findings: list[Finding]) -> None:
    if scheme not in ("postgresql", "postgres"):
        findings.append(
            Finding(
                "url-unknown-scheme",
                Severity.ERROR,
                f"the scheme '{scheme}://' is not a PostgreSQL one; libpq accepts postgresql:// and postgres://",
                "Start the URL with postgresql://",
            )
        )
    if driver:
        known = driver in SQLALCHEMY_DRIVERS
        findings.append(
            Finding(
                "url-driver-prefix",
                Severity.ERROR,
                f"'{scheme}+{driver}://' is SQLAlchemy's dialect+driver form"
                + ("" if known else f" (and '{driver}' is not a driver SQLAlchemy ships)")
                + "; libpq, psql, psycopg.connect() and most tools reject it",
                "Give libpq (psql, psycopg.connect, pg_dump) the libpq-ready URL shown ('dsn' in JSON); keep the "
                "+driver prefix only for SQLAlchemy's create_engine()",
            )
        )
        if scheme == "postgres":
            findings.append(
                Finding(
                    "url-sqlalchemy-postgres-scheme",
                    Severity.ERROR,
                    f"SQLAlchemy >= 1.4 has no 'postgres' dialect: 'postgres+{driver}://' fails with "
                    f"NoSuchModuleError: Can't load plugin: sqlalchemy.dialects:postgres.{driver}",
                    f"Use postgresql+{driver}://",
                )
            )
    elif scheme == "postgres" and not jdbc:
        findings.append(
            Finding(
                "url-postgres-scheme",
                Severity.INFO,
                "'postgres://' works for libpq, psql, node-postgres and Prisma, but SQLAlchemy >= 1.4 rejects it "
                "(NoSuchModuleError: Can't load plugin: sqlalchemy.dialects:postgres)",
                "If SQLAlchemy reads this URL (Flask-SQLAlchemy, Airflow, Superset …), use postgresql://",
            )
        )


def _libpq_url(
    scheme: str, intent: _Intent, *, jdbc: bool, driver: str | None = None
) -> tuple[str, dict[str, str], tuple[int, int] | None]:
    """Rebuild the URL for libpq: plain scheme, password encoded as the user meant it, driver-only
    query parameters set aside. Also returns where the password sits in the rebuilt URL. The scheme stays as
    written, lower-cased and without its +driver (libpq reads postgres:// and postgresql:// alike)."""
    userinfo = ""
    span = None
    if intent.user is not None:
        userinfo = intent.user
        password = intent.password_raw
        if password is not None:
            shown = _encoded(unquote(password)) if _needs_encoding(password) else password
            start = len(scheme) + 3 + len(userinfo) + 1
            span = (start, start + len(shown))  # an empty password is None (see _read_url)
            userinfo += ":" + shown
        userinfo += "@"
    kept: list[tuple[str, str]] = []
    dropped: dict[str, str] = {}
    known = libpq_keywords()
    for key, value in parse_qsl(intent.query, keep_blank_values=True):
        asyncpg_only = driver == "asyncpg" and key in ASYNCPG_ONLY_KEYWORDS
        if key in known or not (jdbc or asyncpg_only or key in PRISMA_PARAMS or key.lower() in DRIVER_PARAMS):
            kept.append((key, value))
        else:
            dropped[key] = value
    if jdbc and "ssl" in dropped and dropped["ssl"].lower() in ("", "true") and "sslmode" not in dict(kept):
        # pgjdbc: ssl=true alone means verify-full against Java's trust store
        # (https://jdbc.postgresql.org/documentation/ssl/#configuring-the-client).
        kept.append(("sslmode", "verify-full"))
        if "sslrootcert" not in dict(kept) and libpq_version_at_least(160000):
            kept.append(("sslrootcert", "system"))
    query = urlencode(kept, quote_via=quote)
    path = "" if intent.path is None else "/" + intent.path
    return f"{scheme}://{userinfo}{intent.hostport}{path}" + (f"?{query}" if query else ""), dropped, span


def _in_written_order(params: dict[str, str], query: str) -> dict[str, str]:
    """The parameters not in the query (user, host, …) first, then the query's in the order written."""
    written = dict.fromkeys(key for key, _ in parse_qsl(query, keep_blank_values=True))
    unwritten = {key: value for key, value in params.items() if key not in written}
    return unwritten | {key: params[key] for key in written if key in params}


def _needs_encoding(raw: str) -> bool:
    return bool(re.search(r"[@/?# ]|%(?![0-9a-fA-F]{2})", raw))


@functools.cache
def libpq_keywords() -> frozenset[str]:
    """The connection keywords of the libpq that psycopg loads."""
    from psycopg import pq

    return frozenset(o.keyword.decode() for o in pq.Conninfo.get_defaults())


def libpq_version_at_least(number: int) -> bool:
    from psycopg import pq

    return pq.version() >= number


def libpq_version() -> str:
    """MAJOR.MINOR of the libpq psycopg loads (psycopg 3 supports libpq 10 and later, numbered MMmmmm)."""
    from psycopg import pq

    version = pq.version()
    return f"{version // 10000}.{version % 100}"


def _libpq_parse(text: str, redactor: Redactor) -> tuple[dict[str, str], str | None]:
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        return {k: str(v) for k, v in conninfo_to_dict(text).items()}, None
    except ProgrammingError as exc:
        return {}, redactor(str(exc).strip())
    except (ValueError, UnicodeError) as exc:
        return {}, redactor(f"cannot be parsed: {type(exc).__name__}")


def _libpq_error_finding(error: str, form: str) -> Finding:
    if "invalid percent-encoded token" in error:
        return Finding(
            "url-invalid-percent-encoding",
            Severity.ERROR,
            f"libpq rejects the string: {error} (a '%' that is not followed by two hex digits)",
            "Percent-encode '%' itself as %25 in the password or parameter values",
        )
    if "invalid URI query parameter" in error:
        return Finding(
            "url-unknown-parameter",
            Severity.ERROR,
            f"libpq rejects the string: {error}",
            "Remove the parameter, or give it to the client that understands it",
        )
    if 'missing "="' in error and form == "keyvalue":
        return Finding(
            "url-keyvalue-syntax",
            Severity.ERROR,
            f"libpq rejects the key=value string: {error}",
            "Write key=value pairs separated by spaces; quote values with spaces as 'like this'",
        )
    return Finding(
        "url-libpq-rejects",
        Severity.ERROR,
        f"libpq rejects the string: {error}",
        "Fix the string so that `psql \"$DATABASE_URL\"` accepts it",
    )


def _password_findings(
    intent: _Intent,
    literal: dict[str, str],
    literal_error: str | None,
    meant: dict[str, str],
    findings: list[Finding],
    redactor: Redactor,
) -> None:
    """``literal``: libpq's reading of the string as written; ``meant``: of the string with the password encoded."""
    if not intent.password_raw:
        return
    raw = intent.password_raw
    reserved = sorted({c for c in raw if c in "@/?# "})
    if re.search(r"%(?![0-9a-fA-F]{2})", raw):
        reserved.append("%")
    if not reserved:
        return
    encodings = ", ".join(f"'{c}' → %{ord(c):02X}" for c in reserved)
    if reserved == ["#"] and not literal_error and literal == meant:
        findings.append(
            Finding(
                "url-password-hash",
                Severity.WARNING,
                "the password holds '#': libpq reads it as part of the password, but SQLAlchemy, node-postgres, "
                "JDBC and most URL parsers cut the string there (the start of a URL fragment)",
                f"Percent-encode it: {encodings}, so that every client reads the same password",
            )
        )
        return
    named = " ".join("space" if c == " " else c for c in reserved)
    severity = Severity.ERROR
    if literal_error:
        reads = f"libpq cannot parse it at all ({literal_error}), not host {intent.hostport!r}"
    elif literal == meant:
        severity = Severity.WARNING
        reads = (
            "libpq happens to read it whole, but most other URL parsers (JDBC, node-postgres, Prisma, Python's "
            "urllib) cut the password there"
        )
    else:
        shown = {k: redactor.fragment(literal.get(k)) for k in ("user", "host", "port", "dbname")}
        reads = "libpq reads it as " + ", ".join(f"{k}={v!r}" for k, v in shown.items() if v is not None)
        reads += f", not host {intent.hostport!r}"
    findings.append(
        Finding(
            "url-password-unencoded",
            severity,
            f"the password holds reserved URL characters ({named}) that are not percent-encoded: "
            f"{reads}",
            f"Percent-encode the password: {encodings} (Python: urllib.parse.quote(password, safe='')); "
            "the libpq-ready URL shown has it encoded (and masked)",
        )
    )


def _param_findings(
    params: dict[str, str], dropped: dict[str, str], form: str, driver: str | None, findings: list[Finding]
) -> None:
    for key, value in dropped.items():
        lowered = key.lower()
        if driver == "asyncpg" and key in ASYNCPG_ONLY_KEYWORDS:
            findings.append(
                Finding(
                    f"url-asyncpg-keyword-{key.replace('_', '-')}",
                    Severity.INFO,
                    f"'{key}={value}' is asyncpg's own keyword (SQLAlchemy passes it to asyncpg.connect()); "
                    + ("libpq spells it sslmode" if key == "ssl" else "libpq does not know it")
                    + ", so the libpq-ready URL "
                    + ("carries sslmode instead" if key == "ssl" and value in SSLMODES else "leaves it out"),
                    "Keep it in the postgresql+asyncpg:// URL; give libpq clients the libpq-ready URL shown",
                )
            )
        elif key in PRISMA_PARAMS:
            findings.append(
                Finding(
                    "url-prisma-parameter",
                    Severity.WARNING if form == "jdbc" else Severity.ERROR,
                    f"'{key}={value}' is a Prisma-only parameter ({PRISMA_PARAMS[key]}); libpq rejects the whole "
                    f'string with: invalid URI query parameter: "{key}"',
                    f"Keep '{key}' in the URL that Prisma reads; remove it from the URL given to other clients "
                    "(the libpq-ready URL shown has it removed)",
                )
            )
        elif form == "jdbc":
            hint = DRIVER_PARAMS.get(lowered, "not a libpq parameter")
            if lowered == "ssl":
                hint = "pgjdbc's TLS switch: alone it means sslmode=verify-full against Java's trust store"
            findings.append(
                Finding(
                    "url-jdbc-parameter",
                    Severity.INFO,
                    f"'{key}' is JDBC-only ({hint}); the libpq-ready URL leaves it out",
                    "Keep it for the JDBC driver; for libpq clients use the 'dsn' shown",
                )
            )
        else:
            findings.append(
                Finding(
                    "url-driver-parameter",
                    Severity.ERROR,
                    f"'{key}={value}' is {DRIVER_PARAMS.get(lowered, 'not a libpq parameter')}; libpq rejects the "
                    f'whole string with: invalid URI query parameter: "{key}"',
                    "Remove it (the libpq-ready URL shown has it removed)"
                    + ("; add sslmode=require" if lowered == "ssl" and "sslmode" not in params else ""),
                )
            )
    sslmode = params.get("sslmode")
    if sslmode is not None and sslmode not in SSLMODES:
        import difflib

        guess = difflib.get_close_matches(sslmode.lower(), SSLMODES, cutoff=0.5)  # best first
        findings.append(
            Finding(
                "url-invalid-sslmode",
                Severity.ERROR,
                f"sslmode={sslmode!r} is not a valid value; libpq fails with: invalid sslmode value: \"{sslmode}\""
                + (f". Did you mean '{guess[0]}'?" if guess else ""),
                f"Use sslmode={guess[0] if guess else 'require'} (valid: {', '.join(SSLMODES)})",
            )
        )
    if driver == "asyncpg":
        for key in params:
            if key in ASYNCPG_URL_KEYWORDS:
                continue
            fix = {
                "sslmode": "Write ?ssl=" + (params[key] if params[key] in SSLMODES else "require")
                + " instead (asyncpg's keyword); for a CA file see `neondoctor url --for sqlalchemy-async`",
                "sslrootcert": "Pass the CA in code: connect_args={'ssl': ssl.create_default_context(cafile=...)}",
                "options": "Pass server settings via connect_args={'server_settings': {...}}",
                "connect_timeout": "Write ?timeout=SECONDS (asyncpg's keyword) instead",
                "application_name": "Pass connect_args={'server_settings': {'application_name': ...}}",
            }.get(key, f"Remove {key} from the URL that SQLAlchemy gives asyncpg")
            findings.append(
                Finding(
                    f"url-asyncpg-{key.replace('_', '-')}",
                    Severity.ERROR,
                    f"SQLAlchemy passes each URL query parameter to asyncpg.connect() as a keyword, and asyncpg has "
                    f"no '{key}': connect() got an unexpected keyword argument '{key}' (SQLAlchemy 2.1, asyncpg 0.32)",
                    fix,
                )
            )
    channel_binding = params.get("channel_binding")
    if channel_binding:
        meaning = {
            "require": "SCRAM must be bound to the TLS channel: a man-in-the-middle (or a pooler that does "
            "not support SCRAM-SHA-256-PLUS) makes the connection fail instead of succeed",
            "prefer": "use channel binding when the server offers it",
            "disable": "never use channel binding",
        }.get(channel_binding, "an unknown value")
        severity = Severity.INFO
        if channel_binding == "require" and params.get("sslmode") == "disable":
            severity = Severity.ERROR
            meaning += "; with sslmode=disable there is no TLS channel, so it always fails"
        findings.append(
            Finding(
                "url-channel-binding",
                severity,
                f"channel_binding={channel_binding}: {meaning}. It needs libpq >= 13; asyncpg and older GUI tools "
                "reject the parameter",
                "Keep it with libpq >= 13 and TLS; remove it for clients that reject it",
            )
        )
    port = params.get("port")
    if port is not None:
        for piece in port.split(","):
            if piece and (not piece.strip().isdigit() or not 0 < int(piece) < 65536):
                findings.append(
                    Finding(
                        "url-invalid-port",
                        Severity.ERROR,
                        f"port {piece!r} is not a TCP port (1-65535); libpq fails with: "
                        f'invalid port number: "{piece}"',
                        "Use port 5432 (Neon, and PostgreSQL's default) or the port your server listens on",
                    )
                )


def _host_findings(params: dict[str, str], findings: list[Finding]) -> None:
    if not params:
        return
    host = params.get("host", "")
    if not host and not params.get("hostaddr") and not params.get("service"):
        findings.append(
            Finding(
                "url-empty-host",
                Severity.WARNING,
                "no host: libpq will use the local Unix socket (/var/run/postgresql), which only works for a "
                "server on this machine",
                "Add the host, e.g. postgresql://USER:PASSWORD@ep-….neon.tech/DBNAME",
            )
        )
    for name in host.split(","):
        if name and any(ord(c) > 127 for c in name):
            findings.append(
                Finding(
                    "url-non-ascii-host",
                    Severity.WARNING,
                    f"the host {name!r} has non-ASCII characters; libpq passes it to DNS as is (no IDNA), "
                    "and look-alike characters (a Cyrillic 'е', a non-breaking space) break resolution",
                    "Re-type the host name in plain ASCII",
                )
            )
        elif name and not name.startswith("/") and re.search(r"[\s@/?#]", name):
            findings.append(
                Finding(
                    "url-bad-host",
                    Severity.ERROR,
                    f"the host {name!r} cannot be a host name",
                    "Check the string: a password with reserved characters shifts the host",
                )
            )
    if "dbname" not in params and not params.get("service"):
        findings.append(
            Finding(
                "url-empty-database",
                Severity.WARNING,
                "no database name: libpq connects to a database named like the user",
                "Add /DBNAME to the URL (Neon's default database is neondb)",
            )
        )
    elif params.get("dbname", "") != params.get("dbname", "").strip():
        findings.append(
            Finding(
                "url-database-whitespace",
                Severity.ERROR,
                "the database name has leading or trailing white space",
                "Remove the white space from the database name",
            )
        )


def neon_host(host: str | None) -> NeonHost | None:
    """The parts of a Neon host name (endpoint id, region, cloud, pooled, cell); None for any other host."""
    match = NEON_HOST.match(host.strip().rstrip(".")) if host else None
    if not match:
        return None
    return NeonHost(
        endpoint_id=match.group("endpoint").lower(),
        region=match.group("region").lower(),
        cloud=match.group("cloud").lower(),
        pooled=bool(match.group("pooler")),
        cell=match.group("cell"),
    )


def _neon_findings(neon: NeonHost | None, params: dict[str, str], driver: str | None, findings: list[Finding]) -> None:
    options = params.get("options", "")
    endpoint_option = re.search(r"(?:^|\s)(?:endpoint|project)=(?P<id>[A-Za-z0-9-]+)", options)
    if endpoint_option:
        findings.append(
            Finding(
                "url-neon-endpoint-option",
                Severity.INFO,
                f"options=endpoint={endpoint_option.group('id')} tells Neon's proxy which endpoint to route to when "
                "the client sends no TLS SNI (old libpq < 14, connection by IP, a tunnel or a custom domain)",
                "Keep it only if the client cannot send SNI; with libpq >= 14 and the Neon host name it is not needed",
            )
        )
        if neon and endpoint_option.group("id").removesuffix("-pooler") != neon.endpoint_id:
            findings.append(
                Finding(
                    "url-neon-endpoint-mismatch",
                    Severity.ERROR,
                    f"the host names endpoint {neon.endpoint_id} but options names {endpoint_option.group('id')}; "
                    "Neon's proxy fails with: Inconsistent project name inferred from SNI and project option",
                    "Remove the endpoint option or make it match the host",
                )
            )
    if neon is None:
        return
    sslmode = params.get("sslmode")
    if sslmode is None:
        findings.append(
            Finding(
                "url-neon-sslmode-missing",
                Severity.WARNING,
                "no sslmode on a Neon host: libpq defaults to 'prefer' (TLS without checking the certificate), "
                "and many drivers default to no TLS at all, which Neon refuses "
                "(connection is insecure (try using `sslmode=require`))",
                "Add sslmode=require, or better sslmode=verify-full&sslrootcert=system (libpq >= 16)",
            )
        )
    elif sslmode in ("disable", "allow"):
        findings.append(
            Finding(
                "url-neon-sslmode-weak",
                Severity.ERROR if sslmode == "disable" else Severity.WARNING,
                f"sslmode={sslmode} on a Neon host: Neon's proxy refuses connections without TLS "
                "(connection is insecure (try using `sslmode=require`))",
                "Use sslmode=require, or sslmode=verify-full&sslrootcert=system (libpq >= 16)",
            )
        )
    elif sslmode in ("prefer", "require"):
        findings.append(
            Finding(
                "url-neon-sslmode-unverified",
                Severity.INFO,
                f"sslmode={sslmode} encrypts but does not check Neon's certificate, so a man-in-the-middle "
                "is not detected",
                "For production use sslmode=verify-full&sslrootcert=system (libpq >= 16) or point sslrootcert at "
                "your OS CA bundle",
            )
        )
    if neon.pooled:
        findings.append(
            Finding(
                "url-neon-pooled",
                Severity.INFO,
                "a -pooler host goes through PgBouncer in transaction mode: fine for app traffic, wrong for "
                "migrations, LISTEN/NOTIFY, session SET, advisory locks, pg_dump and logical replication",
                "Run migrations (prisma migrate, alembic, django migrate) against the direct host: the same URL "
                "without '-pooler'",
            )
        )
        if driver == "asyncpg":
            findings.append(
                Finding(
                    "url-neon-pooled-asyncpg",
                    Severity.WARNING,
                    "asyncpg caches prepared statements, which break on a transaction-mode pooler "
                    '(prepared statement "__asyncpg_stmt_1__" does not exist)',
                    "Pass connect_args={'statement_cache_size': 0} or use the direct host",
                )
            )


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for finding in findings:
        if (finding.id, finding.message) not in seen:
            seen.add((finding.id, finding.message))
            unique.append(finding)
    order = list(Severity)  # error, warning, info
    return sorted(unique, key=lambda f: order.index(f.severity))


def build_url(params: dict[str, str], *, password: str | None) -> str:
    """A postgresql:// URL from libpq parameters."""
    user = params.get("user")
    userinfo = ""
    if user or password:
        userinfo = _encoded(user or "")
        if password:
            userinfo += ":" + (password if password == MASK else _encoded(password))
        userinfo += "@"
    hosts = []
    for host, port in _host_port_strings(params):
        shown = f"[{host}]" if ":" in host else quote(host)  # a socket directory keeps its '/'
        hosts.append(shown + (f":{port}" if port else ""))
    path = "/" + _encoded(params["dbname"]) if "dbname" in params else ""
    skip = {"user", "password", "host", "port", "dbname"}
    query = urlencode({k: v for k, v in params.items() if k not in skip}, quote_via=quote)
    return f"postgresql://{userinfo}{','.join(hosts)}{path}" + (f"?{query}" if query else "")


def _encoded(text: str) -> str:
    """Every character a URL reserves, '/' included, percent-encoded."""
    return quote(text, safe="")


def _host_port_strings(params: dict[str, str]) -> list[tuple[str, str]]:
    hosts = (params.get("host") or "").split(",")
    ports = (params.get("port") or "").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    return [(h, ports[i] if i < len(ports) else "") for i, h in enumerate(hosts)]
