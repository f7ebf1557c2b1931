"""Pool sizing: will the app's pools fit in the connection slots this role has on the server?

The worst case is every pool full: (pool_size + max_overflow) per engine, summed over the engines in
one process, times the processes × threads that each hold their own pools. That is compared with the
slots left for this role, read from the live server with the slots probe's own query and limits
(max_connections less the reserved slots, rolconnlimit, datconnlimit, the connections in use), or
with ``--max-connections`` offline. ``--from FILE`` reads the numbers from the ``create_engine(...)``
calls in a Python file with :mod:`ast`: the file is never imported or run.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neondoctor.target import Target

SQLALCHEMY_POOL_SIZE = 5
SQLALCHEMY_MAX_OVERFLOW = 10
TIGHT_RATIO = 0.8
"""Above this share of the slots left, a burst or a deploy (old and new workers overlap) tips it over."""
NEON_SUSPEND_SECONDS = 300
NEON_RECYCLE_SECONDS = 240
NEON_POOLER_CLIENTS = 10_000
DEFAULT_SUPERUSER_RESERVED = 3
ENGINE_CALLS = ("create_engine", "create_async_engine", "engine_from_config")


class PoolFileError(Exception):
    """The --from file cannot be read or parsed: a usage problem."""


@dataclass
class Engine:
    line: int
    pool_size: int = SQLALCHEMY_POOL_SIZE
    max_overflow: int = SQLALCHEMY_MAX_OVERFLOW
    pool_recycle: int = -1
    pre_ping: bool = False
    poolclass: str | None = None

    @property
    def worst(self) -> int | None:
        """Most connections this engine opens at once; None when its pool has no bound (NullPool)."""
        if self.poolclass in ("NullPool",):
            return None
        if self.poolclass in ("StaticPool", "SingletonThreadPool", "AssertionPool"):
            return 1
        if self.max_overflow < 0:
            return None
        return self.pool_size + self.max_overflow


@dataclass
class PoolPlan:
    engines: list[Engine]
    workers: int = 1
    source: str = "options"
    notes: list[str] = field(default_factory=list)

    @property
    def per_worker(self) -> int | None:
        sizes = [engine.worst for engine in self.engines]
        return None if any(size is None for size in sizes) else sum(s for s in sizes if s is not None)

    @property
    def worst(self) -> int | None:
        per = self.per_worker
        return None if per is None else per * self.workers

    @property
    def steady(self) -> int:
        return sum(engine.pool_size for engine in self.engines) * self.workers


def plan_from_options(pool_size: int | None, max_overflow: int | None, pool_recycle: int | None,
                      pre_ping: bool | None, workers: int) -> PoolPlan:
    engine = Engine(
        line=0,
        pool_size=SQLALCHEMY_POOL_SIZE if pool_size is None else pool_size,
        max_overflow=SQLALCHEMY_MAX_OVERFLOW if max_overflow is None else max_overflow,
        pool_recycle=-1 if pool_recycle is None else pool_recycle,
        pre_ping=bool(pre_ping),
    )
    return PoolPlan([engine], workers=workers)


def plan_from_file(path: Path, *, workers: int, overrides: dict[str, Any]) -> PoolPlan:
    """The engines created in ``path`` (parsed, never run); options given on the command line win."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PoolFileError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise PoolFileError(f"{path}:{exc.lineno}: not valid Python ({exc.msg})") from None
    constants = _module_constants(tree)
    notes: list[str] = []
    engines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node.func) in ENGINE_CALLS:
            engines.append(_engine_from_call(node, constants, notes, path))
    if not engines:
        raise PoolFileError(f"{path}: no create_engine(...) or create_async_engine(...) call found")
    engines.sort(key=lambda engine: engine.line)
    for engine in engines:
        for key, value in overrides.items():
            if value is not None:
                setattr(engine, key, value)
    if len(engines) > 1:
        notes.append(f"{len(engines)} engines in {path.name}: each has its own pool, so their sizes add up")
    return PoolPlan(engines, workers=workers, source=f"file:{path}", notes=notes)


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _module_constants(tree: ast.Module) -> dict[str, Any]:
    constants: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = _literal(node.value, constants)
            if value is not None:
                constants[node.targets[0].id] = value
    return constants


def _literal(node: ast.expr, constants: dict[str, Any]) -> Any:
    """A constant, a module-level name bound to one, or the default of int(os.getenv("X", "5"))."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _literal(node.operand, constants)
        return -inner if isinstance(inner, int) else None
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.Call):
        name = _call_name(node.func)
        if name in ("int", "bool") and node.args:
            inner = _literal(node.args[0], constants)
            try:
                return int(inner) if name == "int" else inner not in (None, "", "0", "false", "False")
            except (TypeError, ValueError):
                return None
        if name in ("getenv", "get") and len(node.args) >= 2:
            return _literal(node.args[1], constants)
    return None


def _engine_from_call(node: ast.Call, constants: dict[str, Any], notes: list[str], path: Path) -> Engine:
    engine = Engine(line=node.lineno)
    for keyword in node.keywords:
        name = keyword.arg
        if name == "poolclass":
            engine.poolclass = keyword.value.id if isinstance(keyword.value, ast.Name) else _call_name(keyword.value)
            continue
        if name not in ("pool_size", "max_overflow", "pool_recycle", "pool_pre_ping"):
            continue
        value = _literal(keyword.value, constants)
        if value is None or (name != "pool_pre_ping" and not isinstance(value, int)):
            notes.append(f"{path.name}:{keyword.value.lineno}: {name} is computed at run time; "
                         f"using SQLAlchemy's default (pass --{name.replace('_', '-')} to say it)")
            continue
        if name == "pool_pre_ping":
            engine.pre_ping = bool(value)
        else:
            setattr(engine, name, int(value))
    return engine


# --------------------------------------------------------------------------- the server's side


@dataclass
class Capacity:
    """Slots this role can still open, and what bounds them."""

    left: int
    limited_by: str
    next_error: str
    source: str
    """``live`` (read from the server) or ``offline`` (--max-connections)."""
    details: dict[str, Any] = field(default_factory=dict)


def offline_capacity(max_connections: int, reserved: int = DEFAULT_SUPERUSER_RESERVED) -> Capacity:
    left = max(0, max_connections - reserved)
    return Capacity(
        left=left,
        limited_by=f"max_connections - superuser_reserved_connections ({max_connections} - {reserved}, assumed)",
        next_error="FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute",
        source="offline",
        details={"max_connections": max_connections, "superuser_reserved_connections": reserved},
    )


def live_capacity(target: Target, timeout: float) -> Capacity:
    """One connection, the slots probe's query; our own connection is not counted as in use."""
    import psycopg

    from neondoctor.probes.slots import SLOTS_SQL, _limits

    with psycopg.connect(**target.connect_kwargs(), connect_timeout=max(1, round(timeout)), autocommit=True) as conn:
        row = conn.execute(SLOTS_SQL).fetchone()
        version = conn.info.server_version
    if row is None:
        raise RuntimeError("the server did not return its connection limits")
    (max_conn, su_reserved, reserved, role, superuser, rolconnlimit, may_use_reserved, sees_all,
     database, datconnlimit, in_use, role_in_use, db_in_use, _by_state) = row
    limits = _limits(max_conn, su_reserved, reserved, role, superuser, rolconnlimit, may_use_reserved, database,
                     datconnlimit, in_use - 1, role_in_use - 1, db_in_use - 1, version)
    binding = min(limits, key=lambda limit: (limit.left, limit.capacity))
    return Capacity(
        left=binding.left,
        limited_by=f"{binding.name} ({binding.used} of {binding.capacity} in use)",
        next_error=binding.next_error,
        source="live",
        details={
            "max_connections": max_conn,
            "superuser_reserved_connections": su_reserved,
            "reserved_connections": reserved,
            "role": role,
            "rolconnlimit": rolconnlimit,
            "database": database,
            "datconnlimit": datconnlimit,
            "in_use": in_use - 1,
            "in_use_by_role": role_in_use - 1,
            "counts": "exact" if sees_all else "estimated (other roles' backends are hidden without "
            "pg_read_all_stats)",
        },
    )


# --------------------------------------------------------------------------- the verdict


@dataclass
class PoolVerdict:
    status: str
    """``fits``, ``tight`` or ``will-fail``."""
    summary: str
    worst: int | None
    steady: int
    capacity: Capacity
    plan: PoolPlan
    suggestion: dict[str, int] | None
    advice: list[str]

    @property
    def failed(self) -> bool:
        return self.status == "will-fail"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "summary": self.summary,
            "worst_case": self.worst,
            "steady": self.steady,
            "workers": self.plan.workers,
            "source": self.plan.source,
            "engines": [
                {"line": e.line or None, "pool_size": e.pool_size, "max_overflow": e.max_overflow,
                 "pool_recycle": e.pool_recycle, "pool_pre_ping": e.pre_ping, "poolclass": e.poolclass}
                for e in self.plan.engines
            ],
            "slots": {
                "source": self.capacity.source,
                "left": self.capacity.left,
                "limited_by": self.capacity.limited_by,
                "next_error": self.capacity.next_error,
                **self.capacity.details,
            },
            "suggestion": self.suggestion,
            "advice": self.advice,
            "notes": self.plan.notes,
        }


def judge(plan: PoolPlan, capacity: Capacity, target: Target | None) -> PoolVerdict:
    worst, left = plan.worst, capacity.left
    neon = target.neon if target is not None else None
    pooled = neon is not None and neon.pooled
    budget = NEON_POOLER_CLIENTS if pooled else left
    workers = plan.workers
    if worst is None:
        status = "will-fail"
        summary = (f"an engine has no bound on its connections (NullPool or max_overflow=-1): under load "
                   f"{workers} worker(s) open as many as they have requests, and the server has {left} left")
    elif worst > budget:
        status = "will-fail"
        summary = (f"worst case {worst} connections ({_formula(plan)}) > {budget} "
                   f"{'pooler client slots' if pooled else 'slots left'}: connection number {budget + 1} "
                   f"fails with {capacity.next_error.removeprefix('FATAL:  ')!r}")
    elif worst > TIGHT_RATIO * budget:
        status = "tight"
        summary = (f"worst case {worst} connections ({_formula(plan)}) fits in {budget} slots left, with "
                   f"{budget - worst} to spare: a deploy that overlaps old and new workers, or a psql session, "
                   "tips it over")
    else:
        status = "fits"
        summary = f"worst case {worst} connections ({_formula(plan)}) fits in {budget} slots left"
    suggestion = _suggest(plan, int(budget * TIGHT_RATIO)) if status != "fits" else None
    advice = []
    if suggestion is not None:
        if suggestion["pool_size"] == 0:
            advice.append(f"no pool fits: {workers} workers with {int(budget * TIGHT_RATIO)} slots to share leave "
                          "none per worker; fewer workers, or a pooler in front")
        else:
            advice.append(f"pool_size={suggestion['pool_size']}, max_overflow={suggestion['max_overflow']} per "
                          f"engine: worst case {suggestion['worst_case']} ≤ {int(budget * TIGHT_RATIO)} "
                          f"({round(TIGHT_RATIO * 100)} % of {budget})")
    if neon is not None and not pooled and status != "fits":
        host = (target.host or "").replace(neon.endpoint_id, f"{neon.endpoint_id}-pooler", 1) if target else ""
        advice.append(f"or use Neon's pooled host {host}: PgBouncer takes up to {NEON_POOLER_CLIENTS:,} client "
                      "connections and shares the compute's slots among them (transaction mode: no session "
                      "state; run migrations on the direct host)")
    elif neon is None and status != "fits":
        advice.append("or put a pooler (PgBouncer) in front of the server")
    if any(not engine.pre_ping for engine in plan.engines):
        advice.append("pool_pre_ping=True: a connection the server or a proxy closed while idle is replaced "
                      "instead of failing the request" + (" (Neon suspends an idle compute after 5 minutes)"
                                                          if neon else ""))
    if neon is not None and any(e.pool_recycle < 0 or e.pool_recycle >= NEON_SUSPEND_SECONDS for e in plan.engines):
        advice.append(f"pool_recycle={NEON_RECYCLE_SECONDS}: under Neon's 5-minute suspend, so that no pooled "
                      "connection outlives the compute it was opened on")
    return PoolVerdict(status, summary, worst, plan.steady, capacity, plan, suggestion, advice)


def _formula(plan: PoolPlan) -> str:
    engines = " + ".join(f"({e.pool_size} + {e.max_overflow})" for e in plan.engines)
    return f"{engines} × {plan.workers} worker(s)" if len(plan.engines) == 1 else f"[{engines}] × {plan.workers}"


def _suggest(plan: PoolPlan, budget: int) -> dict[str, int]:
    """The largest pool, split like the user's, whose worst case over every worker fits ``budget``."""
    per_engine = budget // (plan.workers * len(plan.engines))
    if per_engine < 1:
        return {"pool_size": 0, "max_overflow": 0, "worst_case": 0}
    current = plan.engines[0]
    pool_size = max(1, min(current.pool_size, per_engine))
    max_overflow = max(0, min(max(current.max_overflow, 0), per_engine - pool_size))
    return {"pool_size": pool_size, "max_overflow": max_overflow,
            "worst_case": (pool_size + max_overflow) * plan.workers * len(plan.engines)}
