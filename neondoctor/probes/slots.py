"""slots: how many more connections this role can open, and a pool size that fits.

One read-only query on the session auth opened. Non-superusers cannot use the
``superuser_reserved_connections`` (nor, on PostgreSQL 16+, ``reserved_connections`` without
``pg_use_reserved_connections``); ``rolconnlimit`` and ``datconnlimit`` bound them further.
Without ``pg_read_all_stats`` other roles' backends show no ``backend_type``, so those count as
client backends when they are attached to a database and a role (an estimate, said so in details).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neondoctor.probes.auth import query, query_failed
from neondoctor.probes.base import CheckContext, ProbeResult, Status

name = "slots"
WARN_USED_RATIO = 0.8

SLOTS_SQL = """
with me as (
  select r.oid, r.rolname, r.rolsuper, r.rolconnlimit,
         exists (select 1 from pg_roles u where u.rolname = 'pg_use_reserved_connections'
                 and pg_has_role(r.oid, u.oid, 'USAGE')) as may_use_reserved,
         r.rolsuper or pg_has_role(r.oid, 'pg_read_all_stats', 'USAGE') as sees_all
  from pg_roles r where r.rolname = session_user
), db as (
  select d.oid, d.datname, d.datconnlimit from pg_database d where d.datname = current_database()
), clients as (
  select a.datid, a.usesysid, coalesce(a.state, case when a.backend_type is null then 'hidden' end, 'unknown') as state
  from pg_stat_activity a
  where a.backend_type = 'client backend'
     or (a.backend_type is null and a.datid is not null and a.usesysid is not null)
)
select current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int,
       coalesce(nullif(current_setting('reserved_connections', true), ''), '0')::int,
       me.rolname, me.rolsuper, me.rolconnlimit, me.may_use_reserved, me.sees_all,
       db.datname, db.datconnlimit,
       (select count(*) from clients)::int,
       (select count(*) from clients c where c.usesysid = me.oid)::int,
       (select count(*) from clients c where c.datid = db.oid)::int,
       (select coalesce(json_object_agg(s.state, s.n), '{}'::json)
          from (select state, count(*) as n from clients group by state) s)
from me, db
"""


@dataclass
class Limit:
    """One connection limit that applies to this login, and how much of it is used."""

    name: str
    capacity: int
    used: int
    next_error: str
    """What PostgreSQL says to the connection that finds this limit reached."""

    @property
    def left(self) -> int:
        return max(0, self.capacity - self.used)


def run(ctx: CheckContext) -> ProbeResult:
    if ctx.session is None:
        return ProbeResult(name, Status.SKIP, "no session (auth did not connect)")
    try:
        rows = query(ctx, SLOTS_SQL)
    except Exception as exc:
        return query_failed(ctx, name, "could not read the connection limits", exc)
    row = rows[0] if rows else None
    if row is None:
        return ProbeResult(name, Status.WARN, "could not read this role's or database's connection limits")
    (max_conn, su_reserved, reserved, role, superuser, rolconnlimit, may_use_reserved, sees_all,
     database, datconnlimit, in_use, role_in_use, db_in_use, by_state) = row
    limits = _limits(
        max_conn, su_reserved, reserved, role, superuser, rolconnlimit, may_use_reserved,
        database, datconnlimit, in_use, role_in_use, db_in_use, int(ctx.facts.get("server_version_num") or 0),
    )
    binding = min(limits, key=lambda limit: (limit.left, limit.capacity))
    left = binding.left
    used_ratio = 1 - left / binding.capacity if binding.capacity > 0 else 1.0
    details: dict[str, Any] = {
        "max_connections": max_conn,
        "superuser_reserved_connections": su_reserved,
        "reserved_connections": reserved,
        "role": role,
        "superuser": superuser,
        "may_use_reserved": bool(may_use_reserved),
        "rolconnlimit": rolconnlimit,
        "database": database,
        "datconnlimit": datconnlimit,
        "in_use": in_use,
        "in_use_by_role": role_in_use,
        "in_use_by_database": db_in_use,
        "by_state": dict(by_state or {}),
        "counts": "exact" if sees_all else "estimated (other roles' backends are hidden without pg_read_all_stats)",
        "limited_by": binding.name,
        "usable": binding.capacity,
        "left": left,
        "used_pct": round(used_ratio * 100),
    }
    pool = pool_advice(left)
    details.update(pool)
    summary = f"{left} of {binding.capacity} slots left for {role} ({binding.name}; {in_use} in use in total)"
    pooler = _pooler_hint(ctx)
    if left <= 0:
        from neondoctor.checklist import explain_failure

        return ProbeResult(
            name,
            Status.FAIL,
            f"no connection slot left for {role}: {binding.name} reached ({binding.used} of {binding.capacity} used); "
            "the app's next connection fails",
            details=details,
            matches=explain_failure(binding.next_error, ctx.options.rules_dirs),
            next_step=f"Close idle connections or raise the limit ({binding.name}); {pooler}",
            exact_next_step=True,
        )
    if used_ratio >= WARN_USED_RATIO:
        return ProbeResult(
            name,
            Status.WARN,
            f"{summary}: {round(used_ratio * 100)} % used",
            details=details,
            next_step=f"Keep each app's pool small: {pool['advice']}; {pooler}",
        )
    return ProbeResult(name, Status.PASS, summary, details=details, next_step=pool["advice"])


def _limits(
    max_conn: int, su_reserved: int, reserved: int, role: str, superuser: bool, rolconnlimit: int,
    may_use_reserved: bool, database: str, datconnlimit: int, in_use: int, role_in_use: int, db_in_use: int,
    version: int,
) -> list[Limit]:
    if version and version < 160000:
        reserved_error = "FATAL:  remaining connection slots are reserved for non-replication superuser connections"
    else:
        reserved_error = "FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute"
    if superuser:
        limits = [Limit("max_connections", max_conn, in_use, "FATAL:  sorry, too many clients already")]
    elif may_use_reserved or not reserved:
        limits = [Limit("max_connections - superuser_reserved_connections", max_conn - su_reserved, in_use,
                        reserved_error)]
    else:
        limits = [
            Limit(
                "max_connections - superuser_reserved_connections - reserved_connections",
                max_conn - su_reserved - reserved,
                in_use,
                "FATAL:  remaining connection slots are reserved for roles with privileges of the "
                '"pg_use_reserved_connections" role',
            )
        ]
    if not superuser and rolconnlimit >= 0:
        limits.append(
            Limit(
                f"rolconnlimit of {role}", rolconnlimit, role_in_use, f'FATAL:  too many connections for role "{role}"'
            )
        )
    if not superuser and datconnlimit >= 0:
        limits.append(
            Limit(
                f"datconnlimit of {database}",
                datconnlimit,
                db_in_use,
                f'FATAL:  too many connections for database "{database}"',
            )
        )
    return limits


def pool_advice(left: int) -> dict[str, Any]:
    """A SQLAlchemy pool that fits in the slots left, when the number of app instances is unknown."""
    pool_size = min(5, max(1, left // 2))
    max_overflow = max(0, min(pool_size, left - pool_size))
    if left <= 0:
        return {
            "pool_size": 0,
            "max_overflow": 0,
            "advice": "no pool fits: every slot this role can use is taken",
        }
    return {
        "pool_size": pool_size,
        "max_overflow": max_overflow,
        "advice": f"pool_size={pool_size}, max_overflow={max_overflow} per app instance "
        f"(pool_size + max_overflow = {pool_size + max_overflow} ≤ {left} slots left; "
        f"with N instances keep N × {pool_size + max_overflow} ≤ {left})",
    }


def _pooler_hint(ctx: CheckContext) -> str:
    neon = ctx.target.neon
    if neon is not None and not neon.pooled:
        return (
            f"for many clients use Neon's pooled host ({neon.endpoint_id}-pooler.…, PgBouncer with up to "
            "10,000 client connections)"
        )
    if neon is not None:
        return "this is already Neon's pooled host: lower the pool sizes or use a larger compute"
    return "for many clients put a pooler in front (PgBouncer; on Neon the -pooler host)"
