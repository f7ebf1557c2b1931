"""The same target, written the way each client reads it, with the same security.

libpq's parameters (``Target.params``) are the meaning; each client gets the string (or, where a
string cannot say it, the few lines of code) that gives it the same host, role, database and the
same TLS guarantee. ``notes`` say what this client would ignore or reject in the string as the user
gave it. Every claim in ``CLIENTS`` is checked against the real client in ``tests/test_clients_lab.py``
where it installs in the lab, or cites the client's source or documentation where it cannot run.

The password is masked (``****``) unless the caller asks for it: the forms are meant to be pasted
into a secret store by a human who already has the password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from neondoctor.redact import MASK
from neondoctor.target import Finding, Severity, build_url

if TYPE_CHECKING:
    from neondoctor.target import Target

CORE = ("user", "password", "host", "port", "dbname")
QUERY_SAFE = "/:,"
"""Kept as is in query values (RFC 3986 allows them there): file paths stay readable."""
UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
PASSWORD_ENCODING = {
    "django": "PASSWORD takes it as is: no encoding",
    "jdbc": "in the query as password=…, percent-encoded (a raw '+' or '&' would change it)",
    "sqlalchemy": "percent-encoded in the URL (SQLAlchemy decodes it); in alembic.ini also double each '%'",
}
NEON_SUSPEND_SECONDS = 300


@dataclass(frozen=True)
class ClientSpec:
    """What one client accepts: the README's table is made from these rows."""

    name: str
    label: str
    reads: str
    scheme: str
    tls: str
    credentials: str
    rejects: str
    evidence: str
    """How the row is known: ``lab`` (run here by tests/test_clients_lab.py) or a cited source."""


CLIENTS: dict[str, ClientSpec] = {
    spec.name: spec
    for spec in (
        ClientSpec("psql", "psql", "URL or key=value", "postgresql:// or postgres://",
                   "sslmode, sslrootcert (=system with libpq ≥ 16), channel_binding",
                   "user:password@ in the authority, percent-encoded",
                   "driver prefixes (+psycopg2), jdbc:, ssl=true, Prisma parameters: the whole string",
                   "lab: psql 15"),
        ClientSpec("libpq", "libpq (PQconnectdb)", "URL or key=value", "postgresql:// or postgres://",
                   "sslmode, sslrootcert, channel_binding", "user:password@, percent-encoded",
                   "any parameter it does not know: the whole string", "lab: libpq of psycopg"),
        ClientSpec("psycopg2", "psycopg2", "URL or key=value (libpq)", "postgresql://",
                   "sslmode, sslrootcert (libpq's)", "user:password@, percent-encoded",
                   "like libpq", "lab: psycopg2-binary 2.9"),
        ClientSpec("psycopg", "psycopg 3", "URL or key=value (libpq)", "postgresql://",
                   "sslmode, sslrootcert (libpq's)", "user:password@, percent-encoded",
                   "like libpq", "lab: psycopg 3.3"),
        ClientSpec("asyncpg", "asyncpg", "URL (its own parser)", "postgresql:// or postgres:// only",
                   "sslmode and sslrootcert in the URL (sslmode since 0.18, sslrootcert since 0.24); "
                   "ssl= is a keyword, not a URL parameter",
                   "user:password@, percent-encoded",
                   "+driver prefixes; unknown parameters (connect_timeout, ssl, channel_binding) are sent to the "
                   "server as settings and fail; sslrootcert=system (read as a file)",
                   "lab: asyncpg 0.32"),
        ClientSpec("sqlalchemy", "SQLAlchemy (sync)", "URL", "postgresql+psycopg2:// (or +psycopg, +pg8000)",
                   "the driver's: libpq's sslmode/sslrootcert for psycopg2 and psycopg",
                   "user:password@, percent-encoded (and '%' doubled in alembic.ini)",
                   "postgres:// (NoSuchModuleError since 1.4), jdbc:",
                   "lab: SQLAlchemy 2.1"),
        ClientSpec("sqlalchemy-async", "SQLAlchemy (asyncio)", "URL + connect_args",
                   "postgresql+asyncpg:// (or +psycopg)",
                   "?ssl=MODE; a CA file only as connect_args={'ssl': SSLContext}",
                   "user:password@, percent-encoded",
                   "with +asyncpg every libpq-only parameter (sslmode, sslrootcert, channel_binding, "
                   "connect_timeout, application_name): TypeError; a sync driver (psycopg2)",
                   "lab: SQLAlchemy 2.1 + asyncpg 0.32"),
        ClientSpec("django", "Django", "DATABASES dict (no URL)", "ENGINE django.db.backends.postgresql",
                   "OPTIONS: any libpq parameter (sslmode, sslrootcert, …)", "PASSWORD as is, no encoding",
                   "a URL (reading one needs dj-database-url)", "lab: Django 5.2"),
        ClientSpec("node-pg", "node-postgres (pg)", "connectionString", "any (the scheme is ignored)",
                   "sslmode=require/prefer/verify-ca VERIFY the certificate (pg 8.x); no-verify encrypts "
                   "only; uselibpqcompat=true gives libpq's meanings; sslrootcert= is read",
                   "user:password@, percent-encoded",
                   "sslmode in the string overrides ssl: { rejectUnauthorized } in code",
                   "lab: pg 8"),
        ClientSpec("postgres-js", "postgres.js", "URL + options", "postgres:// or postgresql://",
                   "sslmode=disable/prefer/require/verify-full; sslrootcert only from 4.0 (3.x: ssl: { ca } in code)",
                   "user:password@, percent-encoded",
                   "unknown parameters (3.x: sslrootcert too) are sent to the server as settings and fail",
                   "lab: postgres 4.2 and 3.4"),
        ClientSpec("prisma", "Prisma", "url / directUrl in schema.prisma", "postgresql:// or postgres://",
                   "sslmode=disable/prefer/require; sslcert=CA file + sslaccept=strict to verify",
                   "user:password@, percent-encoded",
                   "libpq's sslrootcert (Prisma's CA file is sslcert); verify-full",
                   "source: prisma.io/docs/orm/overview/databases/postgresql (arguments table; Prisma 7 moves the "
                   "URL to prisma.config.ts and connects through node-postgres)"),
        ClientSpec("drizzle", "Drizzle (node-postgres)", "connectionString via drizzle()", "like node-postgres",
                   "like node-postgres", "user:password@, percent-encoded", "like node-postgres",
                   "lab: drizzle-orm on pg 8"),
        ClientSpec("jdbc", "JDBC (pgjdbc)", "jdbc: URL", "jdbc:postgresql://host:port/db",
                   "sslmode, sslrootcert (a file); sslfactory=org.postgresql.ssl.DefaultJavaSSLFactory for "
                   "Java's trust store", "?user=…&password=… in the query, percent-encoded",
                   "user:password@ in the authority (UnknownHostException)", "lab: pgjdbc 42.5 (Debian)"),
        ClientSpec("go-pgx", "Go pgx", "URL or key=value", "postgres:// or postgresql://",
                   "sslmode, sslrootcert (libpq's meanings)", "user:password@, percent-encoded",
                   "unknown parameters are sent to the server as settings",
                   "source: github.com/jackc/pgx pgconn/config.go, ParseConfig's notRuntimeParams "
                   "(Go modules not reachable here)"),
    )
}


@dataclass
class ClientForm:
    client: str
    kind: str
    """``url`` when the string alone says it all, ``code`` when it takes a few lines."""
    url: str | None
    code: str | None
    notes: list[Finding] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "label": CLIENTS[self.client].label,
            "kind": self.kind,
            "url": self.url,
            "code": self.code,
            "notes": [note.to_json() for note in self.notes],
        }


class _Build:
    """Shared pieces: the parts of the target and the notes being collected."""

    def __init__(self, target: Target, client: str, show_password: bool) -> None:
        self.target = target
        self.client = client
        self.params = dict(target.params)
        self.show = show_password
        self.notes: list[Finding] = []
        self.sslmode = self.params.get("sslmode") or _ssl_switch(target)
        self.rootcert = self.params.get("sslrootcert")
        self.host = self.target.host or "localhost"
        self.port = str(self.target.port)
        self.extras = {k: v for k, v in self.params.items() if k not in CORE and k not in ("sslmode", "sslrootcert")}
        if "," in (self.params.get("host") or ""):
            self.note("client-multi-host", Severity.WARNING, f"{self.label} gets only the first host here",
                      "Give it one host, or a pooler / DNS name in front of the hosts")

    @property
    def label(self) -> str:
        return CLIENTS[self.client].label

    def note(self, id_: str, severity: Severity, message: str, fix: str) -> None:
        self.notes.append(Finding(id_, severity, message, fix))

    def password_text(self, *, encoded: bool = True) -> str | None:
        password = self.target.password
        if password is None:
            return None
        if not self.show:
            return MASK
        return quote(password, safe="") if encoded else password

    def userinfo(self) -> str:
        user = self.target.user
        password = self.password_text()
        if not user and password is None:
            return ""
        return quote(user or "", safe="") + (f":{password}" if password is not None else "") + "@"

    def hostport(self) -> str:
        host = self.host
        shown = f"[{host}]" if ":" in host else quote(host, safe="/")
        return f"{shown}:{self.port}"

    def path(self) -> str:
        dbname = self.params.get("dbname")
        return "/" + quote(dbname, safe="") if dbname else ""

    def url(self, scheme: str, query: list[tuple[str, str]]) -> str:
        if self.host.startswith("/"):
            query = [("host", self.host), ("port", self.port), *query]
            return f"{scheme}://{self.userinfo()}{self.path()}" + "?" + "&".join(
                f"{k}={quote(v, safe=QUERY_SAFE)}" for k, v in query
            )
        text = f"{scheme}://{self.userinfo()}{self.hostport()}{self.path()}"
        return text + ("?" + "&".join(f"{k}={quote(v, safe=QUERY_SAFE)}" for k, v in query) if query else "")

    def tls_query(self) -> list[tuple[str, str]]:
        query = []
        if self.sslmode:
            query.append(("sslmode", self.sslmode))
        if self.rootcert:
            query.append(("sslrootcert", self.rootcert))
        return query

    def dropped(self, keys: list[str], why: str, fix: str) -> None:
        for key in keys:
            self.note(f"client-drops-{key.replace('_', '-')}", Severity.WARNING,
                      f"{key}={self.extras[key]} cannot be given to {self.label} in the string: {why}", fix)

    def given(self, keys: set[str]) -> list[str]:
        return [key for key, _ in self.target.given_query if key in keys]

    def channel_binding_lost(self) -> None:
        if self.extras.get("channel_binding") == "require":
            self.note("client-no-channel-binding", Severity.WARNING,
                      f"{self.label} cannot require SCRAM channel binding: the form shown is weaker on that point",
                      "Accept it, or use a libpq-based client (psycopg, psql) where channel_binding=require works")


LIBPQ_SYNTAX_IDS = ("url-driver-prefix", "url-driver-parameter", "url-prisma-parameter", "url-jdbc", "url-asyncpg",
                    "url-sqlalchemy-postgres-scheme", "url-unknown-parameter", "url-postgres-scheme")
"""Target findings about libpq's syntax: with --for another client, that client's own notes judge instead."""


def client_fails(target: Target, form: ClientForm) -> bool:
    """Whether the string as given fails for this client (its own notes, or a mistake every client shares)."""
    if any(note.severity is Severity.ERROR for note in form.notes):
        return True
    if form.client in ("psql", "libpq", "psycopg2", "psycopg"):
        return target.has_errors
    return any(f.severity is Severity.ERROR and not f.id.startswith(LIBPQ_SYNTAX_IDS) for f in target.findings)


def _ssl_switch(target: Target) -> str | None:
    """What a driver's ssl=… switch (node, JDBC, asyncpg's keyword) in the string meant, in libpq's words."""
    value = dict(target.given_query).get("ssl", "").lower()
    if value in ("require", "prefer", "allow", "disable", "verify-ca", "verify-full"):
        return value
    return {"true": "require", "1": "require", "on": "require", "false": "disable", "0": "disable"}.get(value)


def for_client(target: Target, client: str, *, show_password: bool = False) -> ClientForm:
    if client not in CLIENTS:
        raise ValueError(f"unknown client {client!r}")
    if not target.params:
        unreadable = Finding("client-no-target", Severity.ERROR,
                             "the string could not be read, so there is nothing to translate",
                             "Fix the errors that `neondoctor url` lists first")
        return ClientForm(client, "url", None, None, [unreadable])
    build = _Build(target, client, show_password)
    form = _BUILDERS[client](build)
    password = target.password
    if password is not None and not set(password) <= UNRESERVED:
        how = PASSWORD_ENCODING.get(client, "percent-encoded in the userinfo (urllib.parse.quote(password, safe=''))")
        build.note("client-password-encoding", Severity.INFO,
                   f"the password holds characters a URL reserves; for {build.label} it is {how}",
                   "Copy the form shown; to encode by hand: python3 -c \"import urllib.parse,sys; "
                   "print(urllib.parse.quote(sys.argv[1], safe=''))\" 'PASSWORD'")
    form.notes = _given_notes(build) + build.notes
    return form


# --------------------------------------------------------------------------- libpq family


def _libpq(build: _Build) -> ClientForm:
    params = dict(build.params)
    if build.target.password is not None:
        params["password"] = build.password_text(encoded=False) or ""
    if build.show:
        url = build_url(params, password=build.target.password)
    else:
        url = build_url(params, password=MASK if build.target.password else None)
    code = None
    if build.client == "psql":
        code = f"psql '{url}'"
    elif build.client in ("psycopg2", "psycopg"):
        code = f"import {build.client}\nconn = {build.client}.connect({url!r})"
    return ClientForm(build.client, "url", url, code)


def _sqlalchemy(build: _Build) -> ClientForm:
    query = [(k, v) for k, v in build.params.items() if k not in CORE]
    driver = build.target.driver if build.target.driver in ("psycopg2", "psycopg", "pg8000") else "psycopg2"
    if driver == "pg8000":
        driver = "psycopg2"
        build.note("client-sqlalchemy-pg8000", Severity.INFO,
                   "pg8000 does not read libpq parameters such as sslmode from the URL; the form uses psycopg2",
                   "Install psycopg2-binary, or write postgresql+psycopg:// with psycopg 3")
    url = build.url(f"postgresql+{driver}", query)
    code = f'from sqlalchemy import create_engine\nengine = create_engine("{url}", pool_pre_ping=True)'
    if "%" in url:
        build.note("client-alembic-percent", Severity.INFO,
                   "the URL holds '%' (percent-encoding): alembic.ini and other ConfigParser files read '%' as "
                   "interpolation", "In alembic.ini write each '%' as '%%', or set sqlalchemy.url from the "
                   "environment in env.py")
    return ClientForm(build.client, "url", url, code)


def _ssl_context_lines(build: _Build) -> list[str] | None:
    """Python lines making ``context`` for a CA file or the system store; None when a mode string says it."""
    if build.sslmode not in ("verify-ca", "verify-full") or not build.rootcert:
        return None
    if build.rootcert == "system":
        lines = ["context = ssl.create_default_context()  # the OS trust store, like sslrootcert=system"]
    else:
        lines = [f"context = ssl.create_default_context(cafile={build.rootcert!r})"]
    if build.sslmode == "verify-ca":
        lines.append("context.check_hostname = False  # verify-ca: the chain, not the host name")
    return lines


def _async_extras(build: _Build) -> tuple[list[tuple[str, str]], dict[str, str], dict[str, Any]]:
    """(URL query, server_settings, other connect keywords) for asyncpg from libpq's extra parameters."""
    query: list[tuple[str, str]] = []
    settings: dict[str, str] = {}
    keywords: dict[str, Any] = {}
    for key, value in build.extras.items():
        if key == "application_name":
            settings["application_name"] = value
        elif key == "connect_timeout" and value.isdigit():
            keywords["timeout"] = int(value)
        elif key == "options":
            for piece in value.split():
                name, _, setting = piece.removeprefix("-c").partition("=")
                if name and setting:
                    settings[name] = setting
        elif key == "target_session_attrs":
            query.append((key, value))
        elif key == "channel_binding":
            build.channel_binding_lost()
        else:
            build.dropped([key], "asyncpg has no such keyword", "Leave it out, or set it on the role "
                          "(ALTER ROLE … SET …) if it is a server setting")
    return query, settings, keywords


def _sqlalchemy_async(build: _Build) -> ClientForm:
    query, settings, keywords = _async_extras(build)
    context = _ssl_context_lines(build)
    if build.sslmode and context is None:
        if build.rootcert:
            keywords_note = "asyncpg would need the CA as an SSL context"
            build.note("client-sqlalchemy-async-rootcert", Severity.INFO,
                       f"sslrootcert with sslmode={build.sslmode}: {keywords_note}; libpq ignores it in this mode",
                       "Nothing to do")
        query.insert(0, ("ssl", build.sslmode))
    url = build.url("postgresql+asyncpg", query)
    connect_args: list[str] = []
    if context is not None:
        connect_args.append('"ssl": context')
    if settings:
        connect_args.append(f'"server_settings": {settings!r}')
    connect_args += [f'"{k}": {v!r}' for k, v in keywords.items()]
    if build.target.neon is not None and build.target.neon.pooled:
        connect_args.append('"statement_cache_size": 0')
        build.note("client-asyncpg-pooler", Severity.INFO,
                   "the host is Neon's pooler (PgBouncer, transaction mode): asyncpg's prepared statement cache "
                   'breaks there (prepared statement "__asyncpg_stmt_1__" does not exist)',
                   "Keep statement_cache_size=0 (in the form shown), or use the direct host")
    if not connect_args:
        code = f'from sqlalchemy.ext.asyncio import create_async_engine\nengine = create_async_engine("{url}")'
        return ClientForm(build.client, "url", url, code)
    lines = ["import ssl"] if context else []
    lines += ["from sqlalchemy.ext.asyncio import create_async_engine", "", *(context or [])]
    lines.append(f'engine = create_async_engine(\n    "{url}",\n    connect_args={{{", ".join(connect_args)}}},\n)')
    return ClientForm(build.client, "code", url, "\n".join(lines))


def _asyncpg(build: _Build) -> ClientForm:
    extras_query, settings, keywords = _async_extras(build)
    context = _ssl_context_lines(build)
    query = extras_query
    if context is None:
        query = build.tls_query() + query
    elif build.rootcert != "system":
        query = [("sslmode", build.sslmode or "verify-full"), ("sslrootcert", build.rootcert or ""), *query]
        context = None
    url = build.url("postgresql", query)
    if context is None and not settings and not keywords and not (build.target.neon and build.target.neon.pooled):
        code = f'import asyncpg\n\nconn = await asyncpg.connect("{url}")'
        return ClientForm(build.client, "url", url, code)
    args = []
    if context is not None:
        args.append("ssl=context")
    if settings:
        args.append(f"server_settings={settings!r}")
    args += [f"{k}={v!r}" for k, v in keywords.items()]
    if build.target.neon is not None and build.target.neon.pooled:
        args.append("statement_cache_size=0")
    lines = ["import ssl"] if context else []
    lines += ["import asyncpg", "", *(context or [])]
    lines.append(f'conn = await asyncpg.connect("{url}", {", ".join(args)})')
    return ClientForm(build.client, "code", url, "\n".join(lines))


def _django(build: _Build) -> ClientForm:
    options = {k: v for k, v in build.params.items() if k not in CORE}
    password = build.password_text(encoded=False)
    entries = [
        ('"ENGINE"', '"django.db.backends.postgresql"'),
        ('"NAME"', repr(build.params.get("dbname", ""))),
        ('"USER"', repr(build.params.get("user", ""))),
        ('"PASSWORD"', repr(password) if password is not None else '""'),
        ('"HOST"', repr(build.host)),
        ('"PORT"', repr(build.port)),
    ]
    if options:
        entries.append(('"OPTIONS"', repr(options)))
    if build.target.neon is not None:
        entries.append(('"CONN_MAX_AGE"', str(NEON_SUSPEND_SECONDS - 60)))
        entries.append(('"CONN_HEALTH_CHECKS"', "True"))
    body = "".join(f"        {k}: {v},\n" for k, v in entries)
    code = f'DATABASES = {{\n    "default": {{\n{body}    }}\n}}'
    return ClientForm(build.client, "code", None, code)


def _node_tls(build: _Build) -> list[tuple[str, str]]:
    mode = build.sslmode
    if mode in (None, "prefer", "allow"):
        if build.target.neon is not None or mode is not None:
            build.note("client-node-no-prefer", Severity.INFO,
                       f"{build.label} has no opportunistic TLS ('prefer'): it either encrypts or not; "
                       "the form encrypts without checking the certificate, which is what prefer gets from a "
                       "server with TLS", "For real protection use sslmode=verify-full")
            return [("sslmode", "no-verify")]
        return []
    if mode == "disable":
        return [("sslmode", "disable")]
    if mode == "require":
        return [("uselibpqcompat", "true"), ("sslmode", "require")]
    rootcert = build.rootcert
    if rootcert == "system":
        build.note("client-node-system-ca", Severity.INFO,
                   "node has no 'sslrootcert=system': with no CA named it trusts its bundled Mozilla CA list "
                   "(NODE_EXTRA_CA_CERTS adds more)", "Nothing to do for public CAs such as Neon's")
        return [("sslmode", mode)]
    query = [("sslmode", mode)]
    if rootcert:
        query.append(("sslrootcert", rootcert))
    if mode == "verify-ca":
        query.insert(0, ("uselibpqcompat", "true"))
    return query


def _node_extras(build: _Build) -> list[tuple[str, str]]:
    query = []
    for key, value in build.extras.items():
        if key in ("application_name", "options", "connect_timeout"):
            query.append((key, value))
        elif key == "channel_binding":
            build.channel_binding_lost()
        else:
            build.dropped([key], "node-postgres does not read it", "Leave it out")
    return query


def _node_pg(build: _Build) -> ClientForm:
    url = build.url("postgresql", _node_tls(build) + _node_extras(build))
    if build.client == "drizzle":
        code = (
            'import { drizzle } from "drizzle-orm/node-postgres";\n'
            "const db = drizzle({ connection: { connectionString: process.env.DATABASE_URL } });\n"
            f"// DATABASE_URL={url}"
        )
    else:
        code = (
            'import pg from "pg";\n'
            "const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });\n"
            f"// DATABASE_URL={url}"
        )
    return ClientForm(build.client, "url", url, code)


def _postgres_js(build: _Build) -> ClientForm:
    mode = build.sslmode
    query: list[tuple[str, str]] = []
    ssl_code = None
    if mode in ("verify-ca", "verify-full") and build.rootcert and build.rootcert != "system":
        ssl_code = f"{{ ca: readFileSync({build.rootcert!r}).toString()"
        ssl_code += ", checkServerIdentity: () => undefined }" if mode == "verify-ca" else " }"
    elif mode == "verify-ca":
        query.append(("sslmode", "verify-full"))
        build.note("client-postgres-js-verify-ca", Severity.INFO,
                   "postgres.js has no verify-ca: the form checks the host name too (stricter)", "Nothing to do")
    elif mode == "allow":
        query.append(("sslmode", "prefer"))
    elif mode:
        query.append(("sslmode", mode))
    for key, value in build.extras.items():
        if key == "application_name":
            query.append((key, value))
        elif key == "channel_binding":
            build.channel_binding_lost()
        else:
            build.dropped([key], "postgres.js sends unknown URL parameters to the server as settings",
                          "Pass it as an option in code (e.g. connect_timeout: 10)")
    url = build.url("postgresql", query)
    if ssl_code is None:
        return ClientForm(build.client, "url", url, f'import postgres from "postgres";\nconst sql = postgres("{url}");')
    code = (
        'import { readFileSync } from "node:fs";\nimport postgres from "postgres";\n\n'
        f'const sql = postgres("{url}", {{ ssl: {ssl_code} }});'
    )
    return ClientForm(build.client, "code", url, code)


def _prisma(build: _Build) -> ClientForm:
    mode = build.sslmode
    query: list[tuple[str, str]] = []
    if mode in ("verify-ca", "verify-full"):
        query.append(("sslmode", "require"))
        if build.rootcert and build.rootcert != "system":
            query.append(("sslcert", build.rootcert))
        query.append(("sslaccept", "strict"))
        build.note("client-prisma-verify", Severity.INFO,
                   f"Prisma has no sslmode={mode}: sslmode=require with sslaccept=strict verifies the certificate "
                   "(and sslcert names the CA file, a path relative to schema.prisma)",
                   "Use an absolute sslcert path or one relative to the schema file")
    elif mode == "allow":
        query.append(("sslmode", "prefer"))
    elif mode:
        query.append(("sslmode", mode))
    for key, value in build.extras.items():
        if key in ("connect_timeout", "application_name", "options"):
            query.append((key, value))
        elif key == "channel_binding":
            build.channel_binding_lost()
        else:
            build.dropped([key], "Prisma does not read it", "Leave it out")
    neon = build.target.neon
    direct = None
    if neon is not None and neon.pooled:
        query += [("pgbouncer", "true"), ("connection_limit", "5"), ("pool_timeout", "15")]
        direct_host = (build.target.host or "").replace(f"{neon.endpoint_id}-pooler", neon.endpoint_id, 1)
        saved = build.host
        build.host = direct_host
        direct = build.url("postgresql", [(k, v) for k, v in query if k not in ("pgbouncer", "connection_limit",
                                                                                "pool_timeout")])
        build.host = saved
        build.note("client-prisma-pooler", Severity.INFO,
                   "the host is Neon's pooler (PgBouncer, transaction mode): pgbouncer=true makes Prisma skip "
                   "named prepared statements, connection_limit bounds each instance's pool, pool_timeout how "
                   "long a query waits for one; migrations need the direct host",
                   "Set directUrl to the direct host (shown) so that prisma migrate does not go through PgBouncer")
    build.note("client-prisma-7", Severity.INFO,
               "this is the URL for Prisma's own engine (Prisma ≤ 6, url = env(...) in schema.prisma); Prisma 7 "
               "reads it in prisma.config.ts and connects through @prisma/adapter-pg, where node-postgres's "
               "rules apply", "With Prisma 7 use `neondoctor url --for node-pg`")
    url = build.url("postgresql", query)
    code = 'datasource db {\n  provider  = "postgresql"\n  url       = env("DATABASE_URL")\n'
    if direct:
        code += '  directUrl = env("DIRECT_URL")\n}\n' + f"# .env\nDATABASE_URL={url}\nDIRECT_URL={direct}"
    else:
        code += "}\n" + f"# .env\nDATABASE_URL={url}"
    return ClientForm(build.client, "url", url, code)


def _jdbc(build: _Build) -> ClientForm:
    query: list[tuple[str, str]] = []
    if build.target.user:
        query.append(("user", build.target.user))
    password = build.password_text(encoded=False)
    if password is not None:
        query.append(("password", password))
    mode = build.sslmode
    if mode:
        query.append(("sslmode", mode))
    if build.rootcert == "system":
        query.append(("sslfactory", "org.postgresql.ssl.DefaultJavaSSLFactory"))
        build.note("client-jdbc-system-ca", Severity.INFO,
                   "pgjdbc reads sslrootcert as a file; Java's own trust store plays the part of 'system'",
                   "Nothing to do (the form uses DefaultJavaSSLFactory)")
    elif build.rootcert:
        query.append(("sslrootcert", build.rootcert))
    names = {"application_name": "ApplicationName", "connect_timeout": "connectTimeout", "options": "options",
             "target_session_attrs": "targetServerType"}
    for key, value in build.extras.items():
        if key in names and key != "target_session_attrs":
            query.append((names[key], value))
        elif key == "channel_binding":
            build.channel_binding_lost()
        else:
            build.dropped([key], "pgjdbc spells it differently or lacks it", "See pgjdbc's connection parameters")
    rendered = "&".join(
        f"{k}={v if (k == 'password' and v == MASK) else quote(v, safe='' if k == 'password' else QUERY_SAFE)}"
        for k, v in query
    )
    url = f"jdbc:postgresql://{build.hostport()}{build.path()}" + (f"?{rendered}" if rendered else "")
    return ClientForm(build.client, "url", url, None)


def _go_pgx(build: _Build) -> ClientForm:
    query = build.tls_query()
    for key, value in build.extras.items():
        if key in ("application_name", "connect_timeout", "target_session_attrs", "options", "channel_binding"):
            query.append((key, value))
            if key == "channel_binding":
                build.note("client-pgx-channel-binding", Severity.WARNING,
                           "recent pgx v5 reads channel_binding (pgconn/config.go lists it among its own keys); "
                           "older versions send it to the server as a setting, which refuses it",
                           "Upgrade pgx, or remove channel_binding for an old one")
        else:
            build.dropped([key], "pgx would send it to the server as a setting", "Leave it out")
    url = build.url("postgresql", query)
    code = f'conn, err := pgx.Connect(ctx, "{url}")'
    return ClientForm(build.client, "url", url, code)


_BUILDERS = {
    "psql": _libpq,
    "libpq": _libpq,
    "psycopg2": _libpq,
    "psycopg": _libpq,
    "asyncpg": _asyncpg,
    "sqlalchemy": _sqlalchemy,
    "sqlalchemy-async": _sqlalchemy_async,
    "django": _django,
    "node-pg": _node_pg,
    "drizzle": _node_pg,
    "postgres-js": _postgres_js,
    "prisma": _prisma,
    "jdbc": _jdbc,
    "go-pgx": _go_pgx,
}


# --------------------------------------------------------------------------- the string as given


def _given_notes(build: _Build) -> list[Finding]:
    """What this client would do with the string exactly as the user gave it."""
    target, client, label = build.target, build.client, build.label
    notes: list[Finding] = []
    keys = [key for key, _ in target.given_query]
    libpq_family = client in ("psql", "libpq", "psycopg2", "psycopg", "django", "go-pgx")

    def add(id_: str, severity: Severity, message: str, fix: str) -> None:
        notes.append(Finding(id_, severity, message, fix))

    if target.form == "jdbc" and client != "jdbc":
        add("given-jdbc", Severity.ERROR, f"{label} cannot read a jdbc: URL", "Use the form shown")
    if target.form in ("url", "jdbc") and client == "jdbc" and target.form == "url":
        if target.user or target.password:
            add("given-jdbc-userinfo", Severity.ERROR,
                "pgjdbc reads no user:password@ in the authority: it takes 'user:password@host' as the host name "
                "(java.net.UnknownHostException)", "Put user and password in the query, as in the form shown")
        add("given-jdbc-scheme", Severity.ERROR, "pgjdbc accepts only URLs starting jdbc:postgresql://",
            "Use the form shown")
    if target.driver and client not in ("sqlalchemy", "sqlalchemy-async", "node-pg", "drizzle"):
        add("given-driver-prefix", Severity.ERROR,
            f"{label} rejects the '+{target.driver}' driver prefix (SQLAlchemy's dialect form)",
            "Use the form shown")
    if client in ("sqlalchemy", "sqlalchemy-async") and target.scheme == "postgres":
        add("given-sqlalchemy-postgres", Severity.ERROR,
            "SQLAlchemy ≥ 1.4 has no 'postgres' dialect: NoSuchModuleError: Can't load plugin: "
            "sqlalchemy.dialects:postgres", "Write postgresql:// (the form shown)")
    if client == "sqlalchemy-async" and target.form == "url" and target.driver not in ("asyncpg", "psycopg"):
        add("given-sqlalchemy-sync-driver", Severity.ERROR,
            f"create_async_engine() with {'postgresql+' + target.driver if target.driver else 'postgresql'}:// "
            "loads a sync driver: The asyncio extension requires an async driver to be used",
            "Write postgresql+asyncpg:// (the form shown)")
    if client == "sqlalchemy" and target.driver == "asyncpg":
        add("given-sqlalchemy-async-driver", Severity.ERROR,
            "create_engine() with +asyncpg needs the asyncio extension (create_async_engine)",
            "Use the form shown, or --for sqlalchemy-async")
    if client == "sqlalchemy-async" and target.driver in (None, "asyncpg"):
        bad = [k for k in keys if k in target.params and k not in ("host", "port", "user", "password", "dbname",
                                                                    "target_session_attrs")]
        if bad:
            add("given-asyncpg-keywords", Severity.ERROR,
                f"with +asyncpg SQLAlchemy passes {', '.join(bad)} to asyncpg.connect(), which fails: "
                f"connect() got an unexpected keyword argument '{bad[0]}'",
                "Use the form shown (ssl=MODE in the URL, the rest in connect_args)")
    if client == "asyncpg":
        bad = [k for k in keys if k in ("ssl", "connect_timeout", "channel_binding", "options", "pgbouncer")]
        if bad:
            refusal = ('parameter "ssl" cannot be changed now (ssl is asyncpg\'s keyword argument, not a URL '
                       "parameter; SQLAlchemy's postgresql+asyncpg:// URL is where ?ssl= belongs)"
                       if bad[0] == "ssl" else f'unrecognized configuration parameter "{bad[0]}"')
            add("given-asyncpg-server-settings", Severity.ERROR,
                f"asyncpg sends {', '.join(bad)} to the server as settings, which fails: {refusal}",
                "Use the form shown")
        if target.params.get("sslrootcert") == "system":
            add("given-asyncpg-rootcert-system", Severity.ERROR,
                "asyncpg reads sslrootcert=system as a file name", "Use the form shown (ssl.create_default_context())")
    if client in ("node-pg", "drizzle"):
        mode = dict(target.given_query).get("sslmode")
        if mode in ("require", "prefer", "verify-ca") and "uselibpqcompat" not in keys:
            add("given-node-sslmode-verifies", Severity.WARNING,
                f"node-postgres 8.x reads sslmode={mode} as verify-full: it refuses a certificate it cannot "
                "verify (self-signed: SELF_SIGNED_CERT_IN_CHAIN / UNABLE_TO_VERIFY_LEAF_SIGNATURE), and it "
                "overrides ssl: { rejectUnauthorized: false } in code",
                "Keep it to verify; for libpq's meaning write uselibpqcompat=true&sslmode=require (the form shown)")
        if target.params.get("sslrootcert") == "system":
            add("given-node-rootcert-system", Severity.ERROR,
                "node-postgres reads sslrootcert=system as a file name (ENOENT)", "Use the form shown")
    if client == "postgres-js" and "sslrootcert" in keys:
        add("given-postgres-js-rootcert", Severity.WARNING,
            "postgres.js 3.x does not read sslrootcert: it checks the certificate against Node's own CA list "
            "(a private CA fails with UNABLE_TO_VERIFY_LEAF_SIGNATURE) and sends sslrootcert to the server as a "
            "setting; postgres.js 4 reads it",
            "With postgres.js 3 use the form shown (ssl: { ca } in code); it works with 4 too")
    if client == "prisma":
        mode = dict(target.given_query).get("sslmode")
        if mode in ("verify-ca", "verify-full") or "sslrootcert" in keys:
            add("given-prisma-sslmode", Severity.WARNING,
                "Prisma knows sslmode=disable/prefer/require and names the CA file sslcert (sslrootcert is "
                "libpq's)", "Use the form shown")
    if libpq_family or client in ("sqlalchemy",):
        foreign = [k for k in keys if k not in target.params and k != "ssl"]
        if client != "go-pgx" and foreign:
            add("given-libpq-unknown", Severity.ERROR,
                f"libpq (under {label}) rejects the whole string for {', '.join(foreign)}: "
                f'invalid URI query parameter: "{foreign[0]}"', "Use the form shown")
        if "ssl" in keys and target.driver != "asyncpg":
            add("given-ssl-param", Severity.ERROR,
                f"'ssl=' is not libpq's: {label} rejects the string (invalid URI query parameter)",
                "Use sslmode= (the form shown)")
    return notes


def client_table() -> str:
    """The README's table of what each client accepts, from ``CLIENTS``."""
    head = "| `--for` | client | reads | scheme | TLS | user and password | rejects or ignores | known from |"
    rows = [head, "|" + "---|" * 8]
    for spec in CLIENTS.values():
        cells = [f"`{spec.name}`", spec.label, spec.reads, spec.scheme, spec.tls, spec.credentials, spec.rejects,
                 spec.evidence]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)
