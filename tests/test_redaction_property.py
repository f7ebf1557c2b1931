"""Property: whatever the password, in whatever form, no command and no format ever shows it.

Passwords come from hypothesis: any printable character and unicode, the URL-reserved ones
(``@ : / ? # % & = ;``), short ones (1-3 characters) and words the product itself says
(``postgres``, ``wrong``, ``null``). Each goes into every form a user writes (an encoded URL, an
UNENCODED URL — the mistake ``url`` exists to catch —, a key=value DSN, PGPASSWORD, a JDBC
``?password=``, Neon's ``endpoint=<id>;<password>``) and through every command and format in
``COMMANDS``, against a real server whose role has that password (right) or another (wrong).

How a leak is told from a coincidence: the same command runs with a fixed, distinctive baseline
password; any encoding of the generated password (raw, quote, quote_plus, JSON, repr, base64) that
occurs MORE often than in the baseline output is a leak. That holds even for ``postgres`` (which is
also the product's word and a role name). Passwords shorter than ``DIFF_MIN`` characters are checked
by structure: the places a password sits (``:…@``, ``password=…``, ``PGPASSWORD=…``) show the mask;
so are digit-only ones, which timings, pids and dates could hold by chance.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shlex
import string
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neondoctor.cli import cli
from neondoctor.redact import MASK

ROLE = "pwtest"
BASELINE = "Zq7-base!LINE-k3y"
DIFF_MIN = 4
EXAMPLES = int(os.environ.get("NEONDOCTOR_PROPERTY_EXAMPLES", "220"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_TEXT = st.characters(blacklist_categories=("Cc", "Cs", "Cn", "Co", "Zl", "Zp"), blacklist_characters="\ufffd\x00")
_RESERVED = "@:/?#%&=;"
_PRINTABLE = string.ascii_letters + string.digits + string.punctuation + " é€"
PASSWORDS = st.one_of(
    st.text(_TEXT, min_size=1, max_size=24),
    st.text(st.sampled_from(_PRINTABLE), min_size=1, max_size=16),
    st.text(st.sampled_from(_RESERVED + "ab1"), min_size=1, max_size=12),
    st.text(st.sampled_from(string.punctuation), min_size=1, max_size=3),
    st.sampled_from(["postgres", "wrong", "null", ",", ":", "}", '"', "password", "PostgreSQL", "app", "a", "@", "%"]),
).filter(lambda pw: pw.strip() == pw or pw.strip())


# --------------------------------------------------------------------------- forms


@dataclass(frozen=True)
class Case:
    """One way a user hands over the password: the string, the environment, and a paste for explain."""

    target: str
    env: dict[str, str] = field(default_factory=dict)
    paste: str = ""
    slots: tuple[str, ...] = ()
    """Where the password sits, as format strings with {pw}: their masked form must never show a short one."""


def _kv_quote(pw: str) -> str:
    return "'" + pw.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _url(port: int, userinfo: str, query: str = "") -> str:
    return f"postgresql://{userinfo}@127.0.0.1:{port}/app?sslmode=disable" + (f"&{query}" if query else "")


_ERROR = (
    'psql: error: connection to server at "127.0.0.1", port {port} failed: '
    f'FATAL:  password authentication failed for user "{ROLE}"'
)


def _paste(port: int, line: str) -> str:
    """The secret on the error line itself (so explain's excerpt shows it) and on a line of its own."""
    return f"{_ERROR.format(port=port)} [{line}]\n{line}\n"


FORMS: dict[str, Callable[[str, int], Case]] = {
    "url-encoded": lambda pw, port: Case(
        _url(port, f"{ROLE}:{quote(pw, safe='')}"),
        paste=_paste(port, "DATABASE_URL=" + _url(port, f"{ROLE}:{quote(pw, safe='')}")),
        slots=(":{pw}@",),
    ),
    "url-unencoded": lambda pw, port: Case(
        _url(port, f"{ROLE}:{pw}"),
        paste=_paste(port, f"connecting to {_url(port, f'{ROLE}:{pw}')} failed"),
        slots=(":{pw}@",),
    ),
    "keyvalue": lambda pw, port: Case(
        f"host=127.0.0.1 port={port} dbname=app user={ROLE} sslmode=disable password={_kv_quote(pw)}",
        paste=_paste(port, f"dsn: host=127.0.0.1 user={ROLE} password={_kv_quote(pw)} dbname=app"),
        slots=("password={pw}", "password='{pw}'"),
    ),
    "pgpassword": lambda pw, port: Case(
        _url(port, ROLE),
        env={"PGPASSWORD": pw},
        paste=_paste(port, f"$ export PGPASSWORD={shlex.quote(pw)}"),
        slots=("PGPASSWORD={pw}",),
    ),
    "jdbc": lambda pw, port: Case(
        f"jdbc:postgresql://127.0.0.1:{port}/app?sslmode=disable&user={ROLE}&password={quote(pw, safe='')}",
        paste=_paste(port, f"spring.datasource.url=jdbc:postgresql://127.0.0.1:{port}/app?password={quote(pw, safe='')}"
                     ),
        slots=("password={pw}",),
    ),
    "neon-endpoint": lambda pw, port: Case(
        _url(port, f"{ROLE}:{quote('endpoint=ep-cool-breeze-123456;' + pw, safe='')}"),
        paste=_paste(port, f"PGPASSWORD='endpoint=ep-cool-breeze-123456;{pw}'"),
        slots=(";{pw}", "${pw}"),
    ),
}
UNAMBIGUOUS = ("url-encoded", "keyvalue", "pgpassword", "jdbc")
"""Forms in which the right password must really log in (so the success path's output is tested too)."""


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Command:
    """A row of the table: a new command or format is one line here."""

    name: str
    argv: Callable[[Case], list[str]]
    json: bool = False
    server: bool = False


COMMANDS = [
    Command("url", lambda c: ["url", c.target]),
    Command("url --json", lambda c: ["url", "--json", c.target], json=True),
    Command("explain", lambda c: ["explain", c.paste]),
    Command("explain --json", lambda c: ["explain", "--json", c.paste], json=True),
    Command("check", lambda c: ["check", "--timeout", "2", c.target], server=True),
    Command("check --json", lambda c: ["check", "--timeout", "2", "--json", c.target], json=True, server=True),
    Command("check -v", lambda c: ["check", "--timeout", "2", "-v", c.target], server=True),
    Command("report md", lambda c: ["report", c.target, "-o", "-", "--format", "markdown"], server=True),
    Command("report json", lambda c: ["report", c.target, "-o", "-", "--format", "json"], json=True, server=True),
]
OFFLINE = [c for c in COMMANDS if not c.server]
ONLINE = [c for c in COMMANDS if c.server]


def invoke(command: Command, case: Case) -> tuple[int, str]:
    env = {"NO_COLOR": "1", "PGPASSWORD": None, "DATABASE_URL": None, "PGSERVICE": None, **case.env}
    result = CliRunner().invoke(cli, command.argv(case), env=env, catch_exceptions=True)
    output = result.stdout + "\n" + result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{command.name} raised {type(result.exception).__name__}") from None
    if command.json:
        json.loads(result.stdout)
    assert result.exit_code in (0, 1), (command.name, result.exit_code, result.stderr[-300:])
    return result.exit_code, output


# --------------------------------------------------------------------------- the leak check


def encodings(pw: str) -> set[str]:
    return {
        pw,
        quote(pw, safe=""),
        quote(pw),
        quote_plus(pw),
        json.dumps(pw)[1:-1],
        json.dumps(pw, ensure_ascii=False)[1:-1],
        repr(pw)[1:-1],
        base64.b64encode(pw.encode()).decode().rstrip("="),
    }


def distinctive(text: str) -> bool:
    """Long enough, and not made of what timings, ports, pids and dates are made of (those vary between runs)."""
    return len(text) >= DIFF_MIN and (len(text) >= 10 or not re.fullmatch(r"[\d\s.:,\-]+", text))


def assert_no_leak(pw: str, output: str, baseline: str, case: Case, where: str) -> None:
    if distinctive(pw):
        for form in encodings(pw):
            if distinctive(form):
                assert output.count(form) <= baseline.count(form), f"{where}: the password leaks as {form!r}"
    for slot in case.slots:
        for form in encodings(pw):
            shown = slot.format(pw=form)
            assert output.count(shown) <= baseline.count(shown), f"{where}: {shown!r} shows the password"


class Baselines:
    """Output of each (form, command, right) with the baseline password, computed once."""

    def __init__(self, port: int, set_password: Callable[[str], None] | None = None) -> None:
        self.port = port
        self.set_password = set_password
        self._seen: dict[tuple[str, str, bool], str] = {}

    def get(self, form: str, command: Command, right: bool = False) -> str:
        key = (form, command.name, right)
        if key not in self._seen:
            if self.set_password is not None:
                self.set_password(BASELINE if right else BASELINE + "-other")
            self._seen[key] = invoke(command, FORMS[form](BASELINE, self.port))[1]
        return self._seen[key]


# --------------------------------------------------------------------------- offline: url and explain


@PROPERTY
@given(pw=PASSWORDS, form=st.sampled_from(sorted(FORMS)))
def test_url_and_explain_never_show_the_password(pw: str, form: str) -> None:
    case = FORMS[form](pw, 5432)
    for command in OFFLINE:
        _, output = invoke(command, case)
        assert_no_leak(pw, output, _OFFLINE_BASELINES.get(form, command), case, f"{command.name} [{form}]")
        assert MASK in output, f"{command.name} [{form}]: the password slot is not masked"


_OFFLINE_BASELINES = Baselines(5432)


# --------------------------------------------------------------------------- online: check against a real server


@pytest.fixture(scope="module")
def secret_server(pg_factory: Any) -> Iterator[tuple[int, Callable[[str], None]]]:
    """One cluster for this module (its role's password changes per example), TLS off to stay fast."""
    import psycopg
    from psycopg import sql

    cluster = pg_factory(ssl=False, users={ROLE: BASELINE})
    admin = cluster.admin()

    def set_password(pw: str) -> None:
        admin.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(pw)))

    try:
        yield cluster.port, set_password
    finally:
        with contextlib.suppress(psycopg.Error):
            admin.close()


@PROPERTY
@given(
    pw=PASSWORDS,
    form=st.sampled_from(sorted(FORMS)),
    command=st.sampled_from(ONLINE),
    right=st.booleans(),
)
def test_check_never_shows_the_password(
    secret_server: tuple[int, Callable[[str], None]], pw: str, form: str, command: Command, right: bool
) -> None:
    port, set_password = secret_server
    baselines = _online_baselines(port, set_password)
    baseline = baselines.get(form, command, right)
    set_password(pw if right else pw + "-not-this")
    case = FORMS[form](pw, port)
    code, output = invoke(command, case)
    assert_no_leak(pw, output, baseline, case, f"{command.name} [{form}, {'right' if right else 'wrong'}]")
    assert MASK in output
    if right and (form in UNAMBIGUOUS or (form == "url-unencoded" and not set(pw) & set("@/?#% "))):
        assert code == 0, f"{command.name} [{form}]: the right password did not log in"
    if not right:
        assert code == 1


_BASELINES: dict[int, Baselines] = {}


def _online_baselines(port: int, set_password: Callable[[str], None]) -> Baselines:
    if port not in _BASELINES:
        _BASELINES[port] = Baselines(port, set_password)
    return _BASELINES[port]


# --------------------------------------------------------------------------- the real entry point, a few times


@pytest.mark.parametrize(
    "pw", ["postgres", "p@ss?x=y#1", ",", 'q"}:', "é€ ü/%zz", "endpoint=ep-x;s3cr3t"], ids=lambda pw: f"pw{len(pw)}"
)
def test_subprocess_runs_show_no_password(secret_server: tuple[int, Callable[[str], None]], pw: str) -> None:
    port, set_password = secret_server
    set_password(pw)
    env = {**os.environ, "NO_COLOR": "1"}
    for key in ("PGPASSWORD", "DATABASE_URL", "PGSERVICE"):
        env.pop(key, None)
    url = _url(port, f"{ROLE}:{pw}")
    for argv in (["url", url], ["check", "--timeout", "2", "--json", url]):
        run = subprocess.run(
            [sys.executable, "-m", "neondoctor", *argv], capture_output=True, text=True, env=env, timeout=30
        )
        assert run.returncode in (0, 1), run.stderr
        if "--json" in argv:
            json.loads(run.stdout)
        output = run.stdout + run.stderr
        assert f":{pw}@" not in output and f":{quote(pw, safe='')}@" not in output
        if len(pw) >= 6 and pw != "postgres":
            for form in encodings(pw):
                assert form not in output, argv[0]
