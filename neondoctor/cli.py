"""Click only: parse options, call the core, pick a renderer, map to exit codes.

Heavy modules (psycopg, dnspython) are imported inside the commands that need them, so that
``neondoctor explain`` starts fast.
"""

from __future__ import annotations

import sys

import click

from neondoctor import __version__
from neondoctor.exitcodes import ExitCode


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="neondoctor")
def cli() -> None:
    """A doctor for PostgreSQL connections, Neon first.

    \b
      neondoctor url [URL]        explain a connection string and flag its mistakes
      neondoctor explain [TEXT]   paste an error, get the cause and the next step
      neondoctor check [URL]      run DNS → TCP → TLS → auth → slots → tables
    """


def main() -> None:
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.USAGE if exc.exit_code in (1, 2) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(int(code or 0))
