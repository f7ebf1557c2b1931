"""What the slots line says, word for word, for each limit that can bind (a stand-in session gives the numbers).

The real-server tests (test_check.py) show the query against PostgreSQL; these pin the arithmetic and the words for
the limits one server version cannot show at once (reserved_connections, superusers, role and database limits).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from neondoctor.probes import slots
from neondoctor.probes.base import CheckContext, CheckOptions, ProbeResult
from neondoctor.target import parse_target

URL = "postgresql://alice:pw@db.example.test/app"
POOLER = "for many clients put a pooler in front (PgBouncer; on Neon the -pooler host)"


def row(**changes: Any) -> tuple[Any, ...]:
    values = {"max_conn": 100, "su_reserved": 3, "reserved": 0, "role": "alice", "superuser": False,
              "rolconnlimit": -1, "may_use_reserved": False, "sees_all": True, "database": "app", "datconnlimit": -1,
              "in_use": 10, "role_in_use": 4, "db_in_use": 6, "by_state": {"active": 1, "idle": 9}}
    values.update(changes)
    return tuple(values.values())


def slots_line(answer: Any, url: str = URL, version: int = 0) -> ProbeResult:
    def execute(sql: str, params: Any = None) -> Any:
        if isinstance(answer, Exception):
            raise answer
        return SimpleNamespace(fetchall=lambda: answer)

    ctx = CheckContext(parse_target(url), CheckOptions())
    ctx.session = SimpleNamespace(execute=execute, cancel_safe=lambda timeout: None)
    if version:
        ctx.facts["server_version_num"] = version
    return slots.run(ctx)


def said(result: ProbeResult) -> tuple[str, str, str | None, bool, str | None, str | None]:
    top = result.matches[0] if result.matches else {}
    return (str(result.status), result.summary, result.next_step, result.exact_next_step, top.get("id"),
            top.get("excerpt"))


def test_plenty_left_gives_the_pool_advice() -> None:
    result = slots_line([row()])
    advice = ("pool_size=5, max_overflow=5 per app instance (pool_size + max_overflow = 10 ≤ 87 slots left; with N "
              "instances keep N × 10 ≤ 87)")
    assert said(result) == (
        "pass", "87 of 97 slots left for alice (max_connections - superuser_reserved_connections; 10 in use in total)",
        advice, False, None, None,
    )
    assert result.details == {
        "max_connections": 100, "superuser_reserved_connections": 3, "reserved_connections": 0, "role": "alice",
        "superuser": False, "may_use_reserved": False, "rolconnlimit": -1, "database": "app", "datconnlimit": -1,
        "in_use": 10, "in_use_by_role": 4, "in_use_by_database": 6, "by_state": {"active": 1, "idle": 9},
        "counts": "exact", "limited_by": "max_connections - superuser_reserved_connections", "usable": 97,
        "left": 87, "used_pct": 10, "pool_size": 5, "max_overflow": 5, "advice": advice,
    }


@pytest.mark.parametrize(
    ("changes", "limit", "capacity"),
    [
        ({"superuser": True, "role": "postgres", "rolconnlimit": 1, "datconnlimit": 1}, "max_connections", 100),
        ({"reserved": 2}, "max_connections - superuser_reserved_connections - reserved_connections", 95),
        ({"reserved": 2, "may_use_reserved": True}, "max_connections - superuser_reserved_connections", 97),
        ({"rolconnlimit": 20}, "rolconnlimit of alice", 20),
        ({"datconnlimit": 30}, "datconnlimit of app", 30),
        ({"rolconnlimit": 10, "role_in_use": 5, "datconnlimit": 6, "db_in_use": 1}, "datconnlimit of app", 6),
        ({"rolconnlimit": 6, "role_in_use": 1, "datconnlimit": 10, "db_in_use": 5}, "rolconnlimit of alice", 6),
    ],
)
def test_the_tightest_limit_binds(changes: dict[str, Any], limit: str, capacity: int) -> None:
    result = slots_line([row(**changes)])
    assert (result.details["limited_by"], result.details["usable"]) == (limit, capacity)
    role = changes.get("role", "alice")
    assert f"of {capacity} slots left for {role} ({limit}; 10 in use in total)" in result.summary


def test_nearly_full_warns_at_eighty_percent_with_a_pool_that_fits() -> None:
    result = slots_line([row(datconnlimit=10, db_in_use=9, sees_all=False, by_state=None)])
    assert said(result)[:4] == (
        "warn", "1 of 10 slots left for alice (datconnlimit of app; 10 in use in total): 90 % used",
        "Keep each app's pool small: pool_size=1, max_overflow=0 per app instance (pool_size + max_overflow = 1 ≤ 1 "
        f"slots left; with N instances keep N × 1 ≤ 1); {POOLER}",
        False,
    )
    assert result.details["counts"] == "estimated (other roles' backends are hidden without pg_read_all_stats)"
    assert result.details["by_state"] == {} and result.details["used_pct"] == 90
    at_eighty = slots_line([row(datconnlimit=10, db_in_use=8)])
    assert str(at_eighty.status) == "warn" and at_eighty.summary.endswith(": 80 % used")
    below = slots_line([row(datconnlimit=10, db_in_use=7)])
    assert str(below.status) == "pass"


@pytest.mark.parametrize(
    ("changes", "version", "limit", "used", "capacity", "rule", "error"),
    [
        ({"rolconnlimit": 3, "role_in_use": 3}, 0, "rolconnlimit of alice", 3, 3, "slots-role-connection-limit",
         'FATAL:  too many connections for role "alice"'),
        ({"rolconnlimit": 0, "role_in_use": 0}, 0, "rolconnlimit of alice", 0, 0, "slots-role-connection-limit",
         'FATAL:  too many connections for role "alice"'),
        ({"datconnlimit": 5, "db_in_use": 7}, 0, "datconnlimit of app", 7, 5, "slots-database-connection-limit",
         'FATAL:  too many connections for database "app"'),
        ({"in_use": 97}, 150000, "max_connections - superuser_reserved_connections", 97, 97, "slots-reserved",
         "FATAL:  remaining connection slots are reserved for non-replication superuser connections"),
        ({"in_use": 97}, 160000, "max_connections - superuser_reserved_connections", 97, 97, "slots-reserved",
         "FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute"),
        ({"in_use": 95, "reserved": 2}, 170000,
         "max_connections - superuser_reserved_connections - reserved_connections", 95, 95, "slots-reserved",
         'FATAL:  remaining connection slots are reserved for roles with privileges of the '
         '"pg_use_reserved_connections" role'),
        ({"in_use": 100, "superuser": True}, 0, "max_connections", 100, 100, "slots-too-many-clients",
         "FATAL:  sorry, too many clients already"),
    ],
)
def test_a_full_limit_fails_with_the_error_the_next_connection_gets(
    changes: dict[str, Any], version: int, limit: str, used: int, capacity: int, rule: str, error: str
) -> None:
    result = slots_line([row(**changes)], version=version)
    assert said(result) == (
        "fail",
        f"no connection slot left for alice: {limit} reached ({used} of {capacity} used); the app's next connection "
        "fails",
        f"Close idle connections or raise the limit ({limit}); {POOLER}",
        True, rule, error,
    )
    assert result.details["left"] == 0 and result.details["used_pct"] == 100
    assert result.details["advice"] == "no pool fits: every slot this role can use is taken"


@pytest.mark.parametrize(
    ("host", "hint"),
    [
        ("ep-cool-darkness-123456.us-east-2.aws.neon.tech",
         "for many clients use Neon's pooled host (ep-cool-darkness-123456-pooler.…, PgBouncer with up to 10,000 "
         "client connections)"),
        ("ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech",
         "this is already Neon's pooled host: lower the pool sizes or use a larger compute"),
    ],
)
def test_the_pooler_hint_fits_the_host(host: str, hint: str) -> None:
    result = slots_line([row(rolconnlimit=1, role_in_use=1)], url=f"postgresql://alice:pw@{host}/app")
    assert result.next_step == f"Close idle connections or raise the limit (rolconnlimit of alice); {hint}"


def test_no_session_no_row_and_a_failed_query() -> None:
    ctx = CheckContext(parse_target(URL), CheckOptions())
    assert said(slots.run(ctx))[:2] == ("skip", "no session (auth did not connect)")
    assert said(slots_line([]))[:2] == ("warn", "could not read this role's or database's connection limits")
    failed = slots_line(RuntimeError("ERROR:  permission denied for view pg_stat_activity"))
    assert said(failed)[:3] == (
        "warn", "could not read the connection limits: permission denied for view pg_stat_activity",
        "Run the check again; if it persists, the role may lack access to the catalogue (pg_stat_activity, "
        "pg_class) or the server is overloaded",
    )
    assert failed.details == {"error": "ERROR:  permission denied for view pg_stat_activity", "sqlstate": None}
