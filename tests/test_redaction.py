"""The password never reaches the output, in any encoding, whatever it contains."""

from __future__ import annotations

import base64
import json
import random
import string
from urllib.parse import quote, quote_plus

import pytest
from click.testing import CliRunner

from neondoctor.cli import cli
from neondoctor.redact import Redactor, redact_patterns

ALPHABET = string.ascii_letters + string.digits + "@/?#:%&=+ $!*'()[];,~-_.\\\"é€"
SHAPES = (
    "postgresql://alice:{raw}@ep-cool-breeze-123456.us-east-2.aws.neon.tech/neondb?sslmode=require",
    "postgresql+psycopg2://alice:{encoded}@localhost:5432/app",
    "postgres://alice:{encoded}@db.example.com/app?pgbouncer=true",
    "jdbc:postgresql://localhost/app?user=alice&password={encoded}",
    "host=localhost dbname=app user=alice password='{libpq}'",
    "psql 'postgresql://alice:{encoded}@localhost/app'",
)


def _passwords(count: int) -> list[str]:
    rng = random.Random(20261122)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(8, 24))) for _ in range(count)]


def _forms(password: str) -> set[str]:
    return {
        password,
        quote(password, safe=""),
        quote(password),
        quote_plus(password),
        json.dumps(password)[1:-1],
        json.dumps(password, ensure_ascii=False)[1:-1],
        base64.b64encode(password.encode()).decode().rstrip("="),
    }


@pytest.mark.parametrize("password", _passwords(30))
def test_url_never_prints_the_password(password: str) -> None:
    libpq = password.replace("\\", "\\\\").replace("'", "\\'")
    for shape in SHAPES:
        url = shape.format(raw=password, encoded=quote(password, safe=""), libpq=libpq)
        for args in (["url", url], ["url", "--json", url]):
            result = CliRunner().invoke(cli, args, env={"NO_COLOR": "1", "PGPASSWORD": None})
            assert result.exception is None or isinstance(result.exception, SystemExit)
            output = result.stdout + result.stderr
            for form in _forms(password):
                assert form not in output, (shape, args[1])


@pytest.mark.parametrize("password", _passwords(10))
def test_pgpassword_never_printed(password: str) -> None:
    result = CliRunner().invoke(cli, ["url", "postgresql://alice@localhost/app"], env={"PGPASSWORD": password})
    for form in _forms(password):
        assert form not in result.stdout + result.stderr


def test_explain_hides_passwords_found_in_the_pasted_text() -> None:
    text = (
        "sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) connection to server at "
        '"localhost" (127.0.0.1), port 5432 failed: FATAL:  password authentication failed for user "alice"\n'
        "[SQL: connect postgresql://alice:Sup3rS3cretPw@localhost/app]\n"
        "env: PGPASSWORD=Sup3rS3cretPw DATABASE_URL=postgresql://alice:Sup3rS3cretPw@localhost/app\n"
        "napi_abcdefghijklmnopqrstuvwxyz0123456789\n"
    )
    for args in (["explain", text], ["explain", "--json", text]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0
        assert "Sup3rS3cretPw" not in result.stdout
        assert "napi_abcdefghijklmnopqrstuvwxyz0123456789" not in result.stdout


def test_redactor_known_secret_in_every_encoding() -> None:
    secret = "p@ss/w0rd?#é"
    redactor = Redactor([secret])
    for form in _forms(secret):
        assert form not in redactor(f"before {form} after")
    assert redactor.known("advice: `@` → `%40`") == "advice: `@` → `%40`"


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://u:hunter2hunter2@h/db",
        "password=hunter2hunter2 host=h",
        "password='hunter2hunter2' host=h",
        '{"password": "hunter2hunter2"}',
        "PGPASSWORD=hunter2hunter2",
        "jdbc:postgresql://h/db?user=u&password=hunter2hunter2",
    ],
)
def test_patterns_hide_unknown_passwords(text: str) -> None:
    assert "hunter2hunter2" not in redact_patterns(text)
