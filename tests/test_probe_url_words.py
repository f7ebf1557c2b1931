"""What the url line says, word for word, for strings written for one client or another (no network)."""

from __future__ import annotations

from typing import Any

import pytest

from neondoctor import neon
from neondoctor.probes import url as url_probe
from neondoctor.probes.base import CheckContext, CheckOptions
from neondoctor.target import parse_target

N = "ep-cool-darkness-123456.us-east-2.aws.neon.tech"
CASES = [('postgresql://alice:pw@db.example.test:5433/app',
  'pass',
  'alice → db.example.test:5433 / app; libpq accepts it',
  None,
  False,
  [],
  None),
 ('postgresql://db.example.test',
  'warn',
  '(OS user) → db.example.test:5432 / (database = user name); no database name: libpq connects to a database '
  'named like the user',
  "Add /DBNAME to the URL (Neon's default database is neondb)",
  False,
  ['url-empty-database'],
  None),
 ('postgresql:///app?host=/tmp',
  'pass',
  '(OS user) → Unix socket /tmp (port 5432) / app; libpq accepts it',
  None,
  False,
  [],
  None),
 ('postgresql:///app',
  'warn',
  '(OS user) → Unix socket (default) (port 5432) / app; no host: libpq will use the local Unix socket '
  '(/var/run/postgresql), which only works for a server on this machine',
  'Add the host, e.g. postgresql://USER:PASSWORD@ep-….neon.tech/DBNAME',
  False,
  ['url-empty-host'],
  None),
 ('postgresql://a@h1.test:5001,h2.test:5002/app',
  'pass',
  'a → h1.test:5001, h2.test:5002 / app; libpq accepts it',
  None,
  False,
  [],
  None),
 ('postgresql+psycopg2://alice:pw@db.example.test/app',
  'pass',
  'alice → db.example.test:5432 / app; libpq accepts its libpq-ready form',
  None,
  False,
  [],
  ["postgresql+psycopg2:// is SQLAlchemy's form: create_engine() takes it; psql, pg_dump, psycopg.connect() and "
   'other libpq clients reject it (checked here as the libpq-ready URL)']),
 ('postgres+psycopg2://alice:pw@db.example.test/app',
  'fail',
  "SQLAlchemy >= 1.4 has no 'postgres' dialect: 'postgres+psycopg2://' fails with NoSuchModuleError: Can't load "
  'plugin: sqlalchemy.dialects:postgres.psycopg2',
  'Use postgresql+psycopg2://',
  True,
  ['url-sqlalchemy-postgres-scheme'],
  None),
 ('postgresql+asyncpg://alice:pw@db.example.test/app',
  'pass',
  'alice → db.example.test:5432 / app; libpq accepts its libpq-ready form',
  None,
  False,
  [],
  ["postgresql+asyncpg:// is SQLAlchemy's form: create_engine() takes it; psql, pg_dump, psycopg.connect() and "
   'other libpq clients reject it (checked here as the libpq-ready URL)']),
 ('postgres://alice:pw@db.example.test/app',
  'pass',
  'alice → db.example.test:5432 / app; libpq accepts its libpq-ready form',
  None,
  False,
  [],
  ['postgres:// works for libpq, psql, node-postgres and Prisma; SQLAlchemy ≥ 1.4 rejects it (use postgresql:// '
   'there)']),
 ('jdbc:postgresql://db.example.test:5432/app?user=alice&password=pw&ssl=true',
  'pass',
  'alice → db.example.test:5432 / app; libpq accepts its libpq-ready form',
  None,
  False,
  [],
  ["jdbc:postgresql:// is Java's JDBC form: the JDBC driver takes it; libpq, psql and Python drivers reject it "
   "(checked here as the libpq-ready URL, where pgjdbc's ssl=true is sslmode=verify-full)"]),
 ('jdbc:postgresql://db.example.test:5432/app?user=alice&password=pw',
  'pass',
  'alice → db.example.test:5432 / app; libpq accepts its libpq-ready form',
  None,
  False,
  [],
  ["jdbc:postgresql:// is Java's JDBC form: the JDBC driver takes it; libpq, psql and Python drivers reject it "
   '(checked here as the libpq-ready URL)']),
 ('postgresql://alice:pw@db.example.test/app?schema=public&pgbouncer=true',
  'pass',
  'alice → db.example.test:5432 / app; libpq accepts its libpq-ready form',
  None,
  False,
  [],
  ["schema, pgbouncer: Prisma's own parameters; Prisma takes them, libpq, psql and Python drivers reject the "
   'string with them (checked here without them)']),
 ('postgresql://alice:pw@${DB_HOST}/app',
  'fail',
  "host is '${DB_HOST}': a variable that nobody expanded (the app would get the same text)",
  "Expand ${DB_HOST} where DATABASE_URL is built (the shell, docker compose's .env, the CI secret), or write the "
  'value itself; `echo "$DATABASE_URL"` must show no ${…}',
  True,
  [],
  None),
 ('postgresql://alice:pw@db.example.test/${DB_NAME}',
  'fail',
  "dbname is '${DB_NAME}': a variable that nobody expanded (the app would get the same text)",
  "Expand ${DB_NAME} where DATABASE_URL is built (the shell, docker compose's .env, the CI secret), or write the "
  'value itself; `echo "$DATABASE_URL"` must show no ${…}',
  True,
  [],
  None),
 ('postgresql://alice:${DB_PASSWORD}@db.example.test/app',
  'fail',
  'the password is a variable that nobody expanded (${…}): the server would get that text',
  'Expand the variable where DATABASE_URL is built, or write the (percent-encoded) password',
  True,
  [],
  None),
 ('postgresql://alice:pw@db.example.test/app?sslmode=require&sslrootcert=system',
  'fail',
  'libpq rejects this string before connecting: weak sslmode "require" may not be used with sslrootcert=system '
  '(use "verify-full")',
  'Use sslmode=verify-full with sslrootcert=system (the OS trust store), or drop sslrootcert to keep '
  'sslmode=require',
  True,
  [],
  None),
 ('postgresql://alice:pw@db.example.test/app?sslmode=verify-full&sslrootcert=system',
  'pass',
  'alice → db.example.test:5432 / app; libpq accepts it',
  None,
  False,
  [],
  None),
 ('postgresql://alice:pw@{N}/neondb?sslmode=require',
  'pass',
  'alice → {N}:5432 / neondb; libpq accepts it',
  None,
  False,
  [],
  ['libpq {libpq} sends SNI {N}: Neon routes to endpoint ep-cool-darkness-123456']),
 ('postgresql://alice:pw@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require',
  'pass',
  'alice → ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech:5432 / neondb; libpq accepts it',
  None,
  False,
  [],
  ['libpq {libpq} sends SNI ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech: Neon routes to endpoint '
   'ep-cool-darkness-123456',
   'pooled host: PgBouncer in transaction mode, where session SET, LISTEN/NOTIFY, session advisory locks, '
   'SQL-level PREPARE, temporary tables across transactions, startup parameters (options=-c …) do not hold; run '
   'migrations and pg_dump on the direct host {N}']),
 ('postgresql://alice:pw@{N}/neondb?sslmode=require&sslsni=0',
  'warn',
  "alice → {N}:5432 / neondb; no TLS SNI will be sent (sslsni=0 turns it off), so Neon's proxy cannot tell which "
  'endpoint you mean (Endpoint ID is not specified)',
  'Remove sslsni=0 (Neon routes on SNI); or add options=endpoint%3Dep-cool-darkness-123456 to the string: '
  'postgresql://alice:****@{N}/neondb?sslmode=require&sslsni=0&options=endpoint%3Dep-cool-darkness-123456; or, '
  'for clients that cannot send options, write the password as endpoint=ep-cool-darkness-123456;<password>',
  False,
  ['url-neon-no-sni'],
  None),
 ('postgresql://alice:pw@{N}/neondb?sslmode=require&endpoint=ep-cool-darkness-123456',
  'fail',
  "'endpoint=ep-cool-darkness-123456' is Neon's endpoint id given as a plain parameter; libpq has no such "
  'parameter: Neon reads it from options=endpoint%3D<id>; libpq rejects the whole string with: invalid URI query '
  'parameter: "endpoint"',
  'Add options=endpoint%3Dep-cool-darkness-123456 to the string: '
  'postgresql://alice:****@{N}/neondb?sslmode=require&options=endpoint%3Dep-cool-darkness-123456; or, for clients '
  'that cannot send options, write the password as endpoint=ep-cool-darkness-123456;<password>',
  True,
  ['url-driver-parameter'],
  None),
 ('postgresql://alice:pw@db.example.test/app?sslmode=bogus',
  'fail',
  'sslmode=\'bogus\' is not a valid value; libpq fails with: invalid sslmode value: "bogus"',
  'Use sslmode=require (valid: disable, allow, prefer, require, verify-ca, verify-full)',
  True,
  ['url-invalid-sslmode'],
  None),
 ('postgresql://alice:pw@db.example.test/app?connect_timeout=1',
  'pass',
  'alice → db.example.test:5432 / app; libpq accepts it',
  None,
  False,
  [],
  None),
 ('mysql://alice:pw@db.example.test/app',
  'fail',
  "the scheme 'mysql://' is not a PostgreSQL one; libpq accepts postgresql:// and postgres://",
  'Start the URL with postgresql://',
  True,
  ['url-unknown-scheme', 'url-libpq-rejects'],
  None)]



def filled(value: Any, libpq: str) -> Any:
    if isinstance(value, str):
        return value.replace("{N}", N).replace("{libpq}", libpq)
    if isinstance(value, list):
        return [filled(item, libpq) for item in value]
    return value


@pytest.mark.parametrize(("url", "status", "summary", "step", "exact", "rules", "notes"), CASES)
def test_the_url_line(url: str, status: str, summary: str, step: str | None, exact: bool, rules: list[str],
                      notes: list[str] | None) -> None:
    target = parse_target(url.replace("{N}", N))
    libpq = neon.sni(target).libpq
    ctx = CheckContext(target, CheckOptions())
    result = url_probe.run(ctx)
    assert (str(result.status), result.summary, result.next_step, result.exact_next_step) == (
        status, filled(summary, libpq), filled(step, libpq), exact
    )
    assert [m["id"] for m in result.matches] == rules
    assert result.details.get("notes") == filled(notes, libpq)
    assert result.details["source"] == target.source and result.details["form"] == target.form
    assert result.details["dsn"] == target.dsn() and result.details["libpq_version"] == libpq
    assert result.details["findings"] == [f"{f.id} ({f.severity})" for f in target.findings]


def test_a_url_finding_reads_like_a_rule_match() -> None:
    result = url_probe.run(CheckContext(parse_target("postgresql://alice:pw@db.example.test/app?sslmode=bogus"),
                                        CheckOptions()))
    assert result.matches == [{
        "id": "url-invalid-sslmode", "layer": "url", "blame": "user", "title": result.summary, "cause": "",
        "fix": [result.next_step], "docs": [], "excerpt": "",
    }]


def test_a_neon_host_is_remembered_for_the_later_probes() -> None:
    ctx = CheckContext(parse_target(f"postgresql://alice:pw@{N}/neondb"), CheckOptions())
    url_probe.run(ctx)
    assert ctx.facts["neon"] == ctx.target.neon and ctx.facts["neon"].endpoint_id == "ep-cool-darkness-123456"
    plain = CheckContext(parse_target("postgresql://alice:pw@db.example.test/app"), CheckOptions())
    url_probe.run(plain)
    assert "neon" not in plain.facts


def test_an_unexpanded_variable_is_named_with_the_key_that_holds_it() -> None:
    for url, key, variable in [
        ("postgresql://alice:pw@db.example.test/app?sslmode=${MODE}", "sslmode", "${MODE}"),
        ("postgresql://alice:pw@db.example.test/app?application_name=${APP:-web}", "application_name", "${APP:-web}"),
        ("postgresql://$USER@db.example.test/app", "user", "$USER"),
    ]:
        result = url_probe.run(CheckContext(parse_target(url), CheckOptions()))
        assert (str(result.status), result.details["unexpanded"]) == ("fail", {key: variable}), url
        assert result.summary == (
            f"{key} is {variable!r}: a variable that nobody expanded (the app would get the same text)"
        )
