from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, the same for every command."""

    OK = 0
    """Nothing wrong: url had no error, explain matched a rule, check passed (warnings allowed)."""
    FINDINGS = 1
    """A finding: url has an error, explain matched nothing, a check probe failed."""
    USAGE = 2
    """Could not run: no target anywhere, unreadable input, unknown option."""
    CRASH = 3
    """A neondoctor bug: one line on stderr and a crash log to attach."""
