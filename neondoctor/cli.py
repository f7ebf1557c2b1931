"""Click only: parse options, call the core, pick a renderer, map to exit codes.

Heavy modules (psycopg, dnspython) are imported inside the commands that need them, so that
``neondoctor explain`` starts fast.
"""

from __future__ import annotations

import gc
import itertools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from neondoctor import __version__
from neondoctor.exitcodes import ExitCode

if TYPE_CHECKING:
    from neondoctor.target import Target

F = TypeVar("F", bound=Callable[..., Any])


def shown(message: str) -> str:
    """A usage error as it may be printed: arguments it echoes can hold a password (a URL in the wrong place,
    or the tail of one that an unquoted space made the shell split off)."""
    import re

    from neondoctor.redact import redact_patterns

    message = re.sub(
        r"^(Got unexpected extra arguments?) \(.*\)$",
        r"\1 (not shown: an unquoted space in the connection string makes the shell split it; put it in quotes)",
        message,
        flags=re.DOTALL,
    )
    return redact_patterns(message)


class UsageProblem(click.ClickException):
    """Bad usage: one clear line on stderr, exit 2."""

    exit_code = ExitCode.USAGE

    def show(self, file: Any = None) -> None:
        click.echo(f"neondoctor: error: {shown(self.format_message())}", err=True)


def usage_problem(message: str) -> NoReturn:
    raise UsageProblem(message)


class DoctorGroup(click.Group):
    """A group whose errors are one line and whose exit codes are ours, in tests and for real.

    With ``--json`` (or ``report --format json``) an error is also a JSON document on stdout. A bug
    that escapes a command becomes one line, a redacted crash log, and exit 3.
    """

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> NoReturn:  # type: ignore[override]
        extra.pop("standalone_mode", None)
        argv = [str(arg) for arg in (sys.argv[1:] if args is None else args)]
        crash = sys.modules.get("neondoctor.crash")  # imported by commands that load a target; explain stays light
        if crash is not None:
            crash.forget()
        try:
            code = super().main(argv, prog_name or "neondoctor", standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("neondoctor: aborted", err=True)
            sys.exit(130)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            self._fail(argv, ExitCode.USAGE, f"{exc.format_message()}{hint}")
        except click.ClickException as exc:
            self._fail(argv, ExitCode.USAGE, exc.format_message())
        except BrokenPipeError:
            sys.exit(ExitCode.FINDINGS)
        except Exception as exc:
            self._crash(argv, exc)
        sys.exit(int(code or 0))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name not in BOUNDED_COMMANDS:
            gc.enable()
        return name, command, rest

    def _fail(self, argv: list[str], code: ExitCode, message: str, prefix: str = "error: ") -> NoReturn:
        message = shown(message)
        click.echo(f"neondoctor: {prefix}{message}", err=True)
        command = self._json_command(argv)
        if command is not None:
            from neondoctor.render import json as json_render

            click.echo(json_render.render_error(command, int(code), message))
        sys.exit(code)

    def _crash(self, argv: list[str], exc: Exception) -> NoReturn:
        from neondoctor.crash import where_it_happened, write_crash_log

        try:
            path = write_crash_log(exc, argv)
        except Exception:
            path = None
        if path is not None:
            try:
                log_name = path.name if path.parent == Path.cwd() else str(path)
            except OSError:
                log_name = str(path)
            where = f"a crash log was written to {log_name}; please attach it"
        else:
            where = "no crash log could be written; please report the command you ran"
        message = f"internal error ({where_it_happened(exc)}); {where} (or run neondoctor report)"
        self._fail(argv, ExitCode.CRASH, message, prefix="")

    def _json_command(self, argv: list[str]) -> str | None:
        """The command path (``rules lint``) when the user asked for JSON, else None."""
        words = argv[: argv.index("--")] if "--" in argv else argv
        wants_json = "--json" in words or "--format=json" in words or any(
            pair == ("--format", "json") for pair in itertools.pairwise(words)
        )
        if not wants_json:
            return None
        path: list[str] = []
        group: click.Command = self
        for word in words:
            if isinstance(group, click.Group) and word in group.commands:
                path.append(word)
                group = group.commands[word]
        return " ".join(path) or None


@click.group(cls=DoctorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="neondoctor")
def cli() -> None:
    """A doctor for PostgreSQL connections, Neon first.

    \b
      neondoctor url [URL]        explain a connection string and flag its mistakes
      neondoctor explain [TEXT]   paste an error, get the cause and the next step
      neondoctor check [URL]      run DNS → TCP → TLS → auth → slots → tables
      neondoctor report [URL]     run check and write a redacted report to attach to a ticket
      neondoctor pool [URL]       will the app's connection pools fit in the server's slots?
      neondoctor drill [URL]      write, commit and read back a row: does data persist? (writes)
      neondoctor rules …          list, show, lint and test the error knowledge base

    URL defaults to $DATABASE_URL, then .env in the working directory, then libpq's PG*
    variables. --json output carries "schema": "neondoctor.<command>/1" (neondoctor/schemas/).
    Exit codes: 0 fine, 1 a finding, 2 bad usage, 3 a neondoctor bug (a crash log is written).
    """


def use_color(stream: Any = None) -> bool:
    """Colours only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def target_options(func: F) -> F:
    """The options that say where the connection string comes from (url and check)."""
    func = click.option(
        "--env-var",
        metavar="NAME",
        default=None,
        help="Read the string from this environment variable instead of DATABASE_URL.",
    )(func)
    func = click.option(
        "--env-file",
        metavar="FILE",
        default=None,
        help="Read the string from this dotenv file (its DATABASE_URL, or --env-var).",
    )(func)
    return func


def load_target(url: str | None, env_file: str | None, env_var: str | None) -> Target:
    """Find and parse the target; a missing or unreadable source is a usage problem."""
    from neondoctor.target import NoTarget, find_target, parse_target

    try:
        found = find_target(url, env_file=env_file, env_var=env_var)
    except NoTarget as exc:
        usage_problem(str(exc))
    target = parse_target(found)
    from neondoctor import crash

    crash.remember(target.redactor)
    return target


CLIENT_NAMES = ("psql", "libpq", "psycopg2", "psycopg", "asyncpg", "sqlalchemy", "sqlalchemy-async", "django",
                "node-pg", "postgres-js", "prisma", "drizzle", "jdbc", "go-pgx")


def dotenv_findings(target: Target, *, strict: bool) -> list[Any]:
    """.env hygiene when the string came from a .env or one is in the working tree."""
    from neondoctor.envfile import dotenv_in_play, hygiene

    path = dotenv_in_play(target.source)
    return hygiene(path, strict=strict) if path is not None else []


@cli.command("url")
@click.argument("url", required=False)
@target_options
@click.option("--for", "client", type=click.Choice(CLIENT_NAMES), metavar="CLIENT",
              help=f"Print the string (or code) this client needs for the same target: {', '.join(CLIENT_NAMES)}.")
@click.option("--show-password", is_flag=True, help="With --for, print the real password instead of ****.")
@click.option("--json", "as_json", is_flag=True, help="Print the url --json contract.")
@click.pass_context
def url_command(ctx: click.Context, url: str | None, env_file: str | None, env_var: str | None, client: str | None,
                show_password: bool, as_json: bool) -> None:
    """Explain a connection string part by part and flag its mistakes.

    URL defaults to $DATABASE_URL, then .env in the working directory, then libpq's PG* variables.
    With --for CLIENT it also prints the string that client needs and what it makes of yours.
    Exit 0 when there are no errors (with --for: none for that client), 1 when there are, 2 on bad usage.
    """
    from neondoctor.render import json as json_render
    from neondoctor.render import text as text_render
    from neondoctor.target import PARAM_MEANINGS

    if show_password and not client:
        usage_problem("--show-password only goes with --for CLIENT")
    target = load_target(url, env_file, env_var)
    hygiene = dotenv_findings(target, strict=True)
    rank = {"error": 0, "warning": 1, "info": 2}
    target.findings = sorted(target.findings + hygiene, key=lambda finding: rank[str(finding.severity)])
    report = target.to_json()
    failed = target.has_errors
    form: dict[str, Any] | None = None
    if client:
        from neondoctor.clients import client_fails, for_client

        shown = for_client(target, client, show_password=show_password)
        form = shown.to_json() if show_password else target.redactor.obj(shown.to_json())
        failed = client_fails(target, shown) or any(f.severity == "error" for f in hygiene)
    if as_json:
        output = json_render.render_url(report if form is None else {**report, "client": form})
    else:
        output = text_render.render_url(report, color=use_color(), meanings=PARAM_MEANINGS)
        if form is not None:
            from neondoctor.render.app import render_client

            output += "\n" + render_client(form, color=use_color(), password_shown=show_password,
                                            has_password=target.password is not None)
    click.echo(output)
    ctx.exit(ExitCode.FINDINGS if failed else ExitCode.OK)


def _positive_seconds(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value is not None and value <= 0:
        usage_problem(f"{param.opts[0]} must be a number of seconds above 0, not {value:g}")
    return value


def _nameserver(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    import ipaddress
    import re

    match = re.fullmatch(
        r"\[(?P<v6>[^\]]+)\](?::(?P<v6port>\d+))?|(?P<v4>[\d.]+)(?::(?P<v4port>\d+))?|(?P<bare>[0-9a-fA-F:]+)",
        value.strip(),
    )
    try:
        if not match:
            raise ValueError
        ip = match.group("v6") or match.group("v4") or match.group("bare")
        ipaddress.ip_address(ip)
        port = match.group("v6port") or match.group("v4port")
        if port is not None and not 0 < int(port) < 65536:
            raise ValueError
    except ValueError:
        usage_problem(f"--nameserver wants IP or IP:PORT (e.g. 127.0.0.1:5353 or [::1]:53), not {value!r}")
    return value.strip()


def _probe_names(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    from neondoctor.probes import PROBES

    valid = [p.name for p in PROBES]
    names = tuple(name.strip() for group in value for name in group.split(",") if name.strip())
    unknown = [name for name in names if name not in valid]
    if unknown:
        usage_problem(f"{param.opts[0]}: unknown probe {unknown[0]!r}; valid probes: {', '.join(valid)}")
    return names


def check_options(func: F) -> F:
    """The checklist's options (check and report): deadlines, DNS server, expected tables, rule folders."""
    for option in reversed((
        click.option("--timeout", type=float, default=5.0, show_default=True, callback=_positive_seconds,
                     metavar="SECONDS", help="Limit for each network step."),
        click.option("--total-timeout", type=float, default=30.0, show_default=True, callback=_positive_seconds,
                     metavar="SECONDS", help="Limit for the whole checklist."),
        click.option("--nameserver", metavar="IP[:PORT]", callback=_nameserver,
                     help="Ask this DNS server instead of the system resolver."),
        click.option("--expect-table", "expect_table", multiple=True, metavar="NAME",
                     help='A table the app needs (repeatable; schema.name and "Quoted" names allowed).'),
        click.option("--expect-tables", "expect_tables", multiple=True, metavar="A,B,C",
                     help="Several expected tables, comma-separated."),
        click.option("--rules", "rules_dirs", multiple=True, metavar="DIR",
                     type=click.Path(exists=True, file_okay=False, dir_okay=True),
                     help="Also load the rules in this folder (repeatable)."),
        click.option("--only", "only", multiple=True, metavar="PROBE[,PROBE]", callback=_probe_names,
                     help="Run only these probes (plus url and what they need: dns, and auth for slots/tables)."),
        click.option("--skip", "skip", multiple=True, metavar="PROBE[,PROBE]", callback=_probe_names,
                     help="Do not run these probes; a probe that needs one of them shows as skipped."),
        click.option("--retries", type=click.IntRange(0, 10), default=0, show_default=True, metavar="N",
                     help="Retry a first connect that failed on a transient error (a Neon compute waking up)."),
    )):
        func = option(func)
    return func


def check_setup(
    url: str | None,
    env_file: str | None,
    env_var: str | None,
    params: dict[str, Any],
) -> tuple[Target, Any]:
    """The target and the CheckOptions from check's options; a bad table name is a usage problem."""
    from neondoctor.probes.base import CheckOptions
    from neondoctor.probes.tables import BadTableName, parse_table_name, split_table_list

    tables = list(params["expect_table"]) + [
        name for group in params["expect_tables"] for name in split_table_list(group)
    ]
    for name in tables:
        try:
            parse_table_name(name)
        except BadTableName as exc:
            usage_problem(f"--expect-table: {exc}")
    target = load_target(url, env_file, env_var)
    target.findings += dotenv_findings(target, strict=False)
    options = CheckOptions(
        timeout=params["timeout"],
        total_timeout=params["total_timeout"],
        nameserver=params["nameserver"],
        expect_tables=tables,
        rules_dirs=list(params["rules_dirs"]),
        only=list(params.get("only") or ()),
        skip=list(params.get("skip") or ()),
        retries=params.get("retries") or 0,
    )
    return target, options


def report_hint(source: str, params: dict[str, Any]) -> str:
    """The `report` command line for the check just run: same source and options, never the string itself."""
    import shlex

    words = ["neondoctor", "report"]
    if source == "argument":
        words.append("URL")
    for option in ("env_file", "env_var", "nameserver"):
        if params.get(option):
            words += ["--" + option.replace("_", "-"), shlex.quote(str(params[option]))]
    for option, default in (("timeout", 5.0), ("total_timeout", 30.0)):
        if params.get(option) not in (None, default):
            words += ["--" + option.replace("_", "-"), f"{params[option]:g}"]
    for option in ("expect_table", "expect_tables", "rules_dirs", "only", "skip"):
        flag = "--rules" if option == "rules_dirs" else "--" + option.replace("_", "-")
        for value in params.get(option) or ():
            words += [flag, shlex.quote(value)]
    if params.get("retries"):
        words += ["--retries", str(params["retries"])]
    tail = " (URL: the connection string you just checked)" if source == "argument" else ""
    return f"To attach this to a support ticket: {' '.join(words)}{tail}"


@cli.command("check")
@click.argument("url", required=False)
@target_options
@check_options
@click.option("--json", "as_json", is_flag=True, help="Print the check --json contract.")
@click.option("-q", "--quiet", is_flag=True, help="Print the verdict line alone.")
@click.option("-v", "--verbose", is_flag=True, help="Show every probe's details.")
@click.pass_context
def check_command(
    ctx: click.Context,
    url: str | None,
    env_file: str | None,
    env_var: str | None,
    timeout: float,
    total_timeout: float,
    nameserver: str | None,
    expect_table: tuple[str, ...],
    expect_tables: tuple[str, ...],
    rules_dirs: tuple[str, ...],
    only: tuple[str, ...],
    skip: tuple[str, ...],
    retries: int,
    as_json: bool,
    quiet: bool,
    verbose: bool,
) -> None:
    """Run the checklist against the server: url → dns → tcp → tls → auth → slots → tables.

    It stops at the first broken layer, names it, and says what to do next. It only reads: one
    connection, SELECT and SHOW. Each line appears as its step ends. Exit 0 when every probe passed
    (warnings allowed), 1 when one failed, 2 on bad usage, 130 on Ctrl-C (what finished is printed).
    """
    from neondoctor.checklist import run_check
    from neondoctor.render import json as json_render
    from neondoctor.render import text as text_render

    target, options = check_setup(url, env_file, env_var, ctx.params)
    if as_json or quiet:
        report = run_check(target, options)
        data = report.to_json()
        if as_json:
            output = json_render.render_check(data)
        elif report.interrupted:
            output = text_render.render_interrupted(report.interrupted, color=use_color())
        else:
            output = text_render.render_verdict(data["verdict"], color=use_color())
        click.echo(output if as_json else target.redactor.known(output))
        ctx.exit(report.exit_code)
    from neondoctor.probes import PROBES
    from neondoctor.render.live import LiveCheck

    live = LiveCheck(
        sys.stdout,
        width=text_render.probe_width(p.name for p in PROBES),
        color=use_color(),
        verbose=verbose,
        spinner=bool(getattr(sys.stdout, "isatty", lambda: False)()),
        scrub=target.redactor.known,
    )
    live.header(target.to_json())
    try:
        report = run_check(target, options, on_probe_start=live.on_probe_start, on_probe_done=live.on_probe_done)
    finally:
        live.stop()
    if report.interrupted:
        live.finish(text_render.render_interrupted(report.interrupted, color=use_color()))
    else:
        live.finish(text_render.render_verdict(report.to_json()["verdict"], color=use_color()))
        if report.failed:
            click.echo(report_hint(target.source, ctx.params), err=True)
    ctx.exit(report.exit_code)


@cli.command("report")
@click.argument("url", required=False)
@target_options
@check_options
@click.option("-o", "--output", metavar="FILE",
              help="Write here ('-' for stdout); default neondoctor-report-<UTC time>.md (or .json) here.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True,
              help="Markdown to paste into a ticket or issue, or the report --json contract.")
@click.option("--redact-host", is_flag=True, help="Replace the host name (and its addresses) with <host-1>.")
@click.option("--redact-user", is_flag=True, help="Replace the user name with <user>.")
@click.pass_context
def report_command(
    ctx: click.Context,
    url: str | None,
    env_file: str | None,
    env_var: str | None,
    timeout: float,
    total_timeout: float,
    nameserver: str | None,
    expect_table: tuple[str, ...],
    expect_tables: tuple[str, ...],
    rules_dirs: tuple[str, ...],
    only: tuple[str, ...],
    skip: tuple[str, ...],
    retries: int,
    output: str | None,
    fmt: str,
    redact_host: bool,
    redact_user: bool,
) -> None:
    """Run check and write a report to attach to a support ticket or a GitHub issue.

    The report holds the versions (neondoctor, OS, Python, psycopg, libpq, dnspython, OpenSSL), the
    target with its password hidden, the verdict and next step, every probe with its details, the
    matched rules, the error texts and which PG*/proxy variables are set (names only). Without -o it
    is written to neondoctor-report-<UTC time>.md in the working directory. Exit 0 when every probe
    passed, 1 when one failed, 2 on bad usage.
    """
    from neondoctor.checklist import run_check
    from neondoctor.render import json as json_render
    from neondoctor.render.markdown import render_report
    from neondoctor.report import build_report, default_file_name, utc_now

    now = utc_now()
    path = None if output == "-" else Path(output or default_file_name(now, fmt))
    if path is not None and not path.parent.is_dir():
        usage_problem(f"cannot write {path}: no folder {path.parent}")
    target, options = check_setup(url, env_file, env_var, ctx.params)
    check = run_check(target, options)
    document = build_report(target, check, now=now, redact_host=redact_host, redact_user=redact_user)
    text = json_render.dumps(document) if fmt == "json" else render_report(document)
    if fmt != "json":
        text = target.redactor.known(text)
    if path is None:
        click.echo(text.rstrip("\n"))
    else:
        try:
            path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
        except OSError as exc:
            usage_problem(f"cannot write {path}: {exc.strerror or exc}")
        verdict = document["verdict"]
        mark = {"pass": "✓", "warn": "!", "fail": "✗"}[verdict["status"]]
        click.echo(f"Report written to {path}")
        click.echo(target.redactor.known(f"{mark} {verdict['summary']} Next: {verdict['next_step']}"))
    ctx.exit(ExitCode.FINDINGS if check.failed else ExitCode.OK)


@cli.command("pool")
@click.argument("url", required=False)
@target_options
@click.option("--pool-size", type=click.IntRange(min=0), help="SQLAlchemy pool_size (default 5).")
@click.option("--max-overflow", type=click.IntRange(min=-1), help="SQLAlchemy max_overflow (default 10; -1: no bound).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes × threads that each hold their own pool (e.g. gunicorn -w 4 → 4).")
@click.option("--pool-recycle", type=click.IntRange(min=-1), help="SQLAlchemy pool_recycle in seconds.")
@click.option("--pre-ping/--no-pre-ping", "pre_ping", default=None, help="SQLAlchemy pool_pre_ping.")
@click.option("--from", "from_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="Read the pool options from the create_engine(...) calls in this Python file (parsed, never run).")
@click.option("--max-connections", type=click.IntRange(min=1), metavar="N",
              help="Compare with this max_connections instead of asking the server (offline).")
@click.option("--timeout", type=float, default=5.0, show_default=True, callback=_positive_seconds, metavar="SECONDS",
              help="Limit for connecting to the server.")
@click.option("--json", "as_json", is_flag=True, help="Print the pool --json contract.")
@click.pass_context
def pool_command(ctx: click.Context, url: str | None, env_file: str | None, env_var: str | None,
                 pool_size: int | None, max_overflow: int | None, workers: int, pool_recycle: int | None,
                 pre_ping: bool | None, from_file: str | None, max_connections: int | None, timeout: float,
                 as_json: bool) -> None:
    """Will the app's pools fit in the connection slots this role has on the server?

    Worst case (pool_size + max_overflow) × workers against the slots left for this role on the live
    server (one connection, read-only), or against --max-connections N offline. Exit 0 when it fits
    (or is tight), 1 when it will fail, 2 on bad usage.
    """
    from neondoctor import pool as pools
    from neondoctor.render import json as json_render
    from neondoctor.render.app import render_pool
    from neondoctor.target import NoTarget, find_target, parse_target

    if from_file:
        overrides = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_recycle": pool_recycle,
                     "pre_ping": pre_ping}
        try:
            plan = pools.plan_from_file(Path(from_file), workers=workers, overrides=overrides)
        except pools.PoolFileError as exc:
            usage_problem(str(exc))
    else:
        plan = pools.plan_from_options(pool_size, max_overflow, pool_recycle, pre_ping, workers)
    target = None
    if max_connections is not None:
        try:
            target = parse_target(find_target(url, env_file=env_file, env_var=env_var))
        except NoTarget:
            target = None
        capacity = pools.offline_capacity(max_connections)
    else:
        target = load_target(url, env_file, env_var)
        if target.has_errors:
            usage_problem("the connection string has errors; see `neondoctor url`, or give --max-connections N")
        try:
            capacity = pools.live_capacity(target, timeout)
        except Exception as exc:
            message = target.redactor(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            click.echo(f"neondoctor: could not read the server's connection limits: {message}", err=True)
            click.echo("Run `neondoctor check` to find why, or compare offline with --max-connections N", err=True)
            if as_json:
                click.echo(json_render.render_error("pool", int(ExitCode.FINDINGS), message))
            ctx.exit(ExitCode.FINDINGS)
    verdict = pools.judge(plan, capacity, target)
    report = verdict.to_json()
    output = json_render.document("pool", report) if as_json else render_pool(report, color=use_color())
    click.echo(target.redactor.known(output) if target is not None else output)
    ctx.exit(ExitCode.FINDINGS if verdict.failed else ExitCode.OK)


@cli.command("drill")
@click.argument("url", required=False)
@target_options
@click.option("--timeout", type=float, default=5.0, show_default=True, callback=_positive_seconds, metavar="SECONDS",
              help="Limit for each connection and statement.")
@click.option("--json", "as_json", is_flag=True, help="Print the drill --json contract.")
@click.pass_context
def drill_command(ctx: click.Context, url: str | None, env_file: str | None, env_var: str | None, timeout: float,
                  as_json: bool) -> None:
    """Write a row, commit, and read it back from a new connection: does data persist? (This WRITES.)

    Creates a scratch table neondoctor_drill_<random> in the role's current schema, inserts a random
    token, commits, then reads it back in a second connection and drops the table (also when a step
    fails). A standby, a read-only role or a missing CREATE privilege is said before anything is
    written. Exit 0 when the row persisted, 1 otherwise, 2 on bad usage.
    """
    from neondoctor.drill import run_drill
    from neondoctor.render import json as json_render
    from neondoctor.render.app import render_drill

    target = load_target(url, env_file, env_var)
    if target.has_errors:
        usage_problem("the connection string has errors; see `neondoctor url`")
    result = run_drill(target, timeout=timeout)
    report = result.to_json()
    output = json_render.document("drill", report) if as_json else render_drill(report, color=use_color())
    click.echo(target.redactor.known(output))
    ctx.exit(ExitCode.FINDINGS if result.failed else ExitCode.OK)


def rules_option(func: F) -> F:
    """``--rules DIR`` (repeatable): user rule folders, added after $NEONDOCTOR_RULES; same id replaces a built-in."""
    return click.option(
        "--rules",
        "rules_dirs",
        multiple=True,
        metavar="DIR",
        type=click.Path(exists=True, file_okay=False, dir_okay=True),
        help="Also load the rules in this folder (repeatable); a rule with a built-in id replaces it.",
    )(func)


def _explain_input(text: tuple[str, ...], file_path: str | None) -> Any:
    import io

    if text and file_path:
        usage_problem("give the error text as an argument or with --file, not both")
    if file_path and file_path != "-":
        try:
            return open(file_path, "rb")
        except OSError as exc:
            usage_problem(f"cannot read {file_path}: {exc.strerror or exc}")
    if text and text != ("-",):
        return io.BytesIO(" ".join(text).encode("utf-8", "surrogateescape"))
    stdin = sys.stdin
    if stdin is None or (not text and not file_path and stdin.isatty()):
        usage_problem("nothing to explain: pass the error text as an argument, with --file PATH, or on stdin")
    return getattr(stdin, "buffer", stdin)


@cli.command("explain")
@click.argument("text", nargs=-1)
@click.option("-f", "--file", "file_path", metavar="PATH", help="Read the error text or a whole log from this file.")
@rules_option
@click.option("--json", "as_json", is_flag=True, help='Print {"answer": …, "matches": [...]} instead of text.')
@click.pass_context
def explain_command(
    ctx: click.Context, text: tuple[str, ...], file_path: str | None, rules_dirs: tuple[str, ...], as_json: bool
) -> None:
    """Paste an error (or a whole log) and get its cause and the fix.

    TEXT is the error message; without it the text is read from --file or stdin ("-"). Logs with
    tracebacks, JSON log lines, docker-compose, kubectl and timestamp prefixes are fine: the root cause
    is ranked first. Each answer says its confidence (high, medium, low); a low one is worded as a guess
    and ends with the check command to run, and a close runner-up of another layer is named ("Or, if …").

    Exit 0 when there is an answer, even a guess; 1 when there is none ("No rule matches"); 2 on bad
    usage or unreadable input.
    """
    from neondoctor.explain import explain_stream
    from neondoctor.rules import RulesError, load_for_explain

    try:
        ruleset = load_for_explain(rules_dirs)
    except RulesError as exc:
        usage_problem(str(exc))
    if ruleset.skipped:
        count = len({(p.file, p.rule_id) for p in ruleset.skipped})
        click.echo(f"neondoctor: warning: skipped {count} broken rule(s); see 'neondoctor rules lint'", err=True)
    stream = _explain_input(text, file_path)
    try:
        with stream:
            result = explain_stream(stream, ruleset)
    except OSError as exc:
        usage_problem(f"cannot read {file_path or 'stdin'}: {exc.strerror or exc}")
    if result.empty:
        usage_problem("nothing to explain: the input is empty")
    if result.truncated:
        click.echo("neondoctor: note: too many distinct error lines; only the first ones were explained", err=True)
    report = result.to_json()
    if as_json:
        from neondoctor.render import json as json_render

        click.echo(json_render.render_explain(report))
    else:
        from neondoctor.render import text as text_render

        click.echo(text_render.render_explain(report, color=use_color(), has_url=result.has_url))
    ctx.exit(ExitCode.OK if report["answer"] else ExitCode.FINDINGS)


def _load_rules(ctx: click.Context, rules_dirs: tuple[str, ...]) -> Any:
    from neondoctor.rules import RulesError, load_rules

    dirs = [*(ctx.obj or {}).get("rules_dirs", ()), *rules_dirs]
    try:
        return load_rules(dirs)
    except RulesError as exc:
        usage_problem(str(exc))


@cli.group("rules")
@rules_option
@click.pass_context
def rules_group(ctx: click.Context, rules_dirs: tuple[str, ...]) -> None:
    """List, show, lint and test the rules behind explain.

    Rules come from the built-in folder, then $NEONDOCTOR_RULES, then --rules DIR (here or after the
    subcommand); a later rule with the same id replaces the earlier one.
    """
    ctx.obj = {"rules_dirs": list(rules_dirs)}


@rules_group.command("list")
@rules_option
@click.option("--json", "as_json", is_flag=True, help="Print the rules as JSON.")
@click.pass_context
def rules_list_command(ctx: click.Context, rules_dirs: tuple[str, ...], as_json: bool) -> None:
    """One line per rule: id, layer, blame, title (and origin for your own rules)."""
    from neondoctor.render import json as json_render
    from neondoctor.render import text as text_render

    ruleset = _load_rules(ctx, rules_dirs)
    rows = [rule.to_dict() for rule in ruleset]
    if as_json:
        keys = ("id", "layer", "blame", "title", "origin")
        click.echo(json_render.document("rules list", {"rules": [{key: row[key] for key in keys} for row in rows]}))
    else:
        click.echo(text_render.render_rules_list(rows, color=use_color()))
    ctx.exit(ExitCode.OK)


@rules_group.command("show")
@click.argument("rule_id", metavar="ID")
@rules_option
@click.option("--json", "as_json", is_flag=True, help="Print the rule as JSON.")
@click.pass_context
def rules_show_command(ctx: click.Context, rule_id: str, rules_dirs: tuple[str, ...], as_json: bool) -> None:
    """Print one rule in full, with the file it comes from."""
    import difflib

    from neondoctor.render import json as json_render
    from neondoctor.render import text as text_render

    ruleset = _load_rules(ctx, rules_dirs)
    rule = ruleset.by_id.get(rule_id)
    if rule is None:
        close = difflib.get_close_matches(rule_id, list(ruleset.by_id), n=3)
        usage_problem(f"no rule {rule_id!r}" + (f"; did you mean {', '.join(close)}?" if close else ""))
    shown = rule.to_dict()
    click.echo(json_render.document("rules show", shown) if as_json else text_render.render_rule(shown))
    ctx.exit(ExitCode.OK)


@rules_group.command("lint")
@rules_option
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
@click.pass_context
def rules_lint_command(ctx: click.Context, rules_dirs: tuple[str, ...], as_json: bool) -> None:
    """Check every rule: format, regexes, ids, and that its examples match it first. Exit 1 on any problem."""
    from neondoctor.render import json as json_render
    from neondoctor.render import text as text_render
    from neondoctor.rules import lint

    ruleset = _load_rules(ctx, rules_dirs)
    problems = [str(problem) for problem in lint(ruleset)]
    if as_json:
        tally = {"rules": len(ruleset), "ok": not problems, "problems": problems}
        click.echo(json_render.document("rules lint", tally))
    else:
        click.echo(text_render.render_lint(problems, len(ruleset), color=use_color()))
    ctx.exit(ExitCode.FINDINGS if problems else ExitCode.OK)


@rules_group.command("test")
@rules_option
@click.option("--json", "as_json", is_flag=True, help="Print the tally per rule as JSON.")
@click.pass_context
def rules_test_command(ctx: click.Context, rules_dirs: tuple[str, ...], as_json: bool) -> None:
    """Run every example and not_example; a table per rule. Exit 1 on a miss or a false hit."""
    from neondoctor.render import json as json_render
    from neondoctor.render import text as text_render
    from neondoctor.rules import tally_examples

    rows, failures = tally_examples(_load_rules(ctx, rules_dirs))
    if as_json:
        click.echo(json_render.document("rules test", {"ok": not failures, "rules": rows, "failures": failures}))
    else:
        click.echo(text_render.render_rules_test(rows, failures, color=use_color()))
    ctx.exit(ExitCode.FINDINGS if failures else ExitCode.OK)


BOUNDED_COMMANDS = frozenset({"check", "url", "report"})
"""Commands that run briefly on small data: cyclic garbage collection stays off for the whole run."""


def main() -> None:
    """The console entry point.

    Start-up imports psycopg, click and the probes: some 55,000 tracked objects, none of them garbage, which
    the cyclic collector would scan again and again (~10 ms of CPU in a ~200 ms check). It is paused while modules
    load and stays off for the bounded commands; the others turn it back on once their command is known.
    """
    gc.disable()
    try:
        cli.main()
    finally:
        gc.enable()
