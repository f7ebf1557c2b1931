"""The verdict `check --json` prints, word for word, for each way a run can end (stand-in probes, no server)."""

from __future__ import annotations

import re
import socket
import time
from types import SimpleNamespace
from typing import Any

import pytest

from neondoctor.checklist import make_verdict, run_check, selected_probes
from neondoctor.probes.base import CheckContext, CheckOptions, ProbeResult, Status
from neondoctor.target import parse_target

URL = "postgresql://alice:Sup3r%2FS3cret%40pw@127.0.0.1:5432/app"
NEON_URL = "postgresql://alice:Sup3r%2FS3cret%40pw@ep-cool-darkness-123456.us-east-2.aws.neon.tech/app"
NAMES = ["url", "dns", "tcp", "tls", "auth", "slots", "tables"]


def probe(name: str, behaviour: Any) -> SimpleNamespace:
    def run(ctx: CheckContext) -> ProbeResult | None:
        outcome = behaviour(ctx) if callable(behaviour) else behaviour
        if outcome is None or isinstance(outcome, ProbeResult):
            return outcome
        return ProbeResult(name, Status(outcome), f"{name} said {outcome}")

    return SimpleNamespace(name=name, run=run)


def checked(*probes: SimpleNamespace, url: str = URL, **options: Any) -> dict[str, Any]:
    return run_check(parse_target(url), CheckOptions(**options), list(probes)).to_json()


def verdict_of(*results: ProbeResult, url: str = URL, **options: Any) -> dict[str, Any]:
    ctx = CheckContext(target=parse_target(url), options=CheckOptions(**options))
    return make_verdict(list(results), ctx, ctx.options)


# --------------------------------------------------------------------------- pass and warn


AUTH_OK = ProbeResult("auth", Status.PASS, "ok", details={
    "user": "alice", "database": "app", "server_version": "16.2 (Debian 16.2-1.pgdg120+2)", "tls": True})


@pytest.mark.parametrize(
    ("results", "summary"),
    [
        ([AUTH_OK], "All good: alice logs in to app (PostgreSQL 16.2, TLS)."),
        ([ProbeResult("auth", Status.PASS, "ok", details={"user": "bob", "database": "db", "server_version": "15.4",
                                                          "tls": False})],
         "All good: bob logs in to db (PostgreSQL 15.4, no TLS)."),
        ([AUTH_OK, ProbeResult("slots", Status.PASS, "ok", details={"left": 96}),
          ProbeResult("tables", Status.PASS, "ok", details={"expected": []})],
         "All good: alice logs in to app (PostgreSQL 16.2, TLS); 96 connection slots left; tables present."),
        ([ProbeResult("tables", Status.PASS, "ok", details={"expected": ["users"]})],
         "All good: the expected table is readable."),
        ([ProbeResult("tables", Status.PASS, "ok", details={"expected": ["users", "orders"]})],
         "All good: all 2 expected tables readable."),
        ([ProbeResult("url", Status.PASS, "ok"), ProbeResult("dns", Status.PASS, "ok"),
          ProbeResult("tls", Status.SKIP, "unix"), ProbeResult("auth", Status.PASS, "ok", details={"user": ""})],
         "All good: url, dns, auth passed (skipped: tls)."),
        ([ProbeResult("url", Status.SKIP, "no"), ProbeResult("dns", Status.SKIP, "no")],
         "All good: nothing ran (skipped: url, dns)."),
        ([ProbeResult("slots", Status.PASS, "ok", details={"used": 3})], "All good: slots passed."),
    ],
)
def test_a_healthy_run_says_what_works(results: list[ProbeResult], summary: str) -> None:
    assert verdict_of(*results) == {
        "status": "pass", "failed_probe": None, "layer": None, "rule": None, "summary": summary,
        "next_step": "Nothing to fix: an app using this connection string should connect", "next_step_from": "none",
    }


def test_one_warning_names_its_probe_and_its_next_step() -> None:
    slots = ProbeResult("slots", Status.WARN, "9 of 10 used", details={"left": 1}, next_step="pool_size=1")
    assert verdict_of(AUTH_OK, slots) == {
        "status": "warn", "failed_probe": None, "layer": "slots", "rule": None,
        "summary": "Works, with 1 warning (slots): alice logs in to app (PostgreSQL 16.2, TLS); "
                   "1 connection slots left.",
        "next_step": "pool_size=1", "next_step_from": "probe",
    }


def test_two_warnings_are_counted_and_the_first_one_without_a_step_says_read_them() -> None:
    tls = ProbeResult("tls", Status.WARN, "self-signed")
    slots = ProbeResult("slots", Status.WARN, "9 of 10 used", next_step="pool_size=1")
    assert verdict_of(tls, slots) == {
        "status": "warn", "failed_probe": None, "layer": "tls", "rule": None,
        "summary": "Works, with 2 warnings (tls, slots): tls, slots passed.",
        "next_step": "Read the warnings above", "next_step_from": "none",
    }


def test_a_partial_run_that_passes_says_to_run_the_whole_chain() -> None:
    report = checked(probe("url", "pass"), probe("dns", "pass"), probe("tls", "pass"), only=["url"])
    assert [p["summary"] for p in report["probes"]] == ["url said pass", "not selected (--only)",
                                                         "not selected (--only)"]
    assert report["verdict"]["status"] == "pass" and report["exit_code"] == 0 and report["failed_probe"] is None
    assert report["verdict"]["summary"] == "All good: url passed (skipped: dns, tls)."
    assert report["verdict"]["next_step"] == (
        "Nothing failed in the probes that ran; run without --only/--skip to check the whole chain"
    )
    whole = checked(probe("url", "pass"), probe("dns", "pass"))
    assert whole["verdict"]["next_step"] == "Nothing to fix: an app using this connection string should connect"


# --------------------------------------------------------------------------- fail


def match(rule: str, layer: str, fix: list[str], **more: Any) -> dict[str, Any]:
    return {"id": rule, "layer": layer, "title": "t", "cause": "c", "fix": fix, "docs": [], "excerpt": "", **more}


@pytest.mark.parametrize(
    ("failed", "passed", "layer", "where"),
    [
        ("auth", [], "slots", "auth (a slots problem)"),
        ("tls", [], "tcp", "tls (a tcp problem)"),
        ("tls", ["tcp"], None, "tls"),
        ("auth", ["tcp"], "dns", "auth (a dns problem)"),
        ("auth", [], "server", "auth"),
        ("auth", [], "pooler", "auth"),
        ("auth", [], "url", "auth"),
        ("auth", [], "client", "auth"),
        ("auth", [], "database", "auth"),
        ("auth", [], "auth", "auth"),
        ("tables", [], "slots", "tables"),
        ("dns", [], "tcp", "dns"),
    ],
)
def test_a_failure_names_the_layer_the_rule_blames_unless_the_run_saw_it_work(
    failed: str, passed: list[str], layer: str | None, where: str
) -> None:
    rule_layer = layer or "tcp"
    results = [ProbeResult(name, Status.PASS, "ok") for name in passed]
    results.append(ProbeResult(failed, Status.FAIL, "it broke.", matches=[match("some-rule", rule_layer, ["Do X"])]))
    results.append(ProbeResult("later", Status.SKIP, f"blocked by {failed}"))
    assert verdict_of(*results) == {
        "status": "fail", "failed_probe": failed, "layer": layer or failed, "rule": "some-rule",
        "summary": f"Failed at {where}: it broke.", "next_step": "Do X", "next_step_from": "rule:some-rule",
    }


def test_the_probes_exact_step_beats_the_rule_and_a_generic_one_does_not() -> None:
    rule = match("tls-cert-verify-failed", "tls", ["Point sslrootcert at the CA"])
    exact = ProbeResult("tls", Status.FAIL, "expired", matches=[rule], next_step="Renew it", exact_next_step=True)
    assert (verdict_of(exact)["next_step"], verdict_of(exact)["next_step_from"]) == ("Renew it", "probe")
    generic = ProbeResult("tls", Status.FAIL, "expired", matches=[rule], next_step="Look at it")
    assert (verdict_of(generic)["next_step"], verdict_of(generic)["next_step_from"]) == (
        "Point sslrootcert at the CA", "rule:tls-cert-verify-failed")


def test_a_top_rule_without_a_fix_leaves_the_probes_step_not_the_second_rules() -> None:
    matches = [match("first", "auth", []), match("second", "auth", ["The second rule's fix"])]
    with_step = ProbeResult("auth", Status.FAIL, "no", matches=matches, next_step="The probe's step")
    assert verdict_of(with_step) == {
        "status": "fail", "failed_probe": "auth", "layer": "auth", "rule": "first", "summary": "Failed at auth: no.",
        "next_step": "The probe's step", "next_step_from": "probe",
    }
    bare = ProbeResult("auth", Status.FAIL, "no", matches=matches)
    assert (verdict_of(bare)["next_step"], verdict_of(bare)["next_step_from"]) == (
        "Read the failing probe's details above (-v shows them all)", "none")
    unmatched = ProbeResult("dns", Status.FAIL, "nothing known")
    assert verdict_of(unmatched) == {
        "status": "fail", "failed_probe": "dns", "layer": "dns", "rule": None,
        "summary": "Failed at dns: nothing known.",
        "next_step": "Read the failing probe's details above (-v shows them all)", "next_step_from": "none",
    }


@pytest.mark.parametrize(
    ("url", "kept"),
    [(URL, ["Any host", "Only elsewhere"]), (NEON_URL, ["Any host", "Only on Neon"])],
)
def test_a_rule_shows_only_the_fix_steps_that_fit_the_host(url: str, kept: list[str]) -> None:
    fixes = match("r", "auth", ["Any host", "Only on Neon", "Only elsewhere"], fix_when=[None, "neon", "not-neon"])
    report = checked(probe("auth", ProbeResult("auth", Status.FAIL, "no", matches=[fixes])), url=url)
    assert report["probes"][0]["matches"][0]["fix"] == kept
    assert report["verdict"]["next_step"] == "Any host"


def test_a_neon_fact_found_by_a_probe_counts_as_neon_for_the_fix_steps() -> None:
    fixes = match("r", "auth", ["Only elsewhere", "Only on Neon"], fix_when=["not-neon", "neon"])

    def found_neon(ctx: CheckContext) -> str:
        ctx.facts["neon"] = True
        return "pass"

    report = checked(probe("url", found_neon), probe("auth", ProbeResult("auth", Status.FAIL, "no", matches=[fixes])))
    assert report["probes"][1]["matches"][0]["fix"] == ["Only on Neon"]
    assert report["verdict"]["next_step"] == "Only on Neon" and report["verdict"]["next_step_from"] == "rule:r"


# --------------------------------------------------------------------------- the runner


def test_a_probe_that_raises_names_the_bug_and_blocks_the_rest() -> None:
    def boom(ctx: CheckContext) -> ProbeResult:
        raise KeyError("missing")

    report = checked(probe("a", boom), probe("b", "pass"))
    failed = report["probes"][0]
    assert failed["summary"] == "internal error in the a probe: KeyError: 'missing'"
    assert failed["details"] == {"error": "KeyError: 'missing'"}
    assert failed["next_step"] == "This is a neondoctor bug: please report it with `neondoctor check --json` output"
    assert report["probes"][1]["summary"] == "blocked by a" and report["exit_code"] == 1


def test_a_probe_that_returns_nothing_is_a_failure() -> None:
    report = checked(probe("a", None), probe("b", "pass"))
    assert report["probes"][0]["status"] == "fail"
    assert report["verdict"]["summary"] == "Failed at a: the a probe returned nothing."
    assert report["verdict"]["next_step"] == "Read the failing probe's details above (-v shows them all)"


def test_an_abandoned_probe_says_how_to_give_it_more_time() -> None:
    def hang(ctx: CheckContext) -> str:
        time.sleep(2)
        return "pass"

    started = time.monotonic()
    report = checked(probe("slow", hang), probe("next", "pass"), total_timeout=0.3)
    assert time.monotonic() - started < 1.2
    slow = report["probes"][0]
    assert (slow["status"], slow["summary"]) == ("fail", "did not finish: timed out (overall cap 0.3 s)")
    assert slow["details"] == {"total_timeout_s": 0.3}
    assert slow["next_step"] == "Rerun with a larger --total-timeout; slow was still waiting when the cap was reached"
    assert report["verdict"]["failed_probe"] == "slow"
    assert report["probes"][1]["summary"] == "timed out (overall cap 0.3 s)"


def test_a_run_stopped_by_the_cap_names_the_probe_it_never_reached() -> None:
    def slow_pass(ctx: CheckContext) -> str:
        time.sleep(0.3)
        return "pass"

    report = checked(probe("a", slow_pass), probe("b", "pass"), probe("c", "pass"), total_timeout=0.25)
    assert [p["summary"] for p in report["probes"][1:]] == ["timed out (overall cap 0.25 s)"] * 2
    assert report["verdict"] == {
        "status": "fail", "failed_probe": "b", "layer": "b", "rule": None,
        "summary": "Stopped before b: timed out (overall cap 0.25 s).",
        "next_step": "Rerun with a larger --total-timeout (now 0.25 s)", "next_step_from": "runner",
    }
    assert report["failed_probe"] == "b" and report["exit_code"] == 1


def test_probe_timings_in_json_are_milliseconds_with_one_decimal() -> None:
    def nap(ctx: CheckContext) -> str:
        time.sleep(0.013)
        return "pass"

    report = checked(*(probe(name, nap) for name in "abcd"))
    for shown in report["probes"]:
        assert re.fullmatch(r"\d+\.\d", str(shown["duration_ms"])), shown["duration_ms"]
        assert 10 < shown["duration_ms"] < 1000
        assert shown["next_step_exact"] is False


def test_ctrl_c_during_a_probe_names_it_and_exits_130() -> None:
    closed: list[bool] = []

    def opens(ctx: CheckContext) -> str:
        ctx.session = SimpleNamespace(close=lambda: closed.append(True))
        return "pass"

    def interrupt(name: str) -> None:
        if name == "slots":
            raise KeyboardInterrupt

    report = run_check(parse_target(URL), CheckOptions(), [probe("auth", opens), probe("slots", "pass")],
                       on_probe_start=interrupt)
    shown = report.to_json()
    assert shown["interrupted"] is True and shown["interrupted_during"] == "slots"
    assert shown["exit_code"] == 130 and shown["failed_probe"] is None
    assert shown["verdict"] == {
        "status": "interrupted", "failed_probe": None, "layer": "slots", "rule": None,
        "summary": "Interrupted during slots.",
        "next_step": "Run the check again and let it finish (--total-timeout bounds it)",
    }
    assert [p["name"] for p in shown["probes"]] == ["auth"]
    assert closed == [True] and report.facts["abandoned"] is True


def test_ctrl_c_between_probes_is_during_the_checklist() -> None:
    def interrupt(result: ProbeResult) -> None:
        raise KeyboardInterrupt

    report = run_check(parse_target(URL), CheckOptions(), [probe("a", "pass")], on_probe_done=interrupt).to_json()
    assert report["verdict"]["summary"] == "Interrupted during the checklist."
    assert report["interrupted_during"] == "the checklist" and report["exit_code"] == 130


def test_a_finished_run_is_not_interrupted() -> None:
    report = checked(probe("a", "pass"))
    assert report["interrupted"] is False and "interrupted_during" not in report and report["exit_code"] == 0


def test_open_sockets_left_in_the_facts_are_closed_and_nothing_else_is() -> None:
    left_open = socket.socket()
    closed: list[str] = []
    not_a_file = SimpleNamespace(close=lambda: closed.append("not a file"))
    broken = SimpleNamespace(close=lambda: 1 / 0)

    def leaves(ctx: CheckContext) -> str:
        ctx.session = broken
        ctx.facts.update(tcp_socket=left_open, thing=not_a_file, broken=SimpleNamespace(close=broken.close, fileno=1))
        return "pass"

    report = checked(probe("a", leaves), probe("b", "pass"))
    assert report["exit_code"] == 0
    assert left_open.fileno() == -1 and closed == []


# --------------------------------------------------------------------------- --retries


def waking(rule: str) -> ProbeResult:
    return ProbeResult("auth", Status.FAIL, "Couldn't connect to compute node",
                       matches=[match(rule, "server", ["Wait and retry"])])


def attempts(*outcomes: ProbeResult) -> SimpleNamespace:
    left = list(outcomes)
    return probe("auth", lambda ctx: left.pop(0) if len(left) > 1 else left[0])


def test_retries_that_cure_a_waking_compute_turn_the_pass_into_a_warning() -> None:
    started = time.monotonic()
    report = checked(attempts(waking("neon-compute-unreachable"), waking("server-starting-up"),
                              ProbeResult("auth", Status.PASS, "alice logged in")), retries=2)
    assert 1.4 < time.monotonic() - started < 3
    auth = report["probes"][0]
    assert auth["status"] == "warn"
    assert auth["summary"] == "alice logged in (after 2 retries; first: Couldn't connect to compute node)"
    assert auth["details"] == {"attempts": 3, "retried_after": ["Couldn't connect to compute node"] * 2}
    assert auth["next_step"] == (
        "An app that does not retry fails where this check's first attempt did: retry the first connect with "
        "backoff (0.5 s, 1 s, 2 s …) and allow connect_timeout=10 for a waking compute"
    )
    assert auth["next_step_exact"] is True
    assert report["verdict"]["status"] == "warn" and report["verdict"]["next_step"] == auth["next_step"]


def test_one_retry_is_said_in_the_singular_and_a_failure_stays_a_failure() -> None:
    once = checked(attempts(waking("neon-compute-unreachable"), ProbeResult("auth", Status.PASS, "in")), retries=1)
    assert once["probes"][0]["summary"] == "in (after 1 retry; first: Couldn't connect to compute node)"
    still = checked(attempts(waking("neon-compute-unreachable")), retries=1)
    auth = still["probes"][0]
    assert auth["status"] == "fail" and auth["summary"] == "Couldn't connect to compute node"
    assert auth["details"] == {"attempts": 2, "retried_after": ["Couldn't connect to compute node"]}
    assert still["verdict"]["next_step"] == "Wait and retry"


@pytest.mark.parametrize(
    ("first", "options"),
    [
        (waking("neon-too-many-connection-attempts"), {"retries": 2}),
        (waking("neon-compute-unreachable"), {"retries": 0}),
        (waking("neon-compute-unreachable"), {"retries": 3, "total_timeout": 1.3}),
    ],
)
def test_no_retry_for_another_failure_without_retries_or_without_time_left(
    first: ProbeResult, options: dict[str, Any]
) -> None:
    started = time.monotonic()
    report = checked(attempts(first, ProbeResult("auth", Status.PASS, "in")), **options)
    assert time.monotonic() - started < 0.4
    assert report["probes"][0]["status"] == "fail" and report["probes"][0]["details"] == {}


# --------------------------------------------------------------------------- --only / --skip


@pytest.mark.parametrize(
    ("only", "skip", "expected"),
    [
        (["slots"], [], {"url": None, "dns": None, "tcp": "not selected (--only)", "tls": "not selected (--only)",
                         "auth": None, "slots": None, "tables": "not selected (--only)"}),
        (["auth"], [], {"url": None, "dns": None, "tcp": "not selected (--only)", "tls": "not selected (--only)",
                        "auth": None, "slots": "not selected (--only)", "tables": "not selected (--only)"}),
        (["tcp"], ["dns"], {"url": None, "dns": "not selected (--skip)", "tcp": "needs dns, which does not run",
                            "tls": "not selected (--only)", "auth": "not selected (--only)",
                            "slots": "not selected (--only)", "tables": "not selected (--only)"}),
        (["tables"], ["dns"], {"url": None, "dns": "not selected (--skip)", "tcp": "not selected (--only)",
                               "tls": "not selected (--only)", "auth": None, "slots": "not selected (--only)",
                               "tables": None}),
        ([], ["auth", "url"], {"url": "not selected (--skip)", "dns": None, "tcp": None, "tls": None,
                               "auth": "not selected (--skip)", "slots": "needs auth, which does not run",
                               "tables": "needs auth, which does not run"}),
        ([], [], dict.fromkeys(NAMES)),
    ],
)
def test_only_and_skip_say_why_each_probe_does_not_run(only: list[str], skip: list[str], expected: dict) -> None:
    assert selected_probes(NAMES, CheckOptions(only=only, skip=skip)) == expected
