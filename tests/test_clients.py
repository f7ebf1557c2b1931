"""url --for offline: every client, password masked unless asked, the JSON contract, and the port as written."""

from __future__ import annotations

from urllib.parse import quote, quote_plus

import pytest
from click.testing import CliRunner, Result
from contract import validate
from test_check import CLEAN_ENV

from neondoctor.cli import CLIENT_NAMES, cli
from neondoctor.clients import CLIENTS

PASSWORD = "Tr1cky@pw/with:all?#%+ &=;"
NEON = "ep-cool-darkness-123456.us-east-2.aws.neon.tech"
URL = f"postgresql://alice:{quote(PASSWORD, safe='')}@{NEON}/neondb?sslmode=verify-full&sslrootcert=system"


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), env=CLEAN_ENV)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def secret_forms() -> list[str]:
    return [PASSWORD, quote(PASSWORD, safe=""), quote_plus(PASSWORD), quote(PASSWORD)]


def test_every_issue_client_has_a_row() -> None:
    assert set(CLIENT_NAMES) == set(CLIENTS)


@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_password_is_masked_unless_asked(client: str) -> None:
    for args in (("url", "--for", client, URL), ("url", "--json", "--for", client, URL)):
        result = run(*args)
        assert result.exit_code in (0, 1), result.output
        for form in secret_forms():
            assert form not in result.output, (client, form)
    shown = run("url", "--json", "--for", client, "--show-password", URL)
    data = validate(shown.stdout, "url")
    text = (data["client"]["url"] or "") + (data["client"]["code"] or "")
    assert any(form in text for form in secret_forms()), client
    assert data["password"] == "set" and "****" in data["dsn"], "only the client form carries the password"


@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_json_validates_and_names_the_client(client: str) -> None:
    data = validate(run("url", "--json", "--for", client, URL).stdout, "url")
    assert data["client"]["client"] == client
    assert data["client"]["kind"] in ("url", "code")


def test_show_password_needs_for() -> None:
    result = run("url", "--show-password", URL)
    assert result.exit_code == 2
    assert "--show-password only goes with --for CLIENT" in result.stderr


def test_unknown_client_is_usage() -> None:
    result = run("url", "--for", "mongodb", URL)
    assert result.exit_code == 2


def test_port_shown_is_the_port_written() -> None:
    result = run("url", "postgresql://a:b@h:99999/x")
    assert result.exit_code == 1
    assert "port      99999" in result.output
    assert "5432" not in result.output.split("Findings")[0]
    data = validate(run("url", "--json", "postgresql://a:b@h:99999/x").stdout, "url")
    assert data["port"] == 99999


def test_asyncpg_contradiction_is_gone() -> None:
    """The fix url gives an asyncpg user passes url's own judgement."""
    given = f"postgresql+asyncpg://alice:pw@{NEON}/neondb?sslmode=require"
    first = validate(run("url", "--json", given).stdout, "url")
    fix = next(f["fix"] for f in first["findings"] if f["id"] == "url-asyncpg-sslmode")
    assert "?ssl=require" in fix
    second = validate(run("url", "--json", given.replace("sslmode=", "ssl=")).stdout, "url")
    ids = {f["id"]: f["severity"] for f in second["findings"]}
    assert "url-driver-parameter" not in ids and ids["url-asyncpg-keyword-ssl"] == "info"
    assert "sslmode=require" in second["dsn"]
    sqlalchemy = run("url", "--for", "sqlalchemy-async", given.replace("sslmode=", "ssl="))
    assert sqlalchemy.exit_code == 0, sqlalchemy.output


def test_jdbc_puts_credentials_in_the_query() -> None:
    data = validate(run("url", "--json", "--for", "jdbc", "--show-password",
                        f"postgresql://alice:a%2Bb%20c@{NEON}/neondb?sslmode=require").stdout, "url")
    assert data["client"]["url"] == f"jdbc:postgresql://{NEON}:5432/neondb?user=alice&password=a%2Bb%20c&sslmode=require"


def test_prisma_on_the_pooler_gets_pgbouncer_and_a_direct_url() -> None:
    data = validate(run("url", "--json", "--for", "prisma",
                        f"postgresql://alice:pw@{NEON.replace('123456.', '123456-pooler.')}/neondb?sslmode=require"
                        ).stdout, "url")
    client = data["client"]
    assert "pgbouncer=true" in client["url"] and "connection_limit=" in client["url"]
    assert "pool_timeout=" in client["url"]
    assert f"DIRECT_URL=postgresql://alice:****@{NEON}:5432/neondb?sslmode=require" in client["code"]


def test_an_unreadable_string_gets_no_form() -> None:
    result = run("url", "--for", "node-pg", "postgresql://alice:pw@h/db?sslmode=require&x=%zz")
    assert result.exit_code == 1
    assert "nothing to translate" in result.output


def test_sqlalchemy_refuses_postgres_scheme_and_gets_the_driver_prefix() -> None:
    data = validate(run("url", "--json", "--for", "sqlalchemy", f"postgres://alice:pw@{NEON}/neondb").stdout, "url")
    assert data["client"]["url"].startswith("postgresql+psycopg2://")
    assert any(note["id"] == "given-sqlalchemy-postgres" for note in data["client"]["notes"])
