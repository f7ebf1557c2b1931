"""The one shape every probe has: ``name`` and ``run(ctx) -> ProbeResult``.

Probes are plain modules listed in order in ``neondoctor.probes.PROBES``. A probe reads what
earlier probes left in the context (resolved addresses, the open session) and returns a plain
result; it never prints. The runner times it, skips the rest after a failure, and closes the
session at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from neondoctor.target import Target


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass
class ProbeResult:
    """What one probe measured and concluded."""

    name: str
    status: Status
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    matches: list[dict[str, Any]] = field(default_factory=list)
    """Rule matches for a failure, in the ``explain --json`` shape, best first."""
    next_step: str | None = None
    exact_next_step: bool = False
    """The probe's own next step names the exact fix (a table, a limit, a parameter) and beats a rule's."""
    duration_ms: float = 0.0


@dataclass
class CheckOptions:
    """The checklist's options, as given on the command line."""

    timeout: float = 5.0
    """Seconds for each network step."""
    total_timeout: float = 30.0
    """Seconds for the whole checklist."""
    nameserver: str | None = None
    """``IP`` or ``IP:PORT`` of the DNS server to ask instead of the system's."""
    expect_tables: list[str] = field(default_factory=list)
    rules_dirs: list[str] = field(default_factory=list)
    only: list[str] = field(default_factory=list)
    """Probe names to run (plus the probes they need); empty means all."""
    skip: list[str] = field(default_factory=list)
    """Probe names not to run; a probe that needs one of them is skipped too."""
    retries: int = 0
    """Extra attempts for a first connect that failed on a transient error (a compute waking up)."""


@dataclass
class Address:
    """One resolved address of the server."""

    family: str
    """``ipv4`` or ``ipv6``."""
    ip: str
    port: int


@dataclass
class CheckContext:
    """What the probes share: the target, the options, and what earlier probes found."""

    target: Target
    options: CheckOptions
    deadline: float = 0.0
    addresses: list[Address] = field(default_factory=list)
    session: Any = None
    """The one psycopg connection that auth opens and slots and tables reuse."""
    facts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.deadline:
            self.deadline = time.monotonic() + self.options.total_timeout

    def step_timeout(self) -> float:
        """Seconds the next network step may take: the per-step timeout, cut by the overall cap."""
        return max(0.05, min(self.options.timeout, self.deadline - time.monotonic()))

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline


class Probe(Protocol):
    name: str

    def run(self, ctx: CheckContext) -> ProbeResult: ...
