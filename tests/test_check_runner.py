"""The runner's promises with stand-in probes: order, skips, the overall cap, no tracebacks, no secrets."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from neondoctor.checklist import make_verdict, run_check
from neondoctor.probes.base import CheckContext, CheckOptions, ProbeResult, Status
from neondoctor.probes.slots import pool_advice
from neondoctor.probes.tables import BadTableName, parse_table_name, split_table_list
from neondoctor.render.text import render_check
from neondoctor.target import parse_target

SECRET = "Sup3r/S3cret@pw"
URL = "postgresql://alice:Sup3r%2FS3cret%40pw@127.0.0.1:5432/app"


def probe(name: str, behaviour: Any) -> SimpleNamespace:
    def run(ctx: CheckContext) -> ProbeResult:
        outcome = behaviour(ctx) if callable(behaviour) else behaviour
        if isinstance(outcome, ProbeResult):
            return outcome
        return ProbeResult(name, Status(outcome), f"{name} said {outcome}")

    return SimpleNamespace(name=name, run=run)


def test_a_fail_skips_the_rest_as_blocked() -> None:
    report = run_check(parse_target(URL), CheckOptions(), [probe("a", "pass"), probe("b", "fail"), probe("c", "pass")])
    assert [(p.name, str(p.status)) for p in report.probes] == [("a", "pass"), ("b", "fail"), ("c", "skip")]
    assert report.probes[2].summary == "blocked by b"
    assert report.verdict["failed_probe"] == "b" and report.failed


def test_a_probe_that_raises_is_a_redacted_fail_not_a_traceback() -> None:
    def boom(ctx: CheckContext) -> ProbeResult:
        raise RuntimeError(f"could not use password={SECRET} for {URL}")

    report = run_check(parse_target(URL), CheckOptions(), [probe("a", boom), probe("b", "pass")])
    failed = report.probes[0]
    assert failed.status is Status.FAIL
    assert "internal error in the a probe: RuntimeError" in failed.summary
    text = render_check(report.to_json(), verbose=True)
    assert "Traceback" not in text
    for blob in (text, str(report.to_json())):
        assert SECRET not in blob and "Sup3r%2FS3cret%40pw" not in blob


def test_a_hanging_probe_is_abandoned_just_after_the_cap() -> None:
    release = threading.Event()

    def hang(ctx: CheckContext) -> ProbeResult:
        release.wait(10)
        return ProbeResult("slow", Status.PASS, "finally")

    started = time.monotonic()
    report = run_check(parse_target(URL), CheckOptions(total_timeout=0.5), [probe("slow", hang), probe("next", "pass")])
    elapsed = time.monotonic() - started
    release.set()
    assert elapsed < 1.5
    assert report.probes[0].status is Status.FAIL and "overall cap 0.5 s" in report.probes[0].summary
    assert report.probes[1].status is Status.SKIP and report.probes[1].summary == "timed out (overall cap 0.5 s)"
    assert report.verdict["status"] == "fail"


def test_probes_after_the_deadline_are_skipped_with_the_cap() -> None:
    def slow_pass(ctx: CheckContext) -> str:
        time.sleep(0.3)
        return "pass"

    report = run_check(parse_target(URL), CheckOptions(total_timeout=0.2), [probe("a", slow_pass), probe("b", "pass")])
    assert report.probes[0].status is Status.PASS
    assert report.probes[1].summary == "timed out (overall cap 0.2 s)"
    assert report.verdict["status"] == "fail" and report.verdict["failed_probe"] == "b"
    assert "--total-timeout" in report.verdict["next_step"]


def test_the_session_is_closed_even_after_a_failure() -> None:
    closed = []
    session = SimpleNamespace(close=lambda: closed.append(True))

    def opens(ctx: CheckContext) -> str:
        ctx.session = session
        return "pass"

    run_check(parse_target(URL), CheckOptions(), [probe("auth", opens), probe("b", "fail")])
    assert closed == [True]


def test_verdict_on_warnings_names_the_first_warning_next_step() -> None:
    results = [
        ProbeResult("auth", Status.PASS, "ok"),
        ProbeResult("slots", Status.WARN, "9 of 10 used", next_step="pool_size=1"),
    ]
    ctx = CheckContext(target=parse_target(URL), options=CheckOptions())
    verdict = make_verdict(results, ctx, ctx.options)
    assert verdict["status"] == "warn" and verdict["failed_probe"] is None
    assert verdict["next_step"] == "pool_size=1"
    assert "auth" in verdict["summary"]


def test_fail_verdict_takes_the_top_rule_first_fix() -> None:
    match = {"id": "slots-reserved", "layer": "slots", "title": "t", "cause": "c", "fix": ["Use the pooler"],
             "docs": [], "excerpt": ""}
    results = [ProbeResult("auth", Status.FAIL, "remaining connection slots are reserved", matches=[match])]
    ctx = CheckContext(target=parse_target(URL), options=CheckOptions())
    verdict = make_verdict(results, ctx, ctx.options)
    assert verdict["next_step"] == "Use the pooler"
    assert verdict["summary"].startswith("Failed at auth (a slots problem):")


@pytest.mark.parametrize(
    ("text", "schema", "name"),
    [
        ("users", None, "users"),
        ("Users", None, "users"),
        ('"Accounts"', None, "Accounts"),
        ("billing.invoices", "billing", "invoices"),
        ('Billing."My ""odd"" table"', "billing", 'My "odd" table'),
        (' "a.b" ', None, "a.b"),
    ],
)
def test_table_names_are_read_like_postgresql(text: str, schema: str | None, name: str) -> None:
    parsed = parse_table_name(text)
    assert (parsed.schema, parsed.name) == (schema, name)


@pytest.mark.parametrize("text", ["a.b.c", '"open', "", "a.", ".b", 'a"b"'])
def test_bad_table_names(text: str) -> None:
    with pytest.raises(BadTableName):
        parse_table_name(text)


def test_table_lists_split_outside_quotes() -> None:
    assert split_table_list('users, "a,b",billing.invoices,') == ["users", '"a,b"', "billing.invoices"]


@pytest.mark.parametrize(
    ("left", "pool_size", "max_overflow"),
    [(0, 0, 0), (1, 1, 0), (2, 1, 1), (3, 1, 1), (4, 2, 2), (10, 5, 5), (96, 5, 5)],
)
def test_pool_advice_fits_in_the_slots_left(left: int, pool_size: int, max_overflow: int) -> None:
    advice = pool_advice(left)
    assert (advice["pool_size"], advice["max_overflow"]) == (pool_size, max_overflow)
    assert advice["pool_size"] + advice["max_overflow"] <= left


def test_rule_advice_is_not_mangled_but_known_secrets_and_excerpts_are_hidden() -> None:
    from neondoctor.checklist import redact_match

    redactor = parse_target(URL).redactor
    match = {
        "id": "auth-password-failed", "layer": "auth", "title": "Password authentication failed",
        "cause": "c", "fix": ["Percent-encode a URL password: `@` → `%40`", f"not {SECRET}"], "docs": [],
        "excerpt": f"FATAL: password={SECRET} rejected", "captures": {"user": "alice"}, "origin": "builtin",
    }
    redacted = redact_match(match, redactor)
    assert redacted["fix"][0] == "Percent-encode a URL password: `@` → `%40`"
    assert SECRET not in str(redacted)
    assert redacted["captures"] == {"user": "alice"}
    finding = {"id": "url-x", "layer": "url", "title": f"password={SECRET}", "cause": "", "fix": [], "docs": []}
    assert SECRET not in str(redact_match(finding, redactor))


def test_probe_details_hide_passwords_in_keys_nested_values_and_lists() -> None:
    """A probe's details carry foreign text (server errors): shaped passwords go too, at any depth; keys stay keys."""
    other = "password=An0ther9pw"
    details = {"server": f"FATAL: {other}", SECRET: ["x", f"dsn {other}", {"k": other}], 5432: "port"}
    report = run_check(parse_target(URL), CheckOptions(), [probe("a", ProbeResult("a", Status.FAIL, "no", details))])
    shown = next(p for p in report.to_json()["probes"] if p["name"] == "a")["details"]
    assert shown == {
        "server": "FATAL: password=****", "****": ["x", "dsn password=****", {"k": "password=****"}], 5432: "port"
    }
