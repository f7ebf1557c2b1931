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
      neondoctor rules …          list, show, lint and test the error knowledge base

    URL defaults to $DATABASE_URL, then .env in the working directory, then libpq's PG*
    variables. Exit codes: 0 fine, 1 a finding, 2 bad usage.
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
        output = json_render.render_url(report)
    else:
        output = text_render.render_url(report, color=use_color(), meanings=PARAM_MEANINGS)
    click.echo(target.redactor.known(output))
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
        output = json_render.render_check(report.to_json())
    else:
        output = text_render.render_check(report.to_json(), color=use_color(), verbose=verbose)
    click.echo(target.redactor.known(output))
    ctx.exit(ExitCode.FINDINGS if report.failed else ExitCode.OK)


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
        click.echo(json_render.dumps([{key: row[key] for key in keys} for row in rows]))
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
    click.echo(json_render.dumps(rule.to_dict()) if as_json else text_render.render_rule(rule.to_dict()))
    ctx.exit(ExitCode.OK)


@rules_group.command("lint")
@rules_option
@click.pass_context
def rules_lint_command(ctx: click.Context, rules_dirs: tuple[str, ...]) -> None:
    """Check every rule: format, regexes, ids, and that its examples match it first. Exit 1 on any problem."""
    from neondoctor.render import text as text_render
    from neondoctor.rules import lint

    ruleset = _load_rules(ctx, rules_dirs)
    problems = [str(problem) for problem in lint(ruleset)]
    click.echo(text_render.render_lint(problems, len(ruleset), color=use_color()))
    ctx.exit(ExitCode.FINDINGS if problems else ExitCode.OK)


@rules_group.command("test")
@rules_option
@click.pass_context
def rules_test_command(ctx: click.Context, rules_dirs: tuple[str, ...]) -> None:
    """Run every example and not_example; a table per rule. Exit 1 on a miss or a false hit."""
    from neondoctor.render import text as text_render
    from neondoctor.rules import tally_examples

    rows, failures = tally_examples(_load_rules(ctx, rules_dirs))
    click.echo(text_render.render_rules_test(rows, failures, color=use_color()))
    ctx.exit(ExitCode.FINDINGS if failures else ExitCode.OK)


def main() -> None:
    cli.main()
