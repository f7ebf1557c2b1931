"""What the tables line says, word for word, on a real server: present, near misses, unreadable, counts.

A database of its own (``words``) keeps these tables out of the other tests' way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from pgcluster import PgCluster

from neondoctor.probes import tables
from neondoctor.probes.base import CheckContext, CheckOptions, ProbeResult
from neondoctor.target import parse_target

WORDS_SQL = """
SET ROLE alice;
CREATE TABLE public.users (id int);
CREATE TABLE public.orders (id int);
CREATE TABLE public."Accounts" (id int);
CREATE SCHEMA billing;
CREATE TABLE billing.invoices (id int);
CREATE VIEW billing.totals AS SELECT 1 AS n;
CREATE TABLE billing.refunds (id int);
CREATE SCHEMA secret;
CREATE TABLE secret.notes (id int);
GRANT USAGE ON SCHEMA billing TO bob;
GRANT SELECT ON public.users, public."Accounts", billing.invoices, secret.notes TO bob;
RESET ROLE;
"""


@pytest.fixture(scope="module")
def words(pg: PgCluster) -> PgCluster:
    if not pg.execute("select 1 from pg_database where datname = 'words'"):
        pg.execute("CREATE DATABASE words OWNER alice")
        with pg.admin("words") as conn:
            conn.execute(WORDS_SQL)
    return pg


@pytest.fixture
def line(words: PgCluster) -> Iterator[Any]:
    sessions: list[Any] = []

    def run(expect: list[str], user: str = "alice", **params: Any) -> ProbeResult:
        url = words.url(user, dbname="words", sslmode="require", **params)
        ctx = CheckContext(parse_target(url), CheckOptions(expect_tables=expect))
        ctx.session = psycopg.connect(**words.conninfo(user, dbname="words", sslmode="require", **params),
                                      autocommit=True)
        sessions.append(ctx.session)
        return tables.run(ctx)

    yield run
    for session in sessions:
        session.close()


def said(result: ProbeResult) -> tuple[str, str, str | None, bool, list[tuple[str, str]]]:
    return (str(result.status), result.summary, result.next_step, result.exact_next_step,
            [(m["id"], m["excerpt"]) for m in result.matches])


def test_one_table_present(line: Any) -> None:
    result = line(["users"])
    assert said(result) == ("pass", "public.users is present and readable", None, False, [])
    assert result.details == {
        "search_path": '"$user", public',
        "expected": [{"name": "users", "found": "public.users", "kind": "table", "status": "ok"}],
    }


def test_several_tables_and_a_view_present(line: Any) -> None:
    result = line(["users", '"Accounts"', "billing.totals"])
    assert said(result)[:2] == (
        "pass", 'all 3 expected tables are present and readable: public.users, public."Accounts", billing.totals'
    )
    assert [e["kind"] for e in result.details["expected"]] == ["table", "table", "view"]


MISSING = ("tables-relation-missing", 'ERROR:  relation "{}" does not exist')


@pytest.mark.parametrize(
    ("written", "shown", "use", "why", "relation"),
    [
        ("accounts", "accounts", '"Accounts"', "mixed case: it must be double-quoted", "accounts"),
        ("invoices", "invoices", "billing.invoices",
         'schema billing is not on the search_path: "$user", public', "invoices"),
        ("public.invoices", "public.invoices", "billing.invoices", "in schema billing, not public",
         "public.invoices"),
        ("user", "user", "users", "similar name", "user"),
        ("billing.invoice", "billing.invoice", "billing.invoices", "similar name", "billing.invoice"),
        ("refund", "refund", "billing.refunds", "similar name", "refund"),
    ],
)
def test_a_missing_table_with_a_near_match(line: Any, written: str, shown: str, use: str, why: str,
                                           relation: str) -> None:
    result = line([written, "users"])
    assert said(result) == (
        "fail", f"missing: {shown} (did you mean {use}?)", f"Use {use} instead of {written} ({why})", True,
        [(MISSING[0], MISSING[1].format(relation))],
    )
    entry = result.details["expected"][0]
    assert entry == {"name": written, "status": "missing", "near": [f"{use} ({why})", *entry["near"][1:]]}


def test_a_missing_table_with_nothing_near(line: Any) -> None:
    result = line(['"Nosuch"', "users"])
    assert said(result) == (
        "fail", 'missing: "Nosuch"',
        'Check the database and branch in the connection string, and that the migrations ran (no table named like '
        '"Nosuch" anywhere in this database)',
        True, [(MISSING[0], MISSING[1].format("Nosuch"))],
    )
    assert result.details["expected"][0] == {"name": '"Nosuch"', "status": "missing"}


def test_tables_the_role_may_not_read(line: Any, words: PgCluster) -> None:
    secret = words.passwords["bob"]
    no_select = line(["orders", "users"], user="bob")
    assert said(no_select) == (
        "fail", "not readable by bob: public.orders", "GRANT SELECT ON public.orders TO bob; (as the table owner)",
        True, [("tables-permission-denied", "ERROR:  permission denied for table orders")],
    )
    assert no_select.details["expected"][0] == {
        "name": "orders", "found": "public.orders", "kind": "table", "status": "not readable", "reason": "no SELECT"
    }
    no_usage = line(["secret.notes"], user="bob")
    assert said(no_usage) == (
        "fail", "not readable by bob: secret.notes", "GRANT USAGE ON SCHEMA secret TO bob; (as the schema owner)",
        True, [("tables-schema-permission-denied", "ERROR:  permission denied for schema secret")],
    )
    assert no_usage.details["expected"][0]["reason"] == "no USAGE on schema secret"
    both = line(["nosuch", "orders", "secret.notes"], user="bob")
    assert said(both)[:3] == (
        "fail", "missing: nosuch; not readable by bob: public.orders, secret.notes",
        "Check the database and branch in the connection string, and that the migrations ran (no table named like "
        "nosuch anywhere in this database)",
    )
    assert [m["id"] for m in both.matches] == ["tables-relation-missing", "tables-permission-denied"]
    assert secret not in str(both.details)


def test_without_expectations_the_tables_are_counted(line: Any) -> None:
    result = line([])
    assert said(result)[:3] == (
        "pass", "3 tables on the search_path (public: 3); name the ones the app needs with --expect-table", None
    )
    assert result.details == {"search_path": '"$user", public', "on_search_path": {"public": 3},
                              "other_schemas": {"billing": 2, "secret": 1}}
    one = line([], options="-csearch_path=secret")
    assert one.summary == "1 table on the search_path (secret: 1); name the ones the app needs with --expect-table"
    elsewhere = line([], options="-csearch_path=nowhere")
    assert said(elsewhere)[:3] == (
        "warn", "no tables on the search_path (nowhere), but some in other schemas (public: 3, billing: 2, secret: 1)",
        "Qualify table names (public.NAME) or set the search_path, e.g. options=-csearch_path%3Dpublic,public in the "
        "connection string",
    )


def test_an_empty_database(pg: PgCluster) -> None:
    url = pg.url("postgres", dbname="postgres", sslmode="require")
    ctx = CheckContext(parse_target(url), CheckOptions())
    with psycopg.connect(**pg.conninfo("postgres", dbname="postgres", sslmode="require"), autocommit=True) as conn:
        ctx.session = conn
        result = tables.run(ctx)
    assert said(result)[:3] == (
        "warn", "no tables in database postgres: a wrong database or branch, or migrations not run yet",
        "Check the database name and the Neon branch in the connection string, then run the migrations",
    )
    assert result.details == {"search_path": '"$user", public', "on_search_path": {}, "other_schemas": {}}


def test_no_session_is_a_skip() -> None:
    result = tables.run(CheckContext(parse_target("postgresql://a@h.invalid/app"), CheckOptions()))
    assert said(result)[:2] == ("skip", "no session (auth did not connect)")
