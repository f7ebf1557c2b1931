"""What `neondoctor url --json` prints, in full, for a table of strings users really paste.

Every finding's id, severity, message and fix, the libpq-ready `dsn`, hosts, ports, params and the Neon
reading are compared exactly with `tests/data/url_json_table.json`: a changed word in a finding is a
changed promise to the user, so it must show up in review. To regenerate that file after a deliberate
change (then read the diff): `NEONDOCTOR_REGENERATE_TABLE=1 .venv/bin/pytest tests/test_target_table.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from psycopg import pq

from neondoctor.cli import cli
from neondoctor.target import LIBPQ_ENV

TABLE = Path(__file__).parent / "data" / "url_json_table.json"
NEON = "ep-cool-breeze-123456.us-east-2.aws.neon.tech"
POOLER = "ep-cool-breeze-123456-pooler.us-east-2.aws.neon.tech"
SECRETS = ("s3cretPw9", "hunter2hunter2", "tig3rPw", "jdbcS3cret", "t0pSecretKey9")

CASES: dict[str, tuple[list[str], dict[str, str]]] = {
    # schemes and driver prefixes
    "plain": (["postgresql://alice:s3cretPw9@db.example.com:6543/app?sslmode=verify-full"], {}),
    "upper-case-scheme": (["POSTGRESQL://alice:s3cretPw9@db.example.com/app"], {}),
    "postgres-scheme": (["postgres://alice:s3cretPw9@db.example.com/app"], {}),
    "postgres-scheme-password-and-space": (["postgres://alice:tig3r/Pw@db.example.com/my app"], {}),
    "postgres-scheme-jdbc": (["jdbc:postgres://db.example.com/app?user=alice&password=jdbcS3cret"], {}),
    "unknown-scheme": (["mysql://alice:s3cretPw9@db.example.com/app"], {}),
    "unknown-scheme-with-driver": (["mysql+pymysql://alice:s3cretPw9@db.example.com/app"], {}),
    "sqlalchemy-known-driver": (["postgresql+psycopg2://alice:s3cretPw9@db.example.com/app"], {}),
    "sqlalchemy-unknown-driver": (["postgresql+psycopg7://alice:s3cretPw9@db.example.com/app"], {}),
    "sqlalchemy-postgres-dialect": (["postgres+asyncpg://alice:s3cretPw9@db.example.com/app"], {}),
    "sqlalchemy-upper-driver": (["PostgreSQL+PsycoPG://alice:s3cretPw9@db.example.com/app"], {}),
    # asyncpg
    "asyncpg-ssl-sslmode-value": (
        ["postgresql+asyncpg://alice:s3cretPw9@db.example.com/app?ssl=require&timeout=5"], {}),
    "asyncpg-ssl-true": (["postgresql+asyncpg://alice:s3cretPw9@db.example.com/app?ssl=true&command_timeout=9"], {}),
    "asyncpg-ssl-and-sslmode": (
        ["postgresql+asyncpg://alice:s3cretPw9@db.example.com/app?sslmode=verify-ca&ssl=disable"], {}),
    "asyncpg-libpq-params": (
        ["postgresql+asyncpg://alice:s3cretPw9@db.example.com:5433/app?sslmode=bogus&sslrootcert=/ca.pem"
         "&options=-cgeqo%3Doff&connect_timeout=3&application_name=web&target_session_attrs=any"
         "&passfile=/pgpass&keepalives=1&direct_tls=true&statement_cache_size=0"], {}),
    "asyncpg-neon-pooled": ([f"postgresql+asyncpg://alice:s3cretPw9@{POOLER}/neondb?ssl=require"], {}),
    "asyncpg-direct-tls-only": (["postgresql+asyncpg://alice@db.example.com/app?prepared_statement_cache_size=0"], {}),
    "psycopg-driver-with-asyncpg-keyword": (["postgresql+psycopg://alice@db.example.com/app?timeout=5"], {}),
    # Prisma and driver parameters
    "prisma-params": (
        ["postgresql://alice:s3cretPw9@db.example.com/app?schema=public&pgbouncer=true&connection_limit=3"
         "&pool_timeout=9&socket_timeout=4&sslaccept=strict&sslidentity=id.p12&statement_cache_size=0"], {}),
    "prisma-param-in-jdbc": (["jdbc:postgresql://db.example.com/app?user=alice&schema=public"], {}),
    "node-ssl-true": (["postgresql://alice:s3cretPw9@db.example.com/app?ssl=true"], {}),
    "node-ssl-true-with-sslmode": (["postgresql://alice:s3cretPw9@db.example.com/app?sslmode=require&ssl=true"], {}),
    "driver-params": (
        ["postgresql://alice@db.example.com/app?currentSchema=s&search_path=s&statement_timeout=5&sslfactory=x"
         "&loggerLevel=OFF&prepareThreshold=0&endpoint=ep-x"], {}),
    "unknown-param": (["postgresql://alice@db.example.com/app?frobnicate=1"], {}),
    "unknown-param-keyvalue": (["host=db.example.com frobnicate=1"], {}),
    # JDBC
    "jdbc-neon": ([f"jdbc:postgresql://{NEON}/neondb?user=alice&password=jdbcS3cret&sslmode=require"], {}),
    "jdbc-ssl-true": (["jdbc:postgresql://db.example.com:5432/app?user=alice&ssl=true&loggerLevel=OFF&x=1"], {}),
    "jdbc-ssl-bare": (["jdbc:postgresql://db.example.com/app?ssl&user=alice"], {}),
    "jdbc-ssl-false": (["jdbc:postgresql://db.example.com/app?ssl=false"], {}),
    "jdbc-ssl-true-with-sslmode": (["jdbc:postgresql://db.example.com/app?sslmode=disable&ssl=TRUE"], {}),
    "jdbc-ssl-true-with-rootcert": (["jdbc:postgresql://db.example.com/app?sslrootcert=/ca.pem&ssl=true"], {}),
    "jdbc-password-ampersand": (
        ["jdbc:postgresql://db.example.com/app?password=jdbc&S3cret&currentSchema=s&ApplicationName=a"], {}),
    "jdbc-password-then-application-name": (
        ["jdbc:postgresql://db.example.com/app?password=jdbc&S3cret&ApplicationName=a"], {}),
    "jdbc-short-form": (["jdbc:postgresql:app"], {}),
    "jdbc-short-form-upper": (["JDBC:PostgreSQL:app"], {}),
    # passwords
    "password-reserved": (["postgresql://alice:p@ss/w0rd?#@db.example.com:5432/app"], {}),
    "password-slash-libpq-whole": (["postgresql://alice:tig3r/Pw@db.example.com/app"], {}),
    "password-hash-only": (["postgresql://alice:tig3r#Pw@db.example.com/app"], {}),
    "password-hash-and-question": (["postgresql://alice:tig3r#?Pw@db.example.com/app"], {}),
    "password-space": (["postgresql://alice:tig3r Pw@db.example.com/app"], {}),
    "password-percent": (["postgresql://alice:100%tig3rPw@db.example.com/app"], {}),
    "password-percent-hash": (["postgresql://alice:tig3r%#Pw@db.example.com/app"], {}),
    "password-hash-question-ipv6": (["postgresql://alice:tig3r#?Pw@[::1]:5433/app"], {}),
    "password-hash-question-two-hosts": (["postgresql://alice:tig3r#?Pw@h1.example:5433,h2.example:5434/app"], {}),
    "password-hash-ipv6": (["postgresql://alice:tig3r#Pw@[::1]:5433/app"], {}),
    "password-encoded": (["postgresql://alice:p%40ss%2Fw0rd@db.example.com/app"], {}),
    "password-empty": (["postgresql://alice:@db.example.com/app"], {}),
    "password-no-user": (["postgresql://:s3cretPw9@db.example.com/app"], {}),
    "user-only": (["postgresql://alice@db.example.com/app"], {}),
    "at-in-query": (["postgresql://alice:s3cretPw9@db.example.com/app?application_name=me@laptop"], {}),
    "at-in-query-no-userinfo": (["postgresql://db.example.com/app?application_name=me@laptop"], {}),
    "at-in-password-and-query": (["postgresql://alice:tig3r@Pw@db.example.com/app?application_name=me@laptop"], {}),
    "at-unknown-query-key": (["postgresql://alice:tig3r@Pw@db.example.com/app?bogus=me@laptop"], {}),
    "password-equal-to-a-parameter-name": (
        ["postgresql://alice:statement_timeout@db.example.com/app?statement_timeout=5"], {}),
    "user-one-letter": (["postgresql://a@db.example.com/app"], {}),
    "at-in-query-one-letter-host": (["postgresql://alice:tig3r@Pw@h/app?application_name=me@laptop"], {}),
    "at-in-query-one-letter-host-no-userinfo": (["postgresql://h/app?application_name=me@laptop"], {}),
    "at-right-after-query-key": (["postgresql://alice:s3cretPw9@db.example.com/app?application_name=@laptop"], {}),
    "at-in-prisma-query": (["postgresql://alice:tig3r@Pw@db.example.com/app?schema=me@laptop"], {}),
    "jdbc-password-then-libpq-key": (
        ["jdbc:postgresql://db.example.com/app?password=jdbc&S3cret&sslmode=require&frob=1"], {}),
    "jdbc-upper-case-password": (["jdbc:postgresql://db.example.com/app?PASSWORD=jdbc&S3cret"], {}),
    "database-with-slash": (["postgresql://alice@db.example.com/app/x"], {}),
    "two-question-marks": (["postgresql://db.example.com?application_name=x?y"], {}),
    "query-order-with-a-blank-value": (["postgresql://db.example.com/app?application_name=x&options=&sslmode=require"],
                                       {}),
    "query-value-with-space": (["postgresql://db.example.com/app?application_name=my%20app"], {}),
    "user-with-slash": (["host=db.example.com user=a/b dbname=app"], {}),
    "sslpassword-is-a-secret": (["postgresql://alice@db.example.com/app?sslpassword=t0pSecretKey9&sslkey=/k.pem"], {}),
    "query-password": (["postgresql://db.example.com/app?user=alice&password=s3cretPw9&sslmode=require"], {}),
    "query-password-semicolon": (["postgresql://db.example.com/app?password=s3cret;Pw9"], {}),
    # sslmode, channel binding, ports
    "sslmode-typo": (["postgresql://db.example.com/app?sslmode=requre"], {}),
    "sslmode-upper": (["postgresql://db.example.com/app?sslmode=REQUIRE"], {}),
    "sslmode-nonsense": (["postgresql://db.example.com/app?sslmode=zz"], {}),
    "sslmode-far-typo": (["postgresql://db.example.com/app?sslmode=reqx"], {}),
    "sslmode-underscore": (["postgresql://db.example.com/app?sslmode=verify_full"], {}),
    "channel-binding-require": (["postgresql://db.example.com/app?channel_binding=require"], {}),
    "channel-binding-prefer": (["postgresql://db.example.com/app?channel_binding=prefer&sslmode=disable"], {}),
    "channel-binding-disable": (["postgresql://db.example.com/app?channel_binding=disable"], {}),
    "channel-binding-unknown": (["postgresql://db.example.com/app?channel_binding=maybe"], {}),
    "channel-binding-without-tls": (["postgresql://db.example.com/app?sslmode=disable&channel_binding=require"], {}),
    "port-zero": (["postgresql://db.example.com:0/app"], {}),
    "port-one": (["postgresql://db.example.com:1/app"], {}),
    "port-max": (["postgresql://db.example.com:65535/app"], {}),
    "port-too-big": (["postgresql://db.example.com:65536/app"], {}),
    "port-word": (["postgresql://db.example.com:abc/app"], {}),
    "port-keyvalue-space": (["host=db.example.com port=' 5433' dbname=app"], {}),
    "ports-multi": (["postgresql://alice@h1.example:5433,h2.example:70000,h3.example/app"], {}),
    "ports-one-for-all": (["host=h1.example,h2.example port=5433 dbname=app"], {}),
    "ports-fewer": (["host=h1.example,h2.example,h3.example port=5433,5434 dbname=app"], {}),
    "ports-empty-piece": (["host=h1.example,h2.example port=,5434 dbname=app"], {}),
    # hosts and databases
    "no-host": (["postgresql:///app"], {}),
    "no-host-hostaddr": (["postgresql:///app?hostaddr=127.0.0.1"], {}),
    "no-host-service": (["postgresql://?service=prod"], {}),
    "socket-host": (["postgresql://alice@/app?host=/var/run/postgresql"], {}),
    "non-ascii-host": (["postgresql://alice@dаtabase.example.com/app"], {}),
    "bad-host-space": (["host='db example.com' dbname=app"], {}),
    "bad-host-at": (["host=db@example.com dbname=app"], {}),
    "bad-host-question": (["host=db?x dbname=app"], {}),
    "bad-host-hash": (["host=db#x dbname=app"], {}),
    "bad-host-slash": (["host=db/x dbname=app"], {}),
    "multi-host-one-bad": (["host=good.example,bad@x,dаta.example dbname=app"], {}),
    "ipv6": (["postgresql://alice@[::1]:5433/app"], {}),
    "no-database": (["postgresql://alice@db.example.com"], {}),
    "database-whitespace": (["host=db.example.com dbname=' app'"], {}),
    "database-encoded-space": (["postgresql://db.example.com/app%20"], {}),
    "database-special": (["host=db.example.com dbname='my db/x' user='a b'"], {}),
    # Neon
    "neon-require": ([f"postgresql://alice:s3cretPw9@{NEON}/neondb?sslmode=require"], {}),
    "neon-prefer": ([f"postgresql://alice:s3cretPw9@{NEON}/neondb?sslmode=prefer"], {}),
    "neon-no-sslmode": ([f"postgresql://alice:s3cretPw9@{NEON}/neondb"], {}),
    "neon-disable": ([f"postgresql://alice:s3cretPw9@{NEON}/neondb?sslmode=disable"], {}),
    "neon-allow": ([f"postgresql://alice:s3cretPw9@{NEON}/neondb?sslmode=allow"], {}),
    "neon-verify-ca": ([f"postgresql://alice:s3cretPw9@{NEON}/neondb?sslmode=verify-ca"], {}),
    "neon-pooled": ([f"postgresql://alice:s3cretPw9@{POOLER}/neondb?sslmode=verify-full"], {}),
    "neon-upper-trailing-dot": (["postgresql://alice@EP-Cool-Breeze-123456.US-East-2.AWS.Neon.Tech./neondb"], {}),
    "neon-cell-gcp": (["postgresql://alice@ep-a-b-1-pooler.c-12.europe-west3.gcp.neon.build/neondb?sslmode=require"],
                      {}),
    "neon-host-with-spaces": ([f"host=' {NEON} ' dbname=neondb sslmode=require"], {}),
    "neon-second-host": ([f"host=db.example.com,{NEON} dbname=neondb"], {}),
    "neon-endpoint-option": (
        [f"postgresql://alice@{NEON}/neondb?sslmode=require&options=endpoint%3Dep-cool-breeze-123456"], {}),
    "neon-endpoint-option-pooler": (
        [f"postgresql://alice@{POOLER}/neondb?sslmode=require&options=endpoint%3Dep-cool-breeze-123456-pooler"], {}),
    "neon-project-option-mismatch": (
        [f"postgresql://alice@{NEON}/neondb?sslmode=require&options=-cgeqo%3Doff%20project%3Dep-other-9"], {}),
    "neon-endpoint-option-glued": ([f"postgresql://alice@{NEON}/neondb?options=xendpoint%3Dep-other-9"], {}),
    "endpoint-option-not-neon": (["postgresql://alice@203.0.113.7/neondb?options=endpoint%3Dep-a_b"], {}),
    # pasted forms
    "keyvalue": (["host=db.example.com port=5433 dbname=app user=alice password=hunter2hunter2 sslmode=prefer"], {}),
    "keyvalue-quoted-password": (["host=db.example.com dbname=app password='hunter2 hunter2' user=alice"], {}),
    "keyvalue-password-with-unquoted-space": (["host=db.example.com password=hunter2 hunter2 dbname=app"], {}),
    "keyvalue-quoted-password-then-broken": (["host=db.example.com password = 'hunter2 hunter2' dbname app"], {}),
    "keyvalue-two-passwords": (["host=db.example.com password='x y' password=hunter2 hunter2 dbname=app"], {}),
    "keyvalue-password-then-broken-word": (["host=db.example.com password=hunter2hunter2 dbname=app bogus"], {}),
    "keyvalue-password-then-upper-case-key": (["host=db.example.com password=hunter2hunter2 DBNAME=app"], {}),
    "keyvalue-missing-equals": (["host=db.example.com dbname app"], {}),
    "keyvalue-unterminated": (["host='db.example.com"], {}),
    "url-missing-equals": (["postgresql://db.example.com/app?sslmode"], {}),
    "bad-percent": (["postgresql://db.example.com/app%zz"], {}),
    "bad-percent-fixed-still-bad": (["postgresql://alice:tig3r/Pw@db.example.com/app%zz"], {}),
    "assignment": ([f"DATABASE_URL={NEON}"], {}),
    "assignment-url": (["export DATABASE_URL = 'postgresql://alice@db.example.com/app'"], {}),
    "assignment-driver-url": (["DB=postgresql+psycopg://alice@db.example.com/app"], {}),
    "assignment-lower-name": (["db_url=postgresql://alice@db.example.com/app"], {}),
    "psql-command": (["psql \"postgresql://alice@db.example.com/app\""], {}),
    "psql-command-no-quotes": (["psql postgresql://alice@db.example.com/app"], {}),
    "psql-command-not-url": (["psql -h db.example.com"], {}),
    "quoted-single": (["'postgresql://alice@db.example.com/app'"], {}),
    "quoted-mismatched": (["'postgresql://alice@db.example.com/app\""], {}),
    "quoted-one-char": (["'"], {}),
    "quoted-empty": (["''"], {}),
    "quoted-inner-space": (["' host=db.example.com '"], {}),
    "whitespace": (["  postgresql://alice@db.example.com/app\n"], {}),
    "whitespace-only": (["   "], {}),
    "empty": ([""], {}),
    "control-characters": (["postgresql://alice@db.exa\x01mple.com/app\x7f"], {}),
    "replacement-character": (["postgresql://alice@db.example.com/app\ufffd"], {}),
    "too-long": (["postgresql://db.example.com/" + "a" * 16_400], {}),
    "longest-allowed": (["host=db.example.com dbname=" + "a" * (16_384 - 27)], {}),
    # the libpq environment
    "pgpassword-fills": (["postgresql://alice@db.example.com/app"], {"PGPASSWORD": "hunter2hunter2"}),
    "pgpassword-string-wins": (["postgresql://alice:s3cretPw9@db.example.com/app"], {"PGPASSWORD": "hunter2hunter2"}),
    "pg-env-fills-url": (
        ["postgresql://db.example.com"],
        {"PGUSER": "bob", "PGDATABASE": "shop", "PGPORT": "5433", "PGSSLMODE": "require", "PGAPPNAME": "x",
         "PGCONNECT_TIMEOUT": "4", "PGOPTIONS": "-cgeqo=off", "PGCHANNELBINDING": "prefer",
         "PGSSLNEGOTIATION": "postgres", "PGTARGETSESSIONATTRS": "any", "PGSSLROOTCERT": "/ca.pem",
         "PGHOSTADDR": "127.0.0.1", "PGSERVICE": ""}),
    "pgpassword-in-a-broken-string": (["host=db.example.com hunter2hunter2"], {"PGPASSWORD": "hunter2hunter2"}),
    "pgpassword-fills-a-driver-url": (
        ["postgresql+psycopg2://alice@db.example.com/app"], {"PGPASSWORD": "hunter2hunter2"}),
    "pg-env-fills-an-empty-string": ([""], {"PGUSER": "bob"}),
    "pg-env-broken-string": (["host='db.example.com"], {"PGUSER": "bob"}),
    "pg-env-only": ([], {"PGHOST": "db.example.com", "PGUSER": "bob o'neil", "PGPASSWORD": "hunter2 hunter2",
                         "PGDATABASE": "a\\b", "PGSSLMODE": "require"}),
    "pg-env-only-service": ([], {"PGSERVICE": "prod"}),
    "pg-env-only-hostaddr": ([], {"PGHOSTADDR": "127.0.0.1", "PGPORT": "5433"}),
    "pg-env-port-only-is-no-target": ([], {"PGPORT": "5433", "PGSSLMODE": "require"}),
    "env-var": (["--env-var", "MY_URL"], {"MY_URL": "postgresql://alice@db.example.com/app"}),
    "same-bad-port-twice": (["host=a.example,b.example port=0,0 dbname=app"], {}),
    "info-found-before-warning": ([f"postgresql://alice@{NEON}/neondb?channel_binding=prefer"], {}),
    "app-name-like-a-token": (["postgresql://db.example.com/app?application_name=Bearer%20abcdef123456"], {}),
    "pg-env-only-host": ([], {"PGHOST": "db.example.com"}),
    "password-bad-utf8-upper-hex": (["postgresql://alice:ab%FFcd@db.example.com/app"], {}),
    "password-bad-utf8-lower-hex": (["postgresql://alice:ab%ffcd@db.example.com/app"], {}),
    "pg-env-only-dbname": ([], {"PGDATABASE": "shop"}),
    "pg-env-only-user": ([], {"PGUSER": "bob"}),
    "pg-env-host-del-character": (["postgresql:///app"], {"PGHOST": "db\x7f.example.com"}),
    "pg-env-host-c1-character": (["postgresql:///app"], {"PGHOST": "db\x80.example.com"}),
    "empty-first-host": (["host=,db.example.com dbname=app"], {}),
    "password-with-x": (["postgresql://alice:tXg3rPw@db.example.com/app"], {}),
    "password-hash-and-bad-percent-elsewhere": (["postgresql://alice:tig3r#Pw@db.example.com/app%zz"], {}),
    "password-hash-question-with-port": (["postgresql://alice:tig3r#?Pw@db.example.com:5433/app"], {}),
    # what another client makes of the string as given (--for reads the query as written)
    "for-psql-blank-prisma-param": (["--for", "psql", "postgresql://alice@db.example.com/app?sslmode=require&schema="],
                                    {}),
    "for-psql-show-password": (
        ["--for", "psql", "--show-password", "host=db.example.com user='a b' password='p@ss w/rd' dbname='my db'"], {}),
    "for-node-sslmode": (["--for", "node-pg", "postgresql://alice@db.example.com/app?sslmode=require"], {}),
    "for-psql-keyvalue": (["--for", "psql", "host=db.example.com dbname=app schema=x"], {}),
    # more pasted oddities
    "x-wrapped": (["XX"], {}),
    "x-wrapped-keyvalue": (["Xhost=db.example.com dbname=appX"], {}),
    "private-use-character": (["postgresql://alice@db.example.com/app\ue000"], {}),
    "surrogate-escape": (["postgresql://alice@db.example.com/app\udcff"], {}),
}


def _run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, dict]:
    clean: dict[str, str | None] = {name: None for name in [*LIBPQ_ENV, "DATABASE_URL", "MY_URL"]}
    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli, ["url", "--json", *args], env={**clean, **env})
    finally:
        os.chdir(old)
    output = result.stdout + result.stderr
    for secret in [*SECRETS, *(v for k, v in env.items() if k == "PGPASSWORD")]:
        assert secret not in output
    report = json.loads(result.stdout)
    return result.exit_code, report


def _libpq_version_as_shown() -> str:
    version = pq.version()
    return f"{version // 10000}.{version % 100}"


@pytest.fixture(scope="module")
def table() -> dict:
    return json.loads(TABLE.read_text(encoding="utf-8")) if TABLE.exists() else {}


@pytest.mark.parametrize("name", list(CASES))
def test_url_json_in_full(name: str, table: dict, tmp_path: Path) -> None:
    args, env = CASES[name]
    code, report = _run(args, env, tmp_path)
    assert report.pop("libpq_version", _libpq_version_as_shown()) == _libpq_version_as_shown()
    got = {"exit": code, "report": report}
    if os.environ.get("NEONDOCTOR_REGENERATE_TABLE"):
        table[name] = {"args": args, "env": env, **got}
        TABLE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return
    expected = table[name]
    assert (expected["args"], expected["env"]) == (args, env), "the case changed: regenerate the table"
    assert got == {"exit": expected["exit"], "report": expected["report"]}


@pytest.mark.parametrize(
    ("string", "summary"),
    [
        ("host=h1.example,h2.example,h3.example port=5433,5434 dbname=app user=alice",
         "alice → h1.example:5433, h2.example:5434, h3.example:5432 / app; libpq accepts it"),
        ("host=h1.example,h2.example port=5433 dbname=app",
         "(OS user) → h1.example:5433, h2.example:5433 / app; libpq accepts it"),
        ("host=h1.example,h2.example port=,65535 dbname=app",
         "(OS user) → h1.example:5432, h2.example:65535 / app; libpq accepts it"),
        ("host=h1.example port=' 5433' dbname=app", "(OS user) → h1.example:5433 / app; libpq accepts it"),
        ("host=',/tmp' port=,5433 dbname=app",
         "(OS user) → Unix socket (default) (port 5432), Unix socket /tmp (port 5433) / app; libpq accepts it"),
        ("postgresql://alice@[::1]:1/app", "alice → ::1:1 / app; libpq accepts it"),
    ],
)
def test_check_names_each_host_with_the_port_libpq_will_try(string: str, summary: str) -> None:
    clean: dict[str, str | None] = {name: None for name in [*LIBPQ_ENV, "DATABASE_URL"]}
    result = CliRunner().invoke(
        cli, ["check", "--json", "--skip", "dns,tcp,tls,auth,slots,tables", string], env=clean
    )
    url_step = json.loads(result.stdout)["probes"][0]
    assert (url_step["name"], url_step["summary"]) == ("url", summary)


@pytest.mark.parametrize(
    ("version", "shown", "dsn"),
    [
        (160000, "16.0", "postgresql://db.example.com/app?sslmode=verify-full&sslrootcert=system"),
        (150013, "15.13", "postgresql://db.example.com/app?sslmode=verify-full"),
    ],
)
def test_jdbc_ssl_true_reads_as_the_os_store_only_where_libpq_has_sslrootcert_system(
    version: int, shown: str, dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(pq, "version", lambda: version)
    code, report = _run(["jdbc:postgresql://db.example.com/app?ssl=true"], {}, tmp_path)
    assert (code, report["libpq_version"], report["dsn"]) == (0, shown, dsn)
