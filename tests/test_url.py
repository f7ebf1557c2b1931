from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from neondoctor.cli import cli
from neondoctor.target import find_target, parse_target

PASSWORDS = ("secretpass123", "npg_8XyQwErTz1", "p@ss/w0rd?#", "hunter2hunter2", "jdbcSecret9", "Tr0ub4dor&3")


@dataclass
class Case:
    url: str
    has: set[str] = field(default_factory=set)
    lacks: set[str] = field(default_factory=set)
    exit: int = 0
    neon: dict[str, object] | None = None
    dsn: str | None = None


NEON = "ep-cool-breeze-123456.us-east-2.aws.neon.tech"
CASES: dict[str, Case] = {
    # Neon console strings, as copied
    "neon-console-default": Case(
        f"postgresql://neondb_owner:npg_8XyQwErTz1@{NEON}/neondb?sslmode=require&channel_binding=require",
        has={"url-channel-binding", "url-neon-sslmode-unverified"},
        neon={"endpoint_id": "ep-cool-breeze-123456", "region": "us-east-2", "cloud": "aws", "pooled": False},
    ),
    "neon-console-pooled": Case(
        "postgresql://neondb_owner:npg_8XyQwErTz1@ep-cool-breeze-123456-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require",
        has={"url-neon-pooled"},
        neon={"endpoint_id": "ep-cool-breeze-123456", "pooled": True},
    ),
    "neon-cell-host": Case(
        "postgresql://alice:secretpass123@ep-quiet-lake-a1b2c3d4.c-2.us-east-2.aws.neon.tech/neondb?sslmode=require",
        neon={"endpoint_id": "ep-quiet-lake-a1b2c3d4", "region": "us-east-2", "cell": "c-2", "pooled": False},
    ),
    "neon-cell-pooled": Case(
        "postgresql://alice:secretpass123@ep-quiet-lake-a1b2c3d4-pooler.c-3.eu-central-1.aws.neon.tech/neondb?sslmode=require",
        has={"url-neon-pooled"},
        neon={"endpoint_id": "ep-quiet-lake-a1b2c3d4", "region": "eu-central-1", "cell": "c-3", "pooled": True},
    ),
    "neon-azure": Case(
        "postgresql://alice:secretpass123@ep-shiny-frog-123456.eastus2.azure.neon.tech/neondb?sslmode=require",
        neon={"endpoint_id": "ep-shiny-frog-123456", "region": "eastus2", "cloud": "azure", "pooled": False},
    ),
    "neon-azure-pooled": Case(
        "postgresql://alice:secretpass123@ep-shiny-frog-123456-pooler.germanywestcentral.azure.neon.tech/neondb?sslmode=require",
        neon={"region": "germanywestcentral", "cloud": "azure", "pooled": True},
    ),
    "neon-verify-full": Case(
        f"postgresql://alice:secretpass123@{NEON}/neondb?sslmode=verify-full&sslrootcert=system",
        lacks={"url-neon-sslmode-unverified", "url-neon-sslmode-missing"},
    ),
    "neon-no-sslmode": Case(f"postgresql://alice:secretpass123@{NEON}/neondb", has={"url-neon-sslmode-missing"}),
    "neon-sslmode-disable": Case(
        f"postgresql://alice:secretpass123@{NEON}/neondb?sslmode=disable", has={"url-neon-sslmode-weak"}, exit=1
    ),
    "neon-sslmode-allow": Case(
        f"postgresql://alice:secretpass123@{NEON}/neondb?sslmode=allow", has={"url-neon-sslmode-weak"}
    ),
    "neon-endpoint-option": Case(
        f"postgresql://alice:secretpass123@{NEON}/neondb?sslmode=require&options=endpoint%3Dep-cool-breeze-123456",
        has={"url-neon-endpoint-option"},
        lacks={"url-neon-endpoint-mismatch"},
    ),
    "neon-endpoint-option-mismatch": Case(
        f"postgresql://alice:secretpass123@{NEON}/neondb?sslmode=require&options=endpoint%3Dep-other-branch-999",
        has={"url-neon-endpoint-option", "url-neon-endpoint-mismatch"},
        exit=1,
    ),
    "neon-by-ip-with-endpoint-option": Case(
        "postgresql://alice:secretpass123@203.0.113.7/neondb?sslmode=require&options=endpoint%3Dep-cool-breeze-123456",
        has={"url-neon-endpoint-option"},
    ),
    "neon-psql-snippet": Case(
        f"psql 'postgresql://alice:secretpass123@{NEON}/neondb?sslmode=require'",
        has={"url-psql-command", "url-quoted"},
        neon={"endpoint_id": "ep-cool-breeze-123456"},
    ),
    "neon-channel-binding-without-tls": Case(
        f"postgresql://alice:secretpass123@{NEON}/neondb?sslmode=disable&channel_binding=require",
        has={"url-channel-binding", "url-neon-sslmode-weak"},
        exit=1,
    ),
    # SQLAlchemy
    "sqlalchemy-psycopg2": Case(
        f"postgresql+psycopg2://alice:secretpass123@{NEON}/neondb?sslmode=require",
        has={"url-driver-prefix"},
        exit=1,
        dsn=f"postgresql://alice:****@{NEON}/neondb?sslmode=require",
    ),
    "sqlalchemy-psycopg3": Case(
        f"postgresql+psycopg://alice:secretpass123@{NEON}/neondb?sslmode=require", has={"url-driver-prefix"}, exit=1
    ),
    "sqlalchemy-asyncpg-sslmode": Case(
        f"postgresql+asyncpg://alice:secretpass123@{NEON}/neondb?sslmode=require",
        has={"url-driver-prefix", "url-asyncpg-sslmode"},
        exit=1,
    ),
    "sqlalchemy-asyncpg-channel-binding": Case(
        f"postgresql+asyncpg://alice:secretpass123@{NEON}/neondb?sslmode=require&channel_binding=require",
        has={"url-asyncpg-channel-binding"},
        exit=1,
    ),
    "sqlalchemy-asyncpg-pooled": Case(
        "postgresql+asyncpg://alice:secretpass123@ep-cool-breeze-123456-pooler.us-east-2.aws.neon.tech/neondb",
        has={"url-neon-pooled-asyncpg"},
        exit=1,
    ),
    "sqlalchemy-pg8000": Case(
        "postgresql+pg8000://scott:tiger@localhost:5432/mydatabase", has={"url-driver-prefix"}, exit=1
    ),
    "sqlalchemy-postgres-dialect": Case(
        "postgres+psycopg2://alice:secretpass123@localhost/app",
        has={"url-driver-prefix", "url-sqlalchemy-postgres-scheme"},
        exit=1,
    ),
    "heroku-style-postgres-scheme": Case(
        "postgres://uabc123:p4ssw0rdxyz@ec2-3-210-173-88.compute-1.amazonaws.com:5432/d8v1k2",
        has={"url-postgres-scheme"},
    ),
    "unknown-driver": Case(
        "postgresql+psycopg7://alice:secretpass123@localhost/app", has={"url-driver-prefix"}, exit=1
    ),
    # Prisma
    "prisma-pgbouncer": Case(
        "postgresql://alice:secretpass123@ep-cool-breeze-123456-pooler.us-east-2.aws.neon.tech/neondb"
        "?sslmode=require&pgbouncer=true&connect_timeout=15",
        has={"url-prisma-parameter", "url-neon-pooled"},
        lacks={"url-unknown-parameter", "url-libpq-rejects"},
        exit=1,
        dsn="postgresql://alice:****@ep-cool-breeze-123456-pooler.us-east-2.aws.neon.tech/neondb"
        "?sslmode=require&connect_timeout=15",
    ),
    "prisma-connection-limit": Case(
        f"postgresql://alice:secretpass123@{NEON}/neondb?sslmode=require&connection_limit=1&pool_timeout=20",
        has={"url-prisma-parameter"},
        exit=1,
    ),
    "prisma-schema": Case(
        "postgresql://johndoe:randompassword@localhost:5432/mydb?schema=public", has={"url-prisma-parameter"}, exit=1
    ),
    # JDBC
    "jdbc-user-password-query": Case(
        "jdbc:postgresql://ep-cool-breeze-123456.us-east-2.aws.neon.tech/neondb?user=alice&password=jdbcSecret9&sslmode=require",
        has={"url-jdbc-form"},
        lacks={"url-libpq-rejects"},
        dsn=f"postgresql://alice:****@{NEON}/neondb?sslmode=require",
    ),
    "jdbc-ssl-true": Case(
        "jdbc:postgresql://localhost:5432/app?user=alice&password=jdbcSecret9&ssl=true&loggerLevel=OFF",
        has={"url-jdbc-form", "url-jdbc-parameter"},
    ),
    "jdbc-short-form": Case("jdbc:postgresql:app", has={"url-jdbc-short-form"}, exit=1),
    # node-postgres style
    "node-ssl-true": Case(
        "postgresql://alice:secretpass123@localhost:5432/app?ssl=true", has={"url-driver-parameter"}, exit=1
    ),
    # Password with reserved characters
    "password-at-sign": Case(
        "postgresql://alice:p@ss/w0rd?#@localhost:5432/app",
        has={"url-password-unencoded"},
        exit=1,
        dsn="postgresql://alice:****@localhost:5432/app",
    ),
    "password-slash": Case("postgresql://alice:abc/def@db.example.com/app", has={"url-password-unencoded"}, exit=1),
    "password-percent": Case("postgresql://alice:100%sure@db.example.com/app", has={"url-password-unencoded"}, exit=1),
    "password-encoded-ok": Case(
        "postgresql://alice:p%40ss%2Fw0rd%3F%23@localhost:5432/app", lacks={"url-password-unencoded"}
    ),
    "password-ampersand-ok": Case("postgresql://alice:Tr0ub4dor&3@localhost/app", lacks={"url-password-unencoded"}),
    # sslmode
    "sslmode-typo": Case(
        "postgresql://alice:secretpass123@localhost/app?sslmode=requre", has={"url-invalid-sslmode"}, exit=1
    ),
    "sslmode-verify-typo": Case(
        "postgresql://alice:secretpass123@localhost/app?sslmode=verify_full", has={"url-invalid-sslmode"}, exit=1
    ),
    "sslmode-true": Case(
        "postgresql://alice:secretpass123@localhost/app?sslmode=true", has={"url-invalid-sslmode"}, exit=1
    ),
    # ports, hosts, databases
    "port-too-big": Case("postgresql://alice:secretpass123@localhost:99999/app", has={"url-invalid-port"}, exit=1),
    "port-not-number": Case("postgresql://alice:secretpass123@localhost:abc/app", has={"url-invalid-port"}, exit=1),
    "no-host": Case("postgresql:///app", has={"url-empty-host"}),
    "no-database": Case("postgresql://alice:secretpass123@localhost", has={"url-empty-database"}),
    "unicode-host": Case("postgresql://alice:secretpass123@dаtabase.example.com/app", has={"url-non-ascii-host"}),
    "multi-host": Case(
        "postgresql://alice:secretpass123@10.0.0.1:5432,10.0.0.2:5433/app?target_session_attrs=read-write",
        lacks={"url-libpq-rejects"},
    ),
    "ipv6-literal": Case("postgresql://alice:secretpass123@[::1]:5432/app", lacks={"url-bad-host"}),
    "unix-socket-dir": Case("postgresql://alice@/app?host=/var/run/postgresql", lacks={"url-empty-host"}),
    # key=value, env pastes
    "keyvalue": Case("host=localhost port=5432 dbname=app user=alice password=hunter2hunter2 sslmode=prefer"),
    "keyvalue-quoted-password": Case("host=localhost dbname=app user=alice password='hunter2 hunter2'"),
    "keyvalue-broken": Case("host=localhost dbname app", has={"url-keyvalue-syntax"}, exit=1),
    "dotenv-line-pasted": Case(
        f"DATABASE_URL=postgresql://alice:secretpass123@{NEON}/neondb?sslmode=require",
        has={"url-variable-assignment"},
    ),
    "double-quoted": Case(f'"postgresql://alice:secretpass123@{NEON}/neondb?sslmode=require"', has={"url-quoted"}),
    "trailing-newline": Case(
        f"postgresql://alice:secretpass123@{NEON}/neondb?sslmode=require\n", has={"url-whitespace"}
    ),
    "bad-percent-in-db": Case(
        "postgresql://alice:secretpass123@localhost/app%zz", has={"url-invalid-percent-encoding"}, exit=1
    ),
    "wrong-scheme": Case("mysql://alice:secretpass123@localhost/app", has={"url-unknown-scheme"}, exit=1),
}


def _ids(report: dict) -> set[str]:
    return {f["id"] for f in report["findings"]}


@pytest.mark.parametrize("name", list(CASES))
def test_real_world_strings(name: str) -> None:
    case = CASES[name]
    result = CliRunner().invoke(cli, ["url", "--json", case.url], env={"PGPASSWORD": None})
    assert result.exit_code == case.exit, result.output
    report = json.loads(result.stdout)
    ids = _ids(report)
    assert case.has <= ids, f"missing {case.has - ids}; got {ids}"
    assert not (case.lacks & ids), f"unexpected {case.lacks & ids}"
    for key, value in (case.neon or {}).items():
        assert report["neon"][key] == value
    if case.dsn is not None:
        assert report["dsn"] == case.dsn
    for secret in PASSWORDS:
        if secret in case.url:
            assert secret not in result.output


def test_seed_example_text() -> None:
    url = (
        "postgresql+psycopg2://alice:secretpass123@ep-cool-breeze-123456.us-east-2.aws.neon.tech/neondb?sslmode=require"
    )
    result = CliRunner().invoke(cli, ["url", url])
    assert result.exit_code == 1
    out = result.stdout
    assert "secretpass123" not in out + result.stderr
    for part in (
        "driver",
        "psycopg2",
        "user",
        "alice",
        "password",
        "set",
        "host",
        "port",
        "5432",
        "database",
        "neondb",
        "sslmode",
        "require",
    ):
        assert part in out
    assert "url-driver-prefix" in out
    assert (
        "libpq-ready: postgresql://alice:****@ep-cool-breeze-123456.us-east-2.aws.neon.tech/neondb?sslmode=require"
        in out
    )
    assert "Neon endpoint ep-cool-breeze-123456 in region us-east-2 on aws, direct" in out


def test_seed_example_json() -> None:
    url = (
        "postgresql+psycopg2://alice:secretpass123@ep-cool-breeze-123456.us-east-2.aws.neon.tech/neondb?sslmode=require"
    )
    result = CliRunner().invoke(cli, ["url", "--json", url])
    report = json.loads(result.stdout)
    assert report["source"] == "argument"
    assert report["driver"] == "psycopg2"
    assert report["user"] == "alice"
    assert report["password"] == "set"
    assert report["host"] == "ep-cool-breeze-123456.us-east-2.aws.neon.tech"
    assert report["port"] == 5432
    assert report["database"] == "neondb"
    assert report["params"] == {"sslmode": "require"}
    assert report["neon"] == {
        "endpoint_id": "ep-cool-breeze-123456",
        "region": "us-east-2",
        "cloud": "aws",
        "pooled": False,
        "cell": None,
    }
    finding = next(f for f in report["findings"] if f["id"] == "url-driver-prefix")
    assert finding["severity"] == "error" and finding["fix"]


def test_libpq_reading_of_unencoded_password_is_explained_without_the_password() -> None:
    result = CliRunner().invoke(cli, ["url", "postgresql://alice:p@ss/w0rd?#@localhost:5432/app"])
    assert result.exit_code == 1
    assert "%40" in result.stdout and "%2F" in result.stdout
    for piece in ("p@ss", "w0rd", "p%40ss"):
        assert piece not in result.stdout


@pytest.mark.parametrize(
    "bad",
    [
        "",
        " ",
        "\x00\x01\x02binary\xff",
        "x" * 100_000,
        "postgresql://dаtabase.例え.jp/db",
        "%zz",
        "postgresql://h:99999/db",
        "postgresql://[::1/db",
        "postgresql://:@/",
        "?",
        "=",
        "'",
        "host='unterminated",
        "postgresql://a:b@c:d@e:f/g?h",
    ],
)
def test_bad_input_is_a_finding_not_a_traceback(bad: str) -> None:
    result = CliRunner().invoke(cli, ["url", "--json", bad])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1)
    json.loads(result.stdout)
    text = CliRunner().invoke(cli, ["url", bad])
    assert text.exit_code == result.exit_code
    assert "Traceback" not in text.output


def test_binary_bytes_from_a_real_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "neondoctor", "url", "--env-var", "BINARY_URL"],
        env={**os.environ, "BINARY_URL": "postgresql://a:b@\x01\x7fhost/db"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "url-control-characters" in proc.stdout


# ------------------------------------------------------------------ where the string comes from


def _run(args: list[str], env: dict[str, str | None], cwd: Path) -> tuple[int, dict]:
    runner = CliRunner()
    base = {k: None for k in os.environ if k.startswith("PG") or k == "DATABASE_URL"}
    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = runner.invoke(cli, ["url", "--json", *args], env={**base, **env})
    finally:
        os.chdir(old)
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, {**report, "stderr": result.stderr} if "error" in report or not report else report


def test_argument_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://dotenv@dotenv.example/db\n")
    _, report = _run(["postgresql://arg@arg.example/db"], {"DATABASE_URL": "postgresql://env@env.example/db"}, tmp_path)
    assert report["source"] == "argument" and report["host"] == "arg.example"


def test_env_file_beats_environment(tmp_path: Path) -> None:
    env_file = tmp_path / "prod.env"
    env_file.write_text('DATABASE_URL="postgresql://file@file.example/db"\n')
    _, report = _run(["--env-file", str(env_file)], {"DATABASE_URL": "postgresql://env@env.example/db"}, tmp_path)
    assert report["source"] == f"env-file:{env_file}" and report["host"] == "file.example"


def test_environment_beats_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://dotenv@dotenv.example/db\n")
    _, report = _run([], {"DATABASE_URL": "postgresql://env@env.example/db"}, tmp_path)
    assert report["source"] == "env:DATABASE_URL" and report["host"] == "env.example"


def test_dotenv_in_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# app settings\nDATABASE_URL='postgresql://dotenv:secretpass123@dotenv.example/db'\n"
    )
    code, report = _run([], {}, tmp_path)
    assert code == 0
    assert report["source"] == f"dotenv:{tmp_path / '.env'}"
    assert report["host"] == "dotenv.example"
    assert "secretpass123" not in json.dumps(report)


def test_dotenv_is_read_but_never_copied_into_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CliRunner restores only the variables it was given, so these are unset here, not passed to it."""
    for name in [k for k in os.environ if k.startswith("PG") or k == "DATABASE_URL"]:
        monkeypatch.delenv(name)
    (tmp_path / ".env").write_text(
        "DATABASE_URL=postgresql://dotenv@dotenv.example/db\nPGPASSWORD=fromdotenv99\nAPP_SECRET=x\n"
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["url", "--json"])
    assert json.loads(result.stdout)["source"] == f"dotenv:{tmp_path / '.env'}"
    assert {"DATABASE_URL", "PGPASSWORD", "APP_SECRET"} & set(os.environ) == set()


def test_env_var_option(tmp_path: Path) -> None:
    _, report = _run(["--env-var", "POSTGRES_URL"], {"POSTGRES_URL": "postgresql://v@vercel.example/db"}, tmp_path)
    assert report["source"] == "env:POSTGRES_URL"


def test_libpq_environment_is_last(tmp_path: Path) -> None:
    env = {"PGHOST": "pg.example", "PGUSER": "alice", "PGDATABASE": "app", "PGPASSWORD": "hunter2hunter2"}
    _, report = _run([], env, tmp_path)
    assert report["source"] == "libpq-env"
    assert (report["host"], report["user"], report["database"], report["password"]) == (
        "pg.example",
        "alice",
        "app",
        "set",
    )
    assert "hunter2hunter2" not in json.dumps(report)


def test_pgpassword_fills_a_missing_password(tmp_path: Path) -> None:
    _, report = _run(["postgresql://alice@localhost/app"], {"PGPASSWORD": "hunter2hunter2"}, tmp_path)
    assert report["password"] == "set" and report["password_source"] == "PGPASSWORD"


def test_no_target_anywhere_is_one_line_and_exit_2(tmp_path: Path) -> None:
    code, report = _run([], {}, tmp_path)
    assert code == 2
    assert report["stderr"].count("\n") == 1 and "DATABASE_URL" in report["stderr"]


def test_unreadable_env_file_is_exit_2(tmp_path: Path) -> None:
    code, report = _run(["--env-file", str(tmp_path / "missing.env")], {}, tmp_path)
    assert code == 2 and "missing.env" in report["stderr"]


def test_env_file_without_the_variable_is_exit_2(tmp_path: Path) -> None:
    env_file = tmp_path / "other.env"
    env_file.write_text("OTHER=1\n")
    code, report = _run(["--env-file", str(env_file)], {}, tmp_path)
    assert code == 2 and "DATABASE_URL" in report["stderr"]


def test_unknown_option_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(cli, ["url", "--frobnicate"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1


def test_find_target_and_parse_target_api() -> None:
    found = find_target(None, environ={"DATABASE_URL": "postgresql://a:b3cr3tvalue@h/db"})
    target = parse_target(found)
    assert target.source == "env:DATABASE_URL"
    assert target.password == "b3cr3tvalue"
    assert "b3cr3tvalue" not in repr(target)
    assert target.hosts == [("h", 5432)]


def test_version_and_module_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "neondoctor", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "neondoctor" in proc.stdout


def test_env_file_with_bytes_that_are_not_utf8_is_still_read(tmp_path: Path) -> None:
    env_file = tmp_path / "prod.env"
    env_file.write_bytes(b"# caf\xe9 (latin-1)\nDATABASE_URL=postgresql://file@file.example/db\n")
    code, report = _run(["--env-file", str(env_file)], {}, tmp_path)
    assert code == 0 and report["host"] == "file.example"


def test_env_file_that_cannot_be_read_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "dir.env").mkdir()
    result = CliRunner().invoke(cli, ["url", "--env-file", str(tmp_path / "dir.env")], env={"NO_COLOR": "1"})
    assert result.exit_code == 2
    assert result.stderr == f"neondoctor: error: cannot read {tmp_path / 'dir.env'}: Is a directory\n"


def test_an_empty_variable_falls_through_to_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://dotenv@dotenv.example/db\n")
    _, report = _run([], {"DATABASE_URL": ""}, tmp_path)
    assert report["source"] == f"dotenv:{tmp_path / '.env'}" and report["host"] == "dotenv.example"


def test_dotenv_without_the_variable_is_named_in_the_one_line_error(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OTHER=1\nDATABASE_URL=\n")
    code, report = _run([], {"PGPORT": "5433"}, tmp_path)
    assert code == 2
    assert report["stderr"] == (
        "neondoctor: error: no connection string: pass one as an argument, set DATABASE_URL, or use --env-file FILE "
        f"(DATABASE_URL is not set, and {tmp_path / '.env'} has none)\n"
    )


def test_a_dotenv_directory_is_not_read(tmp_path: Path) -> None:
    (tmp_path / ".env").mkdir()
    code, report = _run([], {}, tmp_path)
    assert code == 2
    assert report["stderr"].endswith("(DATABASE_URL is not set)\n")


def test_env_file_with_an_empty_value_is_exit_2(tmp_path: Path) -> None:
    env_file = tmp_path / "prod.env"
    env_file.write_text("DATABASE_URL=\n")
    code, report = _run(["--env-file", str(env_file)], {}, tmp_path)
    assert code == 2 and report["stderr"] == f"neondoctor: error: DATABASE_URL is not set in {env_file}\n"


def test_env_file_is_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    env_file = tmp_path / "prod.env"
    env_file.write_text("DATABASE_URL=postgresql://alice@café.example/app\n", encoding="utf-8")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "neondoctor", "url", "--json", "--env-file", str(env_file)],
        env=env, capture_output=True, timeout=60,
    )
    report = json.loads(proc.stdout)
    assert report["host"] == "café.example"
    ids = {f["id"] for f in report["findings"]}
    assert "url-non-ascii-host" in ids and "url-control-characters" not in ids


@pytest.mark.parametrize("port", ["0", "65536", "99999", "x"])
def test_a_port_libpq_cannot_use_is_an_error_and_target_hosts_falls_back_to_5432(port: str) -> None:
    target = parse_target(f"host=db.example.com port={port} dbname=app")
    assert (target.source, [f.id for f in target.findings]) == ("argument", ["url-invalid-port"])
    assert target.hosts == [("db.example.com", 5432)]
    assert parse_target("host=db.example.com port=65535 dbname=app").hosts == [("db.example.com", 65535)]


@pytest.mark.parametrize("where", ["env", "env-file", "dotenv"])
def test_pgpassword_fills_a_string_from_any_source(where: str, tmp_path: Path) -> None:
    line = "DATABASE_URL=postgresql://alice@db.example.com/app"
    env = {"PGPASSWORD": "hunter2hunter2"}
    args: list[str] = []
    if where == "env":
        env["DATABASE_URL"] = line.partition("=")[2]
    elif where == "env-file":
        (tmp_path / "prod.env").write_text(line + "\n")
        args = ["--env-file", str(tmp_path / "prod.env")]
    else:
        (tmp_path / ".env").write_text(line + "\n")
    _, report = _run(args, env, tmp_path)
    assert (report["password"], report["password_source"], report["host"]) == ("set", "PGPASSWORD", "db.example.com")
    assert "hunter2hunter2" not in json.dumps(report)
