"""`check --only/--skip/--quiet/--retries`, the JSON's failed_probe and exit_code, and the runner's callbacks."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest
from pgcluster import PgCluster
from test_check import check

from neondoctor.checklist import run_check, selected_probes
from neondoctor.probes.base import CheckContext, CheckOptions, ProbeResult, Status
from neondoctor.target import parse_target

NAMES = ["url", "dns", "tcp", "tls", "auth", "slots", "tables"]


def test_only_runs_the_named_probes_plus_url_and_what_they_need(pg: PgCluster) -> None:
    run = check(pg.url(sslmode="require"), "--json", "--only", "tables")
    assert run.code == 0
    assert run.statuses() == {"url": "pass", "dns": "skip", "tcp": "skip", "tls": "skip", "auth": "pass",
                              "slots": "skip", "tables": "pass"}
    assert run.probe("dns")["summary"].startswith("127.0.0.1 is an IP address")
    assert run.probe("tcp")["summary"] == "not selected (--only)"


def test_skip_drops_a_probe_and_what_needs_it_says_so(pg: PgCluster) -> None:
    run = check(pg.url(sslmode="require"), "--json", "--skip", "dns,slots")
    assert run.code == 0
    assert run.probe("dns")["summary"] == "not selected (--skip)"
    assert run.probe("tcp")["summary"] == run.probe("tls")["summary"] == "needs dns, which does not run"
    assert run.statuses()["auth"] == "pass" and run.statuses()["tables"] == "pass"


def test_unknown_probe_names_are_a_usage_error_listing_the_valid_ones() -> None:
    for option in ("--only", "--skip"):
        run = check("postgresql://alice@127.0.0.1:1/app", option, "tls,handshake")
        assert run.code == 2 and run.stdout == ""
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1
        assert "unknown probe 'handshake'" in lines[0] and ", ".join(NAMES) in lines[0]


def test_quiet_prints_the_verdict_line_alone(pg: PgCluster) -> None:
    ok = check(pg.url(sslmode="require"), "-q")
    assert ok.code == 0 and len(ok.stdout.strip().splitlines()) == 1
    assert ok.stdout.startswith(("✓ ", "! "))
    bad = check(pg.url(password="wrong-pw-55", sslmode="require"), "--quiet", secret="wrong-pw-55")
    assert bad.code == 1
    assert bad.stdout.strip().splitlines() == [bad.stdout.strip()]
    assert bad.stdout.startswith("✗ Failed at auth")


def test_json_has_a_stable_failed_probe_and_exit_code(pg: PgCluster) -> None:
    bad = check(pg.url(password="wrong-pw-55", sslmode="require"), "--json", secret="wrong-pw-55").report
    assert bad["failed_probe"] == "auth" and bad["exit_code"] == 1 and bad["interrupted"] is False
    good = check(pg.url(sslmode="require"), "--json").report
    assert good["failed_probe"] is None and good["exit_code"] == 0


def test_selection_rules() -> None:
    assert selected_probes(NAMES, CheckOptions(only=["tls"])) == {
        "url": None, "dns": None, "tcp": "not selected (--only)", "tls": None, "auth": "not selected (--only)",
        "slots": "not selected (--only)", "tables": "not selected (--only)"}
    assert selected_probes(NAMES, CheckOptions(skip=["auth"]))["tables"] == "needs auth, which does not run"
    assert selected_probes(NAMES, CheckOptions(skip=["url"]))["dns"] is None


def test_callbacks_see_each_probe_start_then_end_in_order() -> None:
    events: list[str] = []

    def stand_in(name: str, status: str) -> Any:
        def run(ctx: CheckContext) -> ProbeResult:
            events.append(f"run {name}")
            return ProbeResult(name, Status(status), f"{name} {status} pw-cb-42")

        return SimpleNamespace(name=name, run=run)

    report = run_check(
        parse_target("postgresql://alice:pw-cb-42@127.0.0.1:1/app"),
        CheckOptions(),
        [stand_in("a", "pass"), stand_in("b", "fail"), stand_in("c", "pass")],
        on_probe_start=lambda name: events.append(f"start {name}"),
        on_probe_done=lambda result: events.append(f"done {result.name} {result.status} {result.summary}"),
    )
    assert events == ["start a", "run a", "done a pass a pass ****", "start b", "run b", "done b fail b fail ****",
                      "done c skip blocked by b"]
    assert report.exit_code == 1 and report.to_json()["failed_probe"] == "b"


@pytest.mark.parametrize(("argv", "collecting"), [(["url", "postgresql://u@db.invalid/app"], False),
                                                   (["rules", "list"], True)])
def test_garbage_collection_waits_out_start_up_only_where_the_run_is_bounded(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], collecting: bool
) -> None:
    """The console entry point pauses cyclic GC while modules load (~10 ms of a healthy check); bounded commands
    keep it off, the others turn it on once the command is known, and the process gets it back in every case."""
    import gc

    from neondoctor import cli

    seen: list[bool] = []
    for name in ("load_target", "_load_rules"):
        original = getattr(cli, name)
        monkeypatch.setattr(cli, name, lambda *a, _f=original, **k: (seen.append(gc.isenabled()), _f(*a, **k))[1])
    monkeypatch.setattr(sys, "argv", ["neondoctor", *argv])
    with pytest.raises(SystemExit):
        cli.main()
    assert seen == [collecting]
    assert gc.isenabled()
