"""The CI gate of `agentops check run`, which run it follows, and its progress line. Pure, no I/O."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import pytest

from agentops.api_types import CheckRun, CheckStatus, ExperimentResult
from agentops.check_commands import Progress
from agentops.check_gate import EXIT_CODES_HELP, Thresholds, gate
from agentops.check_progress import new_run_request, progress_key, progress_line, requested_run

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
STAMP = "2025-01-01T12:00:00Z"


def result(name: str, weight: int, verdict: str | None = None, **fields: Any) -> ExperimentResult:
    e: dict[str, Any] = {"name": name, "weight": weight, "state": "Done" if verdict else "Pending", **fields}
    if verdict:
        e["verdict"] = verdict
    return cast(ExperimentResult, e)


def completed(score: int | None, *experiments: ExperimentResult) -> CheckRun:
    run = CheckRun(id=4, phase="Completed", experiments=list(experiments))
    if score is not None:
        run["score"] = score
    return run


MIXED = completed(58, result("crash", 3, "Resilient"), result("latency", 1, "Degraded"), result("rate-limit", 2, "Vulnerable"))
SPEC = {"passingScore": 80, "failOnVulnerableWeight": 100}


# ------------------------------------------------------------------ thresholds and gate


def test_thresholds_come_from_flags_then_spec_then_the_crd_defaults() -> None:
    assert Thresholds.of(SPEC) == Thresholds(80, 100)
    assert Thresholds.of({"passingScore": 50, "failOnVulnerableWeight": 2}, 40) == Thresholds(40, 2)
    assert Thresholds.of({}, None, 3) == Thresholds(80, 3)


def test_a_score_at_the_threshold_passes() -> None:
    verdict = gate(MIXED, Thresholds(58, 100))
    assert verdict.exit_code == 0 and verdict.passed
    assert verdict.summary() == "gate PASSED: score 58 ≥ 58, no Vulnerable experiment of weight ≥ 100"


def test_a_score_below_the_threshold_fails() -> None:
    verdict = gate(MIXED, Thresholds.of(SPEC))
    assert verdict.exit_code == 1 and verdict.reasons == ("score 58 is below 80",)


def test_a_heavy_vulnerable_experiment_fails_whatever_the_score() -> None:
    verdict = gate(MIXED, Thresholds(0, 2))
    assert verdict.exit_code == 1
    assert verdict.reasons == ("experiment rate-limit is Vulnerable with weight 2 (≥ 2)",)
    assert gate(MIXED, Thresholds(0, 3)).exit_code == 0


def test_a_completed_run_without_score_fails_the_gate() -> None:
    verdict = gate(completed(None, result("crash", 1, "Aborted")), Thresholds(0, 100))
    assert verdict.exit_code == 1 and "no experiment was judged" in verdict.reasons[0]


@pytest.mark.parametrize("phase", ["Aborted", "Failed"])
def test_a_run_that_did_not_complete_exits_3_with_its_message(phase: str) -> None:
    run = CheckRun(id=4, phase=phase, message="steady state never held")  # type: ignore[typeddict-item]
    verdict = gate(run, Thresholds(0, 100))
    assert verdict.exit_code == 3 and verdict.reasons == (f"run 4 {phase}: steady state never held",)
    assert verdict.summary().startswith("gate NOT COMPLETED: ")


def test_an_unfinished_run_is_not_completed() -> None:
    assert gate(CheckRun(id=1, phase="Running"), Thresholds(0, 100)).exit_code == 3


def test_the_help_documents_every_exit_code() -> None:
    for code in ("0 ", "1 ", "2 ", "3 ", "130 "):
        assert f"\n  {code}" in EXIT_CODES_HELP


# ------------------------------------------------------------------ which run is ours


def test_a_run_request_is_time_based_and_random() -> None:
    assert new_run_request(T0, lambda n: "ab" * n) == "20250101T120000Z-ababab"
    assert new_run_request(T0) != new_run_request(T0)


def test_our_run_is_the_newest_once_the_operator_answered_our_request() -> None:
    old, new = CheckRun(id=1, phase="Completed"), CheckRun(id=2, phase="Baseline")
    assert requested_run(CheckStatus(runRequest="before", runs=[old]), "ours") is None
    assert requested_run(CheckStatus(runRequest="ours", runs=[new, old]), "ours") == new
    assert requested_run(CheckStatus(runRequest="ours"), "ours") is None


def test_once_known_our_run_is_followed_by_id_even_when_a_newer_run_starts() -> None:
    ours, newer = CheckRun(id=2, phase="Running"), CheckRun(id=3, phase="Baseline")
    assert requested_run(CheckStatus(runRequest="someone-else", runs=[newer, ours]), "ours", 2) == ours
    assert requested_run(CheckStatus(runRequest="someone-else", runs=[newer]), "ours", 2) is None


# ------------------------------------------------------------------ the progress line


def run_with(*experiments: ExperimentResult, phase: str = "Running") -> CheckRun:
    return CheckRun(id=7, phase=phase, startedAt=STAMP, experiments=list(experiments))  # type: ignore[typeddict-item]


def test_the_progress_line_shows_the_bar_the_experiment_and_how_long_its_fault_is_active() -> None:
    run = run_with(*(result(f"e{i}", 1, "Resilient") for i in range(3)),
                   result("latency", 1, state="Observing", faultStartedAt=STAMP),
                   result("crash", 1), result("error", 1))
    assert progress_line(run, T0 + timedelta(seconds=12)) == "[#####-----] 3/6 run 7 latency: Observing (fault active 12s)"


@pytest.mark.parametrize(("fields", "text"), [
    ({"state": "Settling", "startedAt": STAMP}, "a: Settling (waiting for steady state, 5s)"),
    ({"state": "Injecting"}, "a: Injecting (fault created, not active yet)"),
    ({"state": "Recovering", "faultEndedAt": STAMP}, "a: Recovering (fault ended 5s ago)"),
])
def test_each_state_reads_as_what_is_happening(fields: dict[str, Any], text: str) -> None:
    line = progress_line(run_with(result("a", 1, **fields), result("b", 1)), T0 + timedelta(seconds=5))
    assert line == f"[----------] 0/2 run 7 {text}"


def test_the_baseline_and_the_end_of_a_run() -> None:
    assert progress_line(run_with(result("a", 1, state="Settling"), phase="Baseline"), T0 + timedelta(seconds=9)) == \
        "[----------] 0/1 run 7 baseline: checking the steady state (9s)"
    done = run_with(result("a", 1, "Resilient"), phase="Completed")
    done["score"] = 100
    assert progress_line(done, T0) == "[##########] 1/1 run 7 Completed, score 100"


def test_a_ci_log_line_is_printed_only_when_something_but_the_clock_changes() -> None:
    observing = run_with(result("a", 1, state="Observing", faultStartedAt=STAMP))
    assert progress_key(observing) == progress_key(run_with(result("a", 1, state="Observing", faultStartedAt=STAMP)))
    assert progress_key(observing) != progress_key(run_with(result("a", 1, state="Recovering")))
    assert progress_line(observing, T0) != progress_line(observing, T0 + timedelta(seconds=1))


# ------------------------------------------------------------------ the display


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_one_line_is_rewritten_and_in_a_log_a_line_per_change() -> None:
    observing = run_with(result("a", 1, state="Observing", faultStartedAt=STAMP))
    recovering = run_with(result("a", 1, state="Recovering", faultEndedAt=STAMP))
    tty, log = Terminal(), io.StringIO()
    for stream in (tty, log):
        shown = Progress(stream)
        for moment, run in ((0, observing), (1, observing), (2, recovering)):
            shown.show(run, T0 + timedelta(seconds=moment))
        shown.end()
    lines = [progress_line(run, T0 + timedelta(seconds=moment)) for moment, run in ((0, observing), (1, observing), (2, recovering))]
    assert lines[0].endswith("(fault active 0s)") and lines[1].endswith("(fault active 1s)")
    # Each line overwrites the last, padded to its length so no tail of a longer one stays.
    assert tty.getvalue() == f"\r{lines[0]}\r{lines[1].ljust(len(lines[0]))}\r{lines[2].ljust(len(lines[1]))}\n"
    assert log.getvalue() == f"{lines[0]}\n{lines[2]}\n"
