"""The persistence drill: the one neondoctor step that writes, and only when asked.

Connection 1 creates ``neondoctor_drill_<random>``, inserts a random token, commits and closes.
Connection 2 reads the token back and drops the table. If the data is not there, writes are not
reaching the database the app reads (a rolled-back transaction, a different branch or server
behind the same name, an ephemeral database). Before writing it asks the server whether it can:
a standby, a read-only session or a missing CREATE privilege get a clear message and no failed
statement in the server log. The table is dropped even when a step fails, from a fresh connection
if the second one died.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neondoctor.target import Target

TABLE_PREFIX = "neondoctor_drill_"

PREFLIGHT_SQL = """
select current_user::text, current_schema()::text, pg_is_in_recovery(),
       current_setting('transaction_read_only'), current_setting('default_transaction_read_only'),
       case when current_schema() is null then false
            else has_schema_privilege(current_schema(), 'CREATE') end
"""

Hook = Callable[[str, Any], None]
"""Called as ``hook(step, connection)`` before each step: lets a test break the drill mid-way."""


class DrillRefused(Exception):
    """The server says it cannot take the write: nothing was written."""

    def __init__(self, message: str, next_step: str) -> None:
        super().__init__(message)
        self.next_step = next_step


@dataclass
class Step:
    name: str
    ok: bool
    ms: float
    error: str | None = None


@dataclass
class DrillResult:
    status: str
    """``persisted``, ``lost``, ``refused`` or ``failed``."""
    summary: str
    next_step: str | None
    table: str | None
    schema: str | None = None
    write_ms: float | None = None
    read_ms: float | None = None
    persisted: bool | None = None
    cleaned: bool = True
    steps: list[Step] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status != "persisted"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "summary": self.summary,
            "next_step": self.next_step,
            "table": self.table,
            "db_schema": self.schema,
            "write_ms": self.write_ms,
            "read_ms": self.read_ms,
            "persisted": self.persisted,
            "cleaned": self.cleaned,
            "steps": [{"name": s.name, "ok": s.ok, "ms": s.ms, "error": s.error} for s in self.steps],
        }


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


def run_drill(target: Target, *, timeout: float = 5.0, hook: Hook | None = None) -> DrillResult:
    import psycopg
    from psycopg import sql

    redact = target.redactor
    table = TABLE_PREFIX + secrets.token_hex(6)
    token = secrets.token_urlsafe(16)
    connect = {**target.connect_kwargs(), "connect_timeout": max(1, round(timeout))}
    statement_timeout = f"{round(timeout * 1000)}ms"
    steps: list[Step] = []
    created_in: str | None = None
    qualified: Any = None
    result: DrillResult | None = None

    def call(step: str, conn: Any) -> None:
        if hook is not None:
            hook(step, conn)

    started = time.perf_counter()
    try:
        with psycopg.connect(**connect) as conn:
            conn.execute(sql.SQL("set statement_timeout = {}").format(sql.Literal(statement_timeout)))
            conn.commit()
            role, schema, standby, read_only, default_read_only, may_create = conn.execute(PREFLIGHT_SQL).fetchone()
            conn.rollback()
            _refuse_if_cannot_write(role, schema, standby, read_only, default_read_only, may_create)
            qualified = sql.Identifier(schema, table)
            call("write", conn)
            conn.execute(sql.SQL("create table {} (token text not null)").format(qualified))
            created_in = schema
            call("insert", conn)
            conn.execute(sql.SQL("insert into {} (token) values ({})").format(qualified, sql.Literal(token)))
            conn.commit()
        write_ms = _ms(started)
        steps.append(Step("write", True, write_ms))
    except DrillRefused as exc:
        return DrillResult("refused", str(exc), exc.next_step, None, steps=steps)
    except psycopg.Error as exc:
        steps.append(Step("write", False, _ms(started), _error_text(exc, redact)))
        result = DrillResult("failed", f"the write step failed: {_error_text(exc, redact)}",
                             "Run `neondoctor check` with the same string to find which layer fails", table,
                             steps=steps)
        if created_in is None:
            return result

    if result is None:
        started = time.perf_counter()
        try:
            with psycopg.connect(**connect) as conn:
                conn.execute(sql.SQL("set statement_timeout = {}").format(sql.Literal(statement_timeout)))
                call("read", conn)
                row = conn.execute(sql.SQL("select token from {}").format(qualified)).fetchone()
                read_ms = _ms(started)
                conn.execute(sql.SQL("drop table {}").format(qualified))
                conn.commit()
                created_in = None
            persisted = row is not None and row[0] == token
            steps.append(Step("read", True, read_ms))
            if persisted:
                result = DrillResult(
                    "persisted",
                    f"wrote a row and read it back from a new connection: write {write_ms:.0f} ms "
                    f"(connect, create, insert, commit), read {read_ms:.0f} ms (connect, select)",
                    None, table, schema, write_ms, read_ms, True, steps=steps,
                )
            else:
                result = DrillResult(
                    "lost",
                    "the committed row is not there from a new connection: writes do not reach the database "
                    "that reads come from",
                    "Check that the host is not a pooler in front of several databases, that no proxy or "
                    "middleware rolls back, and that the branch is not reset (Neon: branch restore or reset)",
                    table, schema, write_ms, read_ms, False, steps=steps,
                )
        except psycopg.Error as exc:
            steps.append(Step("read", False, _ms(started), _error_text(exc, redact)))
            result = DrillResult("failed", f"the read step failed: {_error_text(exc, redact)}",
                                 "Run `neondoctor check` with the same string; then run the drill again", table,
                                 schema, write_ms, steps=steps)
    if created_in is not None:
        result.cleaned = _drop(connect, qualified)
        if not result.cleaned:
            result.next_step = (f"Remove the scratch table yourself: DROP TABLE {created_in}.{table}; "
                                + (result.next_step or ""))
    return result


def _refuse_if_cannot_write(role: str, schema: str | None, standby: bool, read_only: str, default_read_only: str,
                            may_create: bool) -> None:
    if standby:
        raise DrillRefused(
            "the server is a standby (read replica): it cannot take writes",
            "Point the drill (and the app's writes) at the primary; on Neon, the read-write compute's host",
        )
    if read_only == "on" or default_read_only == "on":
        raise DrillRefused(
            f"the session of {role} is read-only (default_transaction_read_only is on for this role, database "
            "or server)",
            f"Use a role that may write, or as its owner: ALTER ROLE {role} SET default_transaction_read_only = off",
        )
    if schema is None:
        raise DrillRefused(
            f"no schema in {role}'s search_path exists, so there is nowhere to create a table",
            f"Create one or fix the search_path: ALTER ROLE {role} SET search_path = public",
        )
    if not may_create:
        raise DrillRefused(
            f"{role} has no CREATE privilege on schema {schema}, so it cannot create the scratch table "
            "(PostgreSQL 15+ no longer grants it on public to everyone)",
            f"As the schema's owner: GRANT CREATE ON SCHEMA {schema} TO {role}; or run the drill as the app's "
            "migration role",
        )


def _drop(connect: dict[str, Any], qualified: Any) -> bool:
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(**connect, autocommit=True) as conn:
            conn.execute(sql.SQL("drop table if exists {}").format(qualified))
        return True
    except psycopg.Error:
        return False


def _error_text(exc: Exception, redact: Callable[[str], str]) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact(text)
