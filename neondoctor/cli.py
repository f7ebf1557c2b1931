"""Click only: parse options, call the core, pick a renderer, map to exit codes.

Heavy modules (psycopg, dnspython) are imported inside the commands that need them, so that
``neondoctor explain`` starts fast.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from neondoctor import __version__
from neondoctor.exitcodes import ExitCode


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


def main() -> None:
    cli.main()
