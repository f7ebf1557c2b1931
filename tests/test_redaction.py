"""The password never reaches the output, in any encoding, whatever it contains."""

from __future__ import annotations

import base64
import json
import random
import re
import string
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from click.testing import CliRunner

from neondoctor.cli import cli
from neondoctor.redact import Redactor, redact_patterns, value_maskable

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


# --------------------------------------------------------------------------- issue 8: never leak, never mangle


def _url_run(*args: str, env: dict[str, str | None] | None = None) -> str:
    result = CliRunner().invoke(cli, ["url", *args], env={"NO_COLOR": "1", "PGPASSWORD": None, **(env or {})})
    assert result.exit_code in (0, 1), result.output
    return result.stdout + result.stderr


@pytest.mark.parametrize(
    ("url", "pieces"),
    [
        ("postgresql://alice:p@ss?x=y#1@127.0.0.1/app", ['"x"', "ss?x", "y#1"]),
        ("postgresql://alice:hunter2?options=secretstuff@127.0.0.1/app", ["hunter2", "secretstuff"]),
        ("postgresql://alice:abc/de%zzfgh@127.0.0.1/app", ["de%zz", "zzfgh", "abc/"]),
        ("postgresql://alice:pw?sslmode=verify-fullX@127.0.0.1/app", ["verify-fullX", "pw?"]),
        ("jdbc:postgresql://127.0.0.1/app?user=alice&password=ab&cdsecret", ["cdsecret"]),
        ("postgresql://127.0.0.1/app?user=alice&password=ab&cdsecret=1&sslmode=require", ["cdsecret"]),
    ],
)
def test_unencoded_passwords_leave_no_fragment_in_libpq_texts(url: str, pieces: list[str]) -> None:
    for args in ((url,), ("--json", url)):
        output = _url_run(*args)
        if "--json" in args:
            json.loads(output)
        for piece in pieces:
            assert piece not in output, (args, piece)
        assert "alice:****@127.0.0.1" in output or "?user=alice&password=" in url


def test_libpq_ready_url_keeps_the_password_whole_when_it_holds_question_mark_and_equals() -> None:
    output = _url_run("--json", "postgresql://alice:hunter2?options=secretstuff@127.0.0.1/app")
    report = json.loads(output)
    assert report["dsn"] == "postgresql://alice:****@127.0.0.1/app"
    assert "options" not in report["params"]
    assert report["user"] == "alice" and report["host"] == "127.0.0.1"


def test_a_query_at_sign_is_still_read_as_part_of_the_query() -> None:
    report = json.loads(_url_run("--json", "postgresql://alice:pw@127.0.0.1/app?application_name=me@laptop"))
    assert report["host"] == "127.0.0.1" and report["params"]["application_name"] == "me@laptop"


@pytest.mark.parametrize("password", ["postgres", "wrong", "null", "PostgreSQL", "password"])
def test_common_words_as_passwords_do_not_mangle_the_products_words(password: str) -> None:
    output = _url_run(f"postgresql://postgres:{password}@127.0.0.1/app")
    assert "postgresql://postgres:****@127.0.0.1/app" in output
    assert "****ql" not in output and "****QL" not in output
    assert "the URL scheme; libpq accepts postgresql:// and postgres://" in output


@pytest.mark.parametrize("password", [",", ":", "}", '"', "null", "[", "\\", "1", "true", "{"])
def test_short_passwords_keep_json_valid_and_hidden(password: str) -> None:
    url = f"postgresql://alice:{quote(password, safe='')}@127.0.0.1/app"
    report = json.loads(_url_run("--json", url))
    assert report["dsn"] == "postgresql://alice:****@127.0.0.1/app"
    assert report["password"] == "set"


def test_the_at_sign_fix_reads_as_written() -> None:
    output = _url_run("postgresql://alice:p@ss@127.0.0.1/app")
    assert "Percent-encode the password: '@' → %40" in output


def test_wrong_password_advice_is_not_masked(pg: Any) -> None:
    url = pg.url(password="wrong")
    result = CliRunner().invoke(cli, ["check", "--timeout", "2", url], env={"NO_COLOR": "1", "PGPASSWORD": None})
    assert result.exit_code == 1
    assert "a wrong password" in result.stdout
    assert ":****@" in result.stdout and ":wrong@" not in result.stdout


@pytest.mark.parametrize(
    ("secret", "maskable"),
    [("postgres", False), ("wrong", False), ("verify-full", False), ("a", False), ("hunter2x", True),
     ("s3cr@t/pw:#?", True), ("      ", False)],
)
def test_value_masking_only_for_secrets_that_cannot_mangle(secret: str, maskable: bool) -> None:
    assert value_maskable(secret) is maskable


def test_value_net_is_case_sensitive_and_keeps_our_words() -> None:
    redactor = Redactor(["postgres", "hunter2x"])
    assert redactor.known("postgresql://x PostgreSQL 15") == "postgresql://x PostgreSQL 15"
    assert redactor.known("got hunter2x and HUNTER2X") == "got **** and HUNTER2X"


def test_libpq_quoted_fragments_are_masked_by_region_however_short() -> None:
    redactor = Redactor()
    text = "postgresql://alice:a?b=c@127.0.0.1/app"
    redactor.add_region(text, text.index("a?b"), text.index("@127"))
    assert redactor.libpq('invalid URI query parameter: "b"') == 'invalid URI query parameter: "****"'
    assert redactor.libpq('invalid URI query parameter: "app"') == 'invalid URI query parameter: "app"'
    whole = f'unexpected character "?" at position 20 in URI (expected ":" or "/"): "{text}"'
    assert text not in redactor.libpq(whole)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("password=endpoint=ep-cool-breeze-123456;s3cretPW", "s3cretPW"),
        ("postgresql://alice:endpoint=ep-cool-breeze-123456$s3cretPW@host/db", "s3cretPW"),
        ("options=endpoint=ep-x;s3cretPW", "s3cretPW"),
        ("export PGPASSWORD='it'\"'\"'s a secret'", "s a secret"),
        ("PGPASSWORD=two words", "two words"),
        ("postgresql://alice:sp ace@host/db failed", "sp ace"),
        ("NEON_API_KEY=napi_abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghijklmnop"),
    ],
)
def test_patterns_hide_neon_and_shell_forms(text: str, secret: str) -> None:
    assert secret not in redact_patterns(text)


@pytest.mark.parametrize(
    "argv",
    [
        ["url", "postgresql://alice:my", "secretword@127.0.0.1/app"],
        ["check", "--timeout", "2", "postgresql://alice:two", "secret", "words@127.0.0.1/app"],
        ["explain", "-f", "postgresql://alice:secretword@127.0.0.1/app"],
    ],
)
def test_usage_errors_do_not_echo_a_password(argv: list[str]) -> None:
    result = CliRunner().invoke(cli, argv, env={"NO_COLOR": "1"})
    assert result.exit_code == 2
    assert result.stderr.startswith("neondoctor: error: ")
    assert "secret" not in result.stderr and "words@" not in result.stderr


# --------------------------------------------------------------------------- issue 11: what mutation testing found


def _explained_line(text: str) -> str:
    """The excerpt line ``neondoctor explain TEXT`` shows under its verdict."""
    result = CliRunner().invoke(cli, ["explain", text], env={"NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return next(line.split("│ ", 1)[1] for line in result.stdout.splitlines() if "│ " in line)


FAILED = 'FATAL: password authentication failed for user "app" '


def _percent_lowered(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


@pytest.mark.parametrize(
    "secret",
    [
        'Se"cr\\e\'t/9é aaaW',  # its JSON forms carry \" so explain reads the line as a JSON-escaped log
        "Ab'c\\d/é fW",  # no \" : the line is read as written
        "AX'b\\c\u200bd/é fX",  # repr escapes the zero-width space, JSON does not, libpq escapes the quote
    ],
)
def test_explain_masks_a_pasted_password_in_every_encoding_it_appears_in(secret: str) -> None:
    forms = [
        quote(secret, safe=""), quote(secret), quote_plus(secret), _percent_lowered(quote(secret, safe="")),
        json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1], repr(secret)[1:-1],
        secret.replace("\\", "\\\\").replace("'", "\\'"), base64.b64encode(secret.encode()).decode().rstrip("="),
    ]
    shown = _explained_line(f"{FAILED}url=postgresql://app:{secret}@db.example/app" + "".join(f" <{f}>" for f in forms))
    assert shown == FAILED + "url=postgresql://app:****@db.example/app" + " <****>" * len(forms)


@pytest.mark.parametrize(
    ("pasted", "shown"),
    [
        ("password='hunter2xyz'", "password='****'"),
        ('password="hunter2xyz"', 'password="****"'),
        ("password=''", "password='****'"),
        ("password=XmasTree9X", "password=****"),
        ("password=****", "password=****"),
        ("password='****'", "password='****'"),
        ("Authorization: Bearer abcdefgh12345", "Authorization: Bearer ****"),
        ("key napi_abcdefghijklmnopqrst", "key napi_****"),
        ("export PGPASSWORD=hunter2xyz", "export PGPASSWORD=****"),
        ("options=endpoint=ep-cool-123;hunter2xyz", "options=endpoint=ep-cool-123;****"),
        ("postgresql://app:@db.example/app", "postgresql://app:@db.example/app"),
        ("postgresql://app:****@db.example/app", "postgresql://app:****@db.example/app"),
        ("postgresql://app:ab/cdSecret9@db.example/app", "postgresql://app:****@db.example/app"),
        ("postgresql://app:a b#c?d=e@db.example/app ok", "postgresql://app:****@db.example/app ok"),
    ],
)
def test_explain_masks_secret_shapes_exactly_keeping_their_quotes(pasted: str, shown: str) -> None:
    assert _explained_line(FAILED + pasted) == FAILED + shown


@pytest.mark.parametrize(
    ("pasted", "shown"),
    [
        ('FATAL: password authentication failed for user "XmasTree9X" password=\'XmasTree9X\'',
         'FATAL: password authentication failed for user "****" password=\'****\''),
        ('invalid port number: "ab12" password=ab12', 'invalid port number: "****" password=****'),
        ('invalid port number: "ab1" password=ab1', 'invalid port number: "ab1" password=****'),
        ('invalid port number: "****" password=****', 'invalid port number: "****" password=****'),
        ('psql: error: could not translate host name "ab12" to address: Name or service not known; could not '
         'translate host name "db.example" to address: x password=ab12',
         'psql: error: could not translate host name "****" to address: Name or service not known; could not '
         'translate host name "db.example" to address: x password=****'),
        ('psql: error: invalid integer value "ab12" for connection option "port"; invalid integer value "x" for '
         'connection option "connect_timeout" password=ab12',
         'psql: error: invalid integer value "****" for connection option "port"; invalid integer value "x" for '
         'connection option "connect_timeout" password=****'),
        ('FATAL: password authentication failed for user "abc123" password=abc123',
         'FATAL: password authentication failed for user "****" password=****'),
        ('missing "=" after "" in connection info string password=abcd1234',
         'missing "=" after "" in connection info string password=****'),
        ('connection to server at "db.example" (127.0.0.1), port 5432 failed: FATAL:  password authentication '
         'failed for user "app" password=abcd1234',
         'connection to server at "db.example" (127.0.0.1), port 5432 failed: FATAL:  password authentication '
         'failed for user "app" password=****'),
        ('FATAL: password authentication failed for user "Alpha9xyz" password=Alpha9xyz '
         "dsn=postgresql://bob:Bravo9xyz@db.example/app seen Bravo9xyz",
         'FATAL: password authentication failed for user "****" password=**** '
         "dsn=postgresql://bob:****@db.example/app seen ****"),
        ('FATAL: password authentication failed for user "app" password=Secret9\\ logged as Secret9\\\\ then',
         'FATAL: password authentication failed for user "app" password=**** logged as **** then'),
    ],
)
def test_explain_masks_a_pasted_password_wherever_else_the_line_quotes_it(pasted: str, shown: str) -> None:
    """A password seen by its shape is hidden elsewhere on the line too: in full from six characters,
    in libpq's quoted fragments from four (shorter ones are too likely to be ordinary words)."""
    assert _explained_line(pasted) == shown


@pytest.mark.parametrize(
    ("url", "libpq_says"),
    [
        ("postgresql://alice:a%00b@127.0.0.1/app", 'forbidden value %00 in percent-encoded value: "****"'),
        ("postgresql://alice:a b@127.0.0.1/app",
         'unexpected spaces found in "****", use percent-encoded spaces (%20) instead'),
        ('postgresql://alice:p"s%zz@127.0.0.1/app', 'invalid percent-encoded token: "****"'),
        ('postgresql://alice:pa"ss%zzXYZ@127.0.0.1/app', 'invalid percent-encoded token: "****"'),
    ],
)
def test_libpq_quoting_a_short_or_quoted_password_shows_only_the_mask(url: str, libpq_says: str) -> None:
    """Too short to hide by value, or holding the quote libpq puts around it: the quoted fragment is hidden whole."""
    assert f"on the string as given: rejects it: {libpq_says}\n" in _url_run(url)


def test_a_short_password_does_not_hide_the_same_word_elsewhere() -> None:
    report = json.loads(_url_run("--json", "postgresql://alice:qz7@127.0.0.1/qz7"))
    assert report["dsn"] == "postgresql://alice:****@127.0.0.1/qz7" and report["database"] == "qz7"


def test_libpq_quoting_the_whole_url_shows_it_with_the_password_masked() -> None:
    assert (
        'in IPv6 host address in URI: "postgresql://alice:****@[::1/app"\n'
        in _url_run("postgresql://alice:pw@[::1/app")
    )


def test_a_password_that_is_not_utf8_once_decoded_is_a_finding_not_a_crash() -> None:
    result = CliRunner().invoke(cli, ["url", "postgresql://alice:ab%ffcd@127.0.0.1/app"], env={"NO_COLOR": "1"})
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output and "ab%ffcd" not in result.output


def test_a_password_of_white_space_is_hidden_where_it_stands_but_not_wherever_white_space_is() -> None:
    shown = _explained_line(f"{FAILED}password='{chr(9) * 6}' then{chr(9) * 6}end")
    assert shown.startswith(FAILED + "password='****' then ") and shown.endswith(" end")


def test_a_quoted_piece_of_the_password_is_masked_even_when_the_user_and_database_repeat_it() -> None:
    output = _url_run("postgresql://xx:p@ss?xx=y#1@127.0.0.1/xx")
    assert 'rejects it: invalid URI query parameter: "****"\n' in output
    assert '"xx"' not in output
