"""Click only: parse options, call the core, pick a renderer, map to exit codes.

Heavy modules (psycopg, dnspython) are imported inside the commands that need them, so that
``neondoctor explain`` starts fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from neondoctor import __version__
from neondoctor.exitcodes import ExitCode

if TYPE_CHECKING:
    from neondoctor.target import Target

F = TypeVar("F", bound=Callable[..., Any])


class UsageProblem(click.ClickException):
    """Bad usage: one clear line on stderr, exit 2."""

    exit_code = ExitCode.USAGE

    def show(self, file: Any = None) -> None:
        click.echo(f"neondoctor: error: {self.format_message()}", err=True)


def usage_problem(message: str) -> NoReturn:
    raise UsageProblem(message)


class DoctorGroup(click.Group):
    """A group whose errors are one line and whose exit codes are ours, in tests and for real."""

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> NoReturn:  # type: ignore[override]
        extra.pop("standalone_mode", None)
        try:
            code = super().main(args, prog_name or "neondoctor", standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("neondoctor: aborted", err=True)
            sys.exit(130)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            click.echo(f"neondoctor: error: {exc.format_message()}{hint}", err=True)
            sys.exit(ExitCode.USAGE)
        except click.ClickException as exc:
            if isinstance(exc, UsageProblem):
                exc.show()
                sys.exit(ExitCode.USAGE)
            click.echo(f"neondoctor: error: {exc.format_message()}", err=True)
            sys.exit(ExitCode.USAGE)
        except BrokenPipeError:
            sys.exit(ExitCode.FINDINGS)
        sys.exit(int(code or 0))


@click.group(cls=DoctorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="neondoctor")
def cli() -> None:
    """A doctor for PostgreSQL connections, Neon first.

    \b
      neondoctor url [URL]        explain a connection string and flag its mistakes
      neondoctor explain [TEXT]   paste an error, get the cause and the next step
      neondoctor check [URL]      run DNS → TCP → TLS → auth → slots → tables
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
    return parse_target(found)


@cli.command("url")
@click.argument("url", required=False)
@target_options
@click.option("--json", "as_json", is_flag=True, help="Print the url --json contract.")
@click.pass_context
def url_command(ctx: click.Context, url: str | None, env_file: str | None, env_var: str | None, as_json: bool) -> None:
    """Explain a connection string part by part and flag its mistakes.

    URL defaults to $DATABASE_URL, then .env in the working directory, then libpq's PG* variables.
    Exit 0 when there are no errors, 1 when there are, 2 on bad usage.
    """
    from neondoctor.render import json as json_render
    from neondoctor.render import text as text_render
    from neondoctor.target import PARAM_MEANINGS

    target = load_target(url, env_file, env_var)
    report = target.to_json()
    if as_json:
        click.echo(json_render.render_url(report))
    else:
        click.echo(text_render.render_url(report, color=use_color(), meanings=PARAM_MEANINGS))
    ctx.exit(ExitCode.FINDINGS if target.has_errors else ExitCode.OK)


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


@cli.command("check")
@click.argument("url", required=False)
@target_options
@click.option("--timeout", type=float, default=5.0, show_default=True, callback=_positive_seconds,
              metavar="SECONDS", help="Limit for each network step.")
@click.option("--total-timeout", type=float, default=30.0, show_default=True, callback=_positive_seconds,
              metavar="SECONDS", help="Limit for the whole checklist.")
@click.option("--nameserver", metavar="IP[:PORT]", callback=_nameserver,
              help="Ask this DNS server instead of the system resolver.")
@click.option("--expect-table", "expect_table", multiple=True, metavar="NAME",
              help='A table the app needs (repeatable; schema.name and "Quoted" names allowed).')
@click.option("--expect-tables", "expect_tables", multiple=True, metavar="A,B,C",
              help="Several expected tables, comma-separated.")
@click.option("--rules", "rules_dirs", multiple=True, metavar="DIR",
              type=click.Path(exists=True, file_okay=False, dir_okay=True),
              help="Also load the rules in this folder (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the check --json contract.")
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
    as_json: bool,
    verbose: bool,
) -> None:
    """Run the checklist against the server: url → dns → tcp → tls → auth → slots → tables.

    It stops at the first broken layer, names it, and says what to do next. It only reads: one
    connection, SELECT and SHOW. Exit 0 when every probe passed (warnings allowed), 1 when one
    failed, 2 on bad usage.
    """
    from neondoctor.checklist import run_check
    from neondoctor.probes.base import CheckOptions
    from neondoctor.probes.tables import BadTableName, parse_table_name, split_table_list
    from neondoctor.render import json as json_render
    from neondoctor.render import text as text_render

    tables = list(expect_table) + [name for group in expect_tables for name in split_table_list(group)]
    for name in tables:
        try:
            parse_table_name(name)
        except BadTableName as exc:
            usage_problem(f"--expect-table: {exc}")
    target = load_target(url, env_file, env_var)
    options = CheckOptions(
        timeout=timeout,
        total_timeout=total_timeout,
        nameserver=nameserver,
        expect_tables=tables,
        rules_dirs=list(rules_dirs),
    )
    report = run_check(target, options)
    if as_json:
        click.echo(json_render.render_check(report.to_json()))
    else:
        click.echo(target.redactor(text_render.render_check(report.to_json(), color=use_color(), verbose=verbose)))
    ctx.exit(ExitCode.FINDINGS if report.failed else ExitCode.OK)


def main() -> None:
    cli.main()
