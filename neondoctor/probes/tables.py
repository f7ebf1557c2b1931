"""tables: the tables the app expects are there and readable; near misses when they are not.

Names are read like PostgreSQL reads them: unquoted parts fold to lower case, double-quoted parts
keep their case (``billing."Invoices"``). Lookups go through the catalogue, not ``to_regclass``,
because ``to_regclass`` raises an error for a schema the role may not use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neondoctor.probes.auth import query, query_failed
from neondoctor.probes.base import CheckContext, ProbeResult, Status

name = "tables"
RELKINDS = "('r','p','v','m','f')"
USER_SCHEMAS = "n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp)'"
HINT_ROWS = 10_000

EXPECTED_SQL = f"""
with sp as (select s, i from unnest(current_schemas(true)) with ordinality as t(s, i)),
e as (select * from unnest(%s::text[], %s::text[]) with ordinality as e(schema, name, i))
select e.i, found.nspname, found.relname, found.relkind, found.usable, found.readable,
       current_setting('search_path')
from e left join lateral (
  select n.nspname, c.relname, c.relkind,
         has_schema_privilege(n.oid, 'USAGE') as usable,
         has_table_privilege(c.oid, 'SELECT') as readable
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  left join sp on sp.s = n.nspname
  where c.relname = e.name and c.relkind in {RELKINDS}
    and (n.nspname = e.schema or (e.schema is null and sp.i is not null))
  order by sp.i
  limit 1
) found on true
order by e.i
"""
CANDIDATES_SQL = f"""
select n.nspname, c.relname, n.nspname = any(current_schemas(false))
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in {RELKINDS} and {USER_SCHEMAS}
order by 1, 2
limit {HINT_ROWS}
"""
COUNT_SQL = f"""
select n.nspname, n.nspname = any(current_schemas(false)), count(*)::int, current_setting('search_path')
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and {USER_SCHEMAS}
group by 1, 2
order by 2 desc, 3 desc
"""
KIND_NAMES = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view", "f": "foreign table"}


class BadTableName(ValueError):
    pass


@dataclass(frozen=True)
class TableName:
    """A table the app expects, as written (schema optional)."""

    schema: str | None
    name: str
    written: str

    def display(self) -> str:
        return qualified(self.schema, self.name) if self.schema else quote_ident(self.name)


def quote_ident(part: str) -> str:
    if part and part == part.lower() and (part[0].isalpha() or part[0] == "_") and all(
        c.isalnum() or c in "_$" for c in part
    ):
        return part
    return '"' + part.replace('"', '""') + '"'


def qualified(schema: str | None, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}" if schema else quote_ident(table)


def parse_table_name(text: str) -> TableName:
    """``name``, ``schema.name``, with double-quoted parts kept as written."""
    parts: list[str] = []
    index, length = 0, len(text)
    while True:
        while index < length and text[index].isspace():
            index += 1
        if index < length and text[index] == '"':
            end = index + 1
            chunk = []
            while True:
                quote = text.find('"', end)
                if quote < 0:
                    raise BadTableName(f"unterminated quoted identifier in {text!r}")
                chunk.append(text[end:quote])
                if text[quote + 1 : quote + 2] == '"':
                    chunk.append('"')
                    end = quote + 2
                    continue
                index = quote + 1
                break
            part = "".join(chunk)
        else:
            end = index
            while end < length and text[end] not in '."':
                end += 1
            part = text[index:end].strip().lower()
            index = end
        if not part:
            raise BadTableName(f"empty name part in {text!r}")
        parts.append(part)
        while index < length and text[index].isspace():
            index += 1
        if index >= length:
            break
        if text[index] != ".":
            raise BadTableName(f"unexpected {text[index]!r} in {text!r}")
        index += 1
    if len(parts) > 2:
        raise BadTableName(f"{text!r} has {len(parts)} parts; use NAME or SCHEMA.NAME")
    schema = parts[0] if len(parts) == 2 else None
    return TableName(schema, parts[-1], text.strip())


def split_table_list(text: str) -> list[str]:
    """``a,b,"c,d"`` → ``['a', 'b', '"c,d"']``: commas inside double quotes do not split."""
    items, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


def run(ctx: CheckContext) -> ProbeResult:
    if ctx.session is None:
        return ProbeResult(name, Status.SKIP, "no session (auth did not connect)")
    try:
        if not ctx.options.expect_tables:
            return _count(ctx)
        return _expected(ctx, [parse_table_name(text) for text in ctx.options.expect_tables])
    except BadTableName:
        raise
    except Exception as exc:
        return query_failed(ctx, name, "could not read the catalogue", exc)


def _count(ctx: CheckContext) -> ProbeResult:
    rows = query(ctx, COUNT_SQL)
    search_path = rows[0][3] if rows else query(ctx, "show search_path")[0][0]
    on_path = {schema: count for schema, is_on_path, count, _ in rows if is_on_path}
    elsewhere = {schema: count for schema, is_on_path, count, _ in rows if not is_on_path}
    details: dict[str, Any] = {"search_path": search_path, "on_search_path": on_path, "other_schemas": elsewhere}
    total = sum(on_path.values())
    if total:
        spread = ", ".join(f"{schema}: {count}" for schema, count in on_path.items())
        return ProbeResult(
            name,
            Status.PASS,
            f"{total} table{'s' if total != 1 else ''} on the search_path ({spread}); "
            "name the ones the app needs with --expect-table",
            details=details,
        )
    if elsewhere:
        spread = ", ".join(f"{schema}: {count}" for schema, count in elsewhere.items())
        first = next(iter(elsewhere))
        return ProbeResult(
            name,
            Status.WARN,
            f"no tables on the search_path ({search_path}), but some in other schemas ({spread})",
            details=details,
            next_step=f"Qualify table names ({first}.NAME) or set the search_path, e.g. "
            f"options=-csearch_path%3D{first},public in the connection string",
        )
    return ProbeResult(
        name,
        Status.WARN,
        f"no tables in database {ctx.target.database or '(default)'}: a wrong database or branch, "
        "or migrations not run yet",
        details=details,
        next_step="Check the database name and the Neon branch in the connection string, then run the migrations",
    )


def _expected(ctx: CheckContext, expected: list[TableName]) -> ProbeResult:
    rows = query(ctx, EXPECTED_SQL, ([t.schema for t in expected], [t.name for t in expected]))
    search_path = rows[0][6] if rows else ""
    missing: list[TableName] = []
    unreadable: list[tuple[TableName, str, bool]] = []
    report: list[dict[str, Any]] = []
    for table, (_, schema, relname, relkind, usable, readable, _) in zip(expected, rows, strict=True):
        entry: dict[str, Any] = {"name": table.written}
        if schema is None:
            missing.append(table)
            entry["status"] = "missing"
        else:
            entry["found"] = qualified(schema, relname)
            entry["kind"] = KIND_NAMES.get(relkind, relkind)
            if usable and readable:
                entry["status"] = "ok"
            else:
                entry["status"] = "not readable"
                entry["reason"] = "no USAGE on schema " + quote_ident(schema) if not usable else "no SELECT"
                unreadable.append((table, qualified(schema, relname), bool(usable)))
        report.append(entry)
    details: dict[str, Any] = {"search_path": search_path, "expected": report}
    if not missing and not unreadable:
        found = ", ".join(entry["found"] for entry in report)
        summary = (
            f"{found} is present and readable"
            if len(report) == 1
            else f"all {len(report)} expected tables are present and readable: {found}"
        )
        return ProbeResult(name, Status.PASS, summary, details=details)
    hints = _hints(ctx, missing, search_path) if missing else {}
    for entry, table in zip(report, expected, strict=True):
        if table.written in hints:
            entry["near"] = [f"{label} ({reason})" for label, reason in hints[table.written]]
    user = ctx.facts.get("user") or ctx.target.user or "this role"
    problems = []
    if missing:
        problems.append("missing: " + ", ".join(
            t.display() + (f" (did you mean {hints[t.written][0][0]}?)" if hints.get(t.written) else "")
            for t in missing
        ))
    if unreadable:
        problems.append(f"not readable by {user}: " + ", ".join(found for _, found, _ in unreadable))
    from neondoctor.checklist import explain_failure

    matches: list[dict[str, Any]] = []
    texts = [f'ERROR:  relation "{t.display().replace(chr(34), "")}" does not exist' for t in missing[:1]]
    for table, found, usable in unreadable[:1]:
        schema = found.split(".")[0]
        texts.append(
            f"ERROR:  permission denied for schema {schema}"
            if not usable
            else f"ERROR:  permission denied for table {table.name}"
        )
    seen: set[str] = set()
    for text in texts:
        for match in explain_failure(text, ctx.options.rules_dirs):
            if match.get("id") not in seen:
                seen.add(match.get("id", ""))
                matches.append(match)
    return ProbeResult(
        name,
        Status.FAIL,
        "; ".join(problems),
        details=details,
        matches=matches,
        next_step=_next_step(missing, hints, unreadable, user),
        exact_next_step=True,
    )


def _next_step(
    missing: list[TableName],
    hints: dict[str, list[tuple[str, str]]],
    unreadable: list[tuple[TableName, str, bool]],
    user: str,
) -> str:
    hinted = [t for t in missing if hints.get(t.written)]
    if hinted:
        label, reason = hints[hinted[0].written][0]
        return f"Use {label} instead of {hinted[0].written} ({reason})"
    if missing:
        return ("Check the database and branch in the connection string, and that the migrations ran "
                f"(no table named like {missing[0].display()} anywhere in this database)")
    _, found, usable = unreadable[0]
    if not usable:
        return f"GRANT USAGE ON SCHEMA {found.split('.')[0]} TO {quote_ident(user)}; (as the schema owner)"
    return f"GRANT SELECT ON {found} TO {quote_ident(user)}; (as the table owner)"


def _hints(ctx: CheckContext, missing: list[TableName], search_path: str) -> dict[str, list[tuple[str, str]]]:
    """Near matches per missing name, best first, as (name to use, why)."""
    import difflib

    candidates = query(ctx, CANDIDATES_SQL)
    names = sorted({relname for _, relname, _ in candidates})
    hints: dict[str, list[tuple[str, str]]] = {}
    for table in missing:
        near: dict[str, str] = {}
        for schema, relname, on_path in candidates:
            if relname.lower() != table.name.lower():
                continue
            same_schema = (table.schema is None and on_path) or table.schema == schema
            if relname != table.name and same_schema:
                near.setdefault(qualified(table.schema, relname), "mixed case: it must be double-quoted")
            elif table.schema is None and not on_path:
                near.setdefault(qualified(schema, relname),
                                f"schema {quote_ident(schema)} is not on the search_path: {search_path}")
            elif table.schema is not None and schema != table.schema:
                near.setdefault(qualified(schema, relname),
                                f"in schema {quote_ident(schema)}, not {quote_ident(table.schema)}")
        for similar in difflib.get_close_matches(table.name, names, n=3, cutoff=0.75):
            for schema, relname, on_path in candidates:
                if relname == similar and relname.lower() != table.name.lower():
                    near.setdefault(qualified(None if on_path and not table.schema else schema, relname),
                                    "similar name")
        if near:
            hints[table.written] = list(near.items())
    return hints
