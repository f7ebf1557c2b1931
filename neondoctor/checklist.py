"""The `check` runner: probes in order, one overall deadline, a verdict, everything redacted.

Each probe runs in a worker thread so that the runner can keep its promise about the overall cap
even when a library call overstays its own timeout (libpq's connect_timeout cannot be below 2 s).
A probe still running one grace period after the deadline is abandoned: it becomes a fail and its
thread is left to finish on its own (it is a daemon; whatever it opens later is closed by the probe
itself when it sees ``ctx.facts["abandoned"]``).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from neondoctor.exitcodes import ExitCode
from neondoctor.probes.base import CheckContext, CheckOptions, ProbeResult, Status
from neondoctor.redact import Redactor

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from types import ModuleType

    from neondoctor.target import Target

INTERRUPTED_EXIT = 130
"""Ctrl-C: 128 + SIGINT, as shells report it."""
GRACE_SECONDS = 0.5
"""How long after the overall deadline a running probe may still finish before it is abandoned."""


@dataclass
class CheckReport:
    """The whole run: the target, every probe's result, the verdict and the facts gathered."""

    target: dict[str, Any]
    probes: list[ProbeResult]
    verdict: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)
    interrupted: str | None = None
    """The probe that was running when Ctrl-C came, or None."""

    @property
    def failed(self) -> bool:
        return self.verdict["status"] == "fail"

    @property
    def exit_code(self) -> int:
        if self.interrupted is not None:
            return INTERRUPTED_EXIT
        return int(ExitCode.FINDINGS if self.failed else ExitCode.OK)

    def to_json(self) -> dict[str, Any]:
        """The `check --json` contract: fields may be added, never renamed."""
        data = {
            "target": self.target,
            "probes": [probe_json(p) for p in self.probes],
            "verdict": self.verdict,
            "failed_probe": self.verdict.get("failed_probe"),
            "exit_code": self.exit_code,
            "interrupted": self.interrupted is not None,
        }
        if self.interrupted is not None:
            data["interrupted_during"] = self.interrupted
        return data


def probe_json(result: ProbeResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "status": str(result.status),
        "duration_ms": round(result.duration_ms, 1),
        "summary": result.summary,
        "details": result.details,
        "matches": result.matches,
        "next_step": result.next_step,
        "next_step_exact": result.exact_next_step,
    }


def explain_failure(text: str, rules_dirs: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Rule matches for an error text, best first, in the `explain --json` shape.

    A broken rule folder must not hide the failure being explained, so engine errors give no matches.
    """
    try:
        ruleset = _ruleset(tuple(rules_dirs))
        return list(ruleset.explain(text))
    except Exception:
        return []


@functools.lru_cache(maxsize=4)
def _ruleset(rules_dirs: tuple[str, ...]) -> Any:
    from neondoctor.rules import load_for_explain

    return load_for_explain(rules_dirs)


NEEDS: dict[str, tuple[str, ...]] = {"tcp": ("dns",), "tls": ("dns",), "slots": ("auth",), "tables": ("auth",)}
"""What a probe cannot run without: dns finds the addresses tcp and tls use; auth opens the session."""
USES: dict[str, tuple[str, ...]] = {"auth": ("dns",)}
"""What a probe uses when it ran (auth connects to the address dns found) but can do without (libpq resolves)."""

def selected_probes(names: Sequence[str], options: CheckOptions) -> dict[str, str | None]:
    """Each probe name → None when it runs, or why it does not (``--only``, ``--skip``, a skipped need).

    ``--only`` runs the named probes plus url (the parse, no traffic) and what they need (dns for
    tcp/tls/auth, auth for slots/tables). ``--skip`` drops probes; one that needs a dropped probe shows
    ``skipped`` with the reason instead of guessing.
    """
    wanted = set(names)
    if options.only:
        wanted = {"url", *options.only}
        for name in options.only:
            wanted |= set(NEEDS.get(name, ())) | set(USES.get(name, ()))
            for need in NEEDS.get(name, ()):
                wanted |= set(USES.get(need, ()))
    wanted -= set(options.skip)
    why: dict[str, str | None] = {}
    for name in names:
        if name not in wanted:
            why[name] = "not selected (--skip)" if name in options.skip else "not selected (--only)"
            continue
        missing = [need for need in NEEDS.get(name, ()) if need in why and why[need] is not None]
        why[name] = f"needs {missing[0]}, which does not run" if missing else None
    return why


def run_check(
    target: Target,
    options: CheckOptions | None = None,
    probes: Sequence[ModuleType] | None = None,
    *,
    on_probe_start: Callable[[str], None] | None = None,
    on_probe_done: Callable[[ProbeResult], None] | None = None,
) -> CheckReport:
    """Run the checklist. ``on_probe_start(name)`` and ``on_probe_done(result)`` (redacted) let a caller
    draw as it goes. Ctrl-C ends the run early: the report holds the finished probes and
    ``interrupted`` names the probe that was running."""
    if probes is None:
        from neondoctor.probes import PROBES

        probes = PROBES
    options = options or CheckOptions()
    ctx = CheckContext(target=target, options=options)
    results: list[ProbeResult] = []
    skip_reason: str | None = None
    selection = selected_probes([p.name for p in probes], options)
    redactor = target.redactor
    current: str | None = None
    interrupted: str | None = None

    def done(result: ProbeResult) -> None:
        result.matches = [fitting_fixes(match, neon=is_neon(ctx)) for match in result.matches]
        _redact(result, redactor)
        results.append(result)
        if on_probe_done is not None:
            on_probe_done(result)

    try:
        for probe in probes:
            if selection.get(probe.name):
                done(ProbeResult(probe.name, Status.SKIP, str(selection[probe.name])))
                continue
            if skip_reason is None and ctx.expired():
                skip_reason = _cap_text(options)
                ctx.facts.setdefault("cap_hit_before", probe.name)
            if skip_reason is not None:
                done(ProbeResult(probe.name, Status.SKIP, skip_reason))
                continue
            current = probe.name
            if on_probe_start is not None:
                on_probe_start(probe.name)
            result = _run_with_retries(probe, ctx)
            _neon_after(ctx, result)
            current = None
            done(result)
            if result.status is Status.FAIL:
                skip_reason = _cap_text(options) if ctx.facts.get("abandoned") else f"blocked by {probe.name}"
    except KeyboardInterrupt:
        interrupted = current or "the checklist"
        ctx.facts["abandoned"] = True
    finally:
        _close(ctx)
    if interrupted is not None:
        verdict = {
            "status": "interrupted",
            "failed_probe": None,
            "layer": interrupted,
            "rule": None,
            "summary": f"Interrupted during {interrupted}.",
            "next_step": "Run the check again and let it finish (--total-timeout bounds it)",
        }
    else:
        verdict = redactor.obj(make_verdict(results, ctx, options), patterns=False)
        if verdict["status"] == "pass" and any(selection.values()):
            verdict["next_step"] = (
                "Nothing failed in the probes that ran; run without --only/--skip to check the whole chain"
            )
    report = CheckReport(target=target.to_json(), probes=results, verdict=verdict, facts=ctx.facts)
    report.interrupted = interrupted
    return report


def _redact(result: ProbeResult, redactor: Redactor) -> None:
    result.summary = redactor(result.summary)
    result.details = redactor.obj(result.details)
    result.matches = [redact_match(match, redactor) for match in result.matches]
    result.next_step = redactor.known(result.next_step) or None


def _run_with_retries(probe: ModuleType, ctx: CheckContext) -> ProbeResult:
    """Run a probe; a first connect that failed on a transient error is retried ``--retries`` times."""
    from neondoctor import neon

    result = _run_probe(probe, ctx)
    failures: list[str] = []
    while neon.is_transient(result) and len(failures) < ctx.options.retries:
        wait = neon.retry_wait(len(failures) + 1)
        if ctx.deadline - time.monotonic() < wait + 1:
            break
        failures.append(result.summary)
        time.sleep(wait)
        result = _run_probe(probe, ctx)
    if failures:
        result.details["attempts"] = len(failures) + 1
        result.details["retried_after"] = failures
        if result.status is not Status.FAIL:
            tries = "retry" if len(failures) == 1 else "retries"
            result.summary += f" (after {len(failures)} {tries}; first: {failures[0]})"
            result.status = Status.WARN
            result.next_step = (
                "An app that does not retry fails where this check's first attempt did: retry the first connect "
                "with backoff (0.5 s, 1 s, 2 s …) and allow connect_timeout=10 for a waking compute"
            )
            result.exact_next_step = True
    return result


def _neon_after(ctx: CheckContext, result: ProbeResult) -> None:
    from neondoctor import neon

    if result.name == "dns":
        neon.neon_from_cname(ctx, result)
    elif result.status is Status.FAIL:
        neon.endpoint_missing_fix(ctx, result)
    elif neon.wants_second_connect(ctx, result) and not ctx.expired():
        neon.second_connect(ctx, result)


def redact_match(match: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """Redact a rule match; the knowledge base's own words lose only known secrets.

    Pattern redaction would mangle advice such as "a URL password: `@` → `%40`", and text written
    in a rule file cannot hold the user's secrets by any means other than coincidence.
    """
    if "origin" not in match:
        return redactor.obj(match)
    authored = {"title", "cause", "fix", "docs"}
    return {key: redactor.obj(value, patterns=key not in authored) for key, value in match.items()}


def _cap_text(options: CheckOptions) -> str:
    return f"timed out (overall cap {options.total_timeout:g} s)"


def _run_probe(probe: ModuleType, ctx: CheckContext) -> ProbeResult:
    name = probe.name
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = probe.run(ctx)
        except Exception as exc:
            box["error"] = exc

    started = time.monotonic()
    worker = threading.Thread(target=work, name=f"probe-{name}", daemon=True)
    worker.start()
    worker.join(max(0.0, ctx.deadline - time.monotonic()) + GRACE_SECONDS)
    elapsed_ms = (time.monotonic() - started) * 1000
    if worker.is_alive():
        ctx.facts["abandoned"] = True
        result = ProbeResult(
            name,
            Status.FAIL,
            f"did not finish: {_cap_text(ctx.options)}",
            details={"total_timeout_s": ctx.options.total_timeout},
            next_step=f"Rerun with a larger --total-timeout; {name} was still waiting when the cap was reached",
        )
    elif "error" in box:
        exc = box["error"]
        text = f"{type(exc).__name__}: {exc}".strip()
        result = ProbeResult(
            name,
            Status.FAIL,
            f"internal error in the {name} probe: {text}",
            details={"error": text},
            next_step="This is a neondoctor bug: please report it with `neondoctor check --json` output",
        )
    else:
        result = box.get("result") or ProbeResult(name, Status.FAIL, f"the {name} probe returned nothing")
    result.duration_ms = elapsed_ms
    return result


def _close(ctx: CheckContext) -> None:
    session = ctx.session
    ctx.session = None
    if session is not None:
        with contextlib.suppress(Exception):
            session.close()
    for value in list(ctx.facts.values()):
        if hasattr(value, "close") and hasattr(value, "fileno"):
            with contextlib.suppress(Exception):
                value.close()


# --------------------------------------------------------------------------- verdict


def is_neon(ctx: CheckContext) -> bool:
    return bool(ctx.target.neon or ctx.facts.get("neon"))


def fitting_fixes(match: dict[str, Any], *, neon: bool) -> dict[str, Any]:
    """The match with only the fix steps that fit this host (a rule tags steps ``when: neon`` or ``not-neon``)."""
    when = match.get("fix_when")
    if not when:
        return match
    unfit = "not-neon" if neon else "neon"
    kept = [(step, tag) for step, tag in zip(match.get("fix") or [], when, strict=False) if tag != unfit]
    return {**match, "fix": [step for step, _ in kept], "fix_when": [tag for _, tag in kept]}


def choose_next_step(failed: ProbeResult) -> tuple[str | None, str]:
    """The failing probe's next step and where it comes from: the probe's own evidence first, then the rules.

    A probe marks a step exact when it follows from what it measured (the certificate's dates, the TCP
    timing, the server's recovery state); that beats any rule. Otherwise the top rule's first fix that fits
    the host (``fitting_fixes`` has dropped the others) is used, and the probe's generic step last.
    """
    if failed.next_step and failed.exact_next_step:
        return failed.next_step, "probe"
    for match in failed.matches[:1]:
        fixes = match.get("fix") or []
        if fixes:
            return fixes[0], f"rule:{match.get('id')}"
    return failed.next_step, "probe" if failed.next_step else "none"


def make_verdict(results: list[ProbeResult], ctx: CheckContext, options: CheckOptions) -> dict[str, Any]:
    failed = next((r for r in results if r.status is Status.FAIL), None)
    if failed is not None:
        top = failed.matches[0] if failed.matches else None
        next_step, source = choose_next_step(failed)
        layer = top.get("layer") if top else None
        passed = {r.name for r in results if r.status in (Status.PASS, Status.WARN)}
        if layer in passed:
            layer = None  # the rule blames a layer this run saw working: the evidence wins
        where = failed.name
        if layer and layer not in (failed.name, "url", "server", "client", "database", "pooler") and failed.name in (
            "auth",
            "tls",
        ):
            where = f"{failed.name} (a {layer} problem)"
        return {
            "status": "fail",
            "failed_probe": failed.name,
            "layer": layer or failed.name,
            "rule": top.get("id") if top else None,
            "summary": f"Failed at {where}: {failed.summary.rstrip('.')}.",
            "next_step": next_step or "Read the failing probe's details above (-v shows them all)",
            "next_step_from": source,
        }
    cap_probe = ctx.facts.get("cap_hit_before")
    if cap_probe:
        return {
            "status": "fail",
            "failed_probe": cap_probe,
            "layer": cap_probe,
            "rule": None,
            "summary": f"Stopped before {cap_probe}: {_cap_text(options)}.",
            "next_step": f"Rerun with a larger --total-timeout (now {options.total_timeout:g} s)",
            "next_step_from": "runner",
        }
    warnings = [r for r in results if r.status is Status.WARN]
    fine = _what_works(results)
    if warnings:
        first = warnings[0]
        count = len(warnings)
        names = ", ".join(w.name for w in warnings)
        return {
            "status": "warn",
            "failed_probe": None,
            "layer": first.name,
            "rule": None,
            "summary": f"Works, with {count} warning{'s' if count > 1 else ''} ({names}): {fine}.",
            "next_step": first.next_step or "Read the warnings above",
            "next_step_from": "probe" if first.next_step else "none",
        }
    return {
        "status": "pass",
        "failed_probe": None,
        "layer": None,
        "rule": None,
        "summary": f"All good: {fine}.",
        "next_step": "Nothing to fix: an app using this connection string should connect",
        "next_step_from": "none",
    }


def _what_works(results: list[ProbeResult]) -> str:
    """One line on what is fine, from the facts the passing probes found."""
    by_name = {r.name: r for r in results if r.status in (Status.PASS, Status.WARN)}
    parts: list[str] = []
    auth = by_name.get("auth")
    if auth is not None and auth.details.get("user"):
        details = auth.details
        version = str(details.get("server_version", "")).split(" ")[0]
        parts.append(
            f"{details['user']} logs in to {details.get('database')} (PostgreSQL {version}, "
            f"{'TLS' if details.get('tls') else 'no TLS'})"
        )
    slots = by_name.get("slots")
    if slots is not None and "left" in slots.details:
        parts.append(f"{slots.details['left']} connection slots left")
    tables = by_name.get("tables")
    if tables is not None and tables.status is Status.PASS:
        expected = tables.details.get("expected")
        if not expected:
            parts.append("tables present")
        elif len(expected) == 1:
            parts.append("the expected table is readable")
        else:
            parts.append(f"all {len(expected)} expected tables readable")
    if not parts:
        parts.append(", ".join(by_name) + " passed" if by_name else "nothing ran")
    skipped = [r.name for r in results if r.status is Status.SKIP]
    return "; ".join(parts) + (f" (skipped: {', '.join(skipped)})" if skipped else "")
