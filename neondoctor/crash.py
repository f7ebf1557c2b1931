"""What happens when a bug escapes: a redacted crash log, ready to attach (in the spirit of pre-commit's).

The command line and the traceback can hold the connection string, so both go through a
:class:`~neondoctor.redact.Redactor` that knows every password this process has seen: the ones the
commands registered with :func:`remember`, PGPASSWORD, and any connection string on the command line
or in DATABASE_URL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import re
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from neondoctor import __version__
from neondoctor.redact import Redactor

_SEEN: list[Redactor] = []


def forget() -> None:
    """Start a command with no remembered redactors (one process may run several, in tests)."""
    _SEEN.clear()


def remember(redactor: Redactor) -> None:
    """Register a target's redactor so that a later crash log hides its password too."""
    _SEEN.append(redactor)


def crash_redactor(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """Hide every remembered secret plus those found in argv and the environment."""
    environ = os.environ if environ is None else environ
    redactors = [*_SEEN, Redactor([environ.get("PGPASSWORD")])]
    texts = [*argv, *(value for name, value in environ.items() if value and name.endswith("URL"))]
    candidates = [text for text in texts if "://" in text or "=" in text]
    candidates += [url for text in texts for url in re.findall(r"\b[a-z][a-z0-9+.\-]*://\S+", text, re.IGNORECASE)]
    for text in candidates:
        with contextlib.suppress(Exception):
            from neondoctor.target import parse_target

            redactors.append(parse_target(text).redactor)

    def redact(text: str) -> str:
        for redactor in redactors:
            text = redactor(text)
        return text

    return redact


def version_lines() -> list[str]:
    lines = [
        f"neondoctor: {__version__}",
        f"python: {platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        f"os: {platform.platform()} ({platform.machine()})",
    ]
    try:
        import psycopg

        from neondoctor.target import libpq_version

        lines.append(f"psycopg: {psycopg.__version__} ({psycopg.pq.__impl__}), libpq {libpq_version()}")
    except Exception as exc:
        lines.append(f"psycopg: not importable ({type(exc).__name__})")
    return lines


def crash_text(exc: BaseException, argv: Sequence[str], redact: Callable[[str], str], now: dt.datetime) -> str:
    """The crash log in Markdown, secrets hidden (each argument before shell quoting can disguise it)."""
    command = " ".join(["neondoctor", *(_shell_word(redact(arg)) for arg in argv)])
    trace = "".join(traceback.format_exception(exc))
    sections = [
        "### version information",
        _fence("\n".join(version_lines())),
        "### command",
        _fence(command),
        "### error information",
        _fence(f"{type(exc).__name__}: {exc}\nat {now.isoformat().replace('+00:00', 'Z')}"),
        _fence(trace),
        "Please attach this file to your support ticket or issue, with the output of `neondoctor report` "
        "if that command works.",
    ]
    return redact("\n\n".join(sections)) + "\n"


def where_it_happened(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} in {Path(last.filename).name}:{last.lineno}"


def candidate_dirs(environ: Mapping[str, str] | None = None) -> Iterable[Path]:
    """The working directory, then the user cache directory, then the system temp directory."""
    environ = os.environ if environ is None else environ
    with contextlib.suppress(OSError):
        yield Path.cwd()
    cache = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    yield Path(cache) / "neondoctor"
    yield Path(tempfile.gettempdir())


def write_crash_log(
    exc: BaseException, argv: Sequence[str], *, now: dt.datetime | None = None
) -> Path | None:
    """Write the log to the first writable place; None when no place takes it."""
    now = now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    text = crash_text(exc, argv, crash_redactor(argv), now)
    name = f"neondoctor-crash-{now.strftime('%Y%m%dT%H%M%SZ')}.log"
    for directory in candidate_dirs():
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / name
            with path.open("x", encoding="utf-8") as stream:
                stream.write(text)
            return path
        except FileExistsError:
            with contextlib.suppress(OSError):
                path = directory / f"neondoctor-crash-{now.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}.log"
                path.write_text(text, encoding="utf-8")
                return path
        except OSError:
            continue
    return None


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    marks = "`" * max(3, longest + 1)
    return f"{marks}\n{text.rstrip()}\n{marks}"


def _shell_word(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
