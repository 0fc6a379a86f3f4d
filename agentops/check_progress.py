"""Following one run of a ResilienceCheck: which run is ours, and a progress line. Pure.

`agentops check run` asks for a run by writing a fresh value into the
agentops.dev/run-requested annotation; the operator answers by starting a run and
copying that value into status.runRequest. The run to follow is therefore the newest
run once status.runRequest equals our value; from then on it is followed by its id,
so a later request (another pipeline) that starts a newer run does not steal it.

The progress line is rewritten in place on a terminal; in a CI log a line is printed
only when `progress_key` changes (the elapsed seconds in the line would otherwise
print a line per poll).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime

from agentops.api_types import CheckRun, CheckStatus, ExperimentResult
from agentops.check_gate import FINISHED_PHASES
from agentops.durations import format_duration
from agentops.times import parse_time

# Characters in the bar: enough to see movement in a suite of up to 20 experiments.
BAR_WIDTH = 10


def new_run_request(now: datetime, token: Callable[[int], str] = secrets.token_hex) -> str:
    """A fresh annotation value: the time (readable in `kubectl describe`) and 6 random hex
    digits, so two pipelines asking in the same second still ask twice."""
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{token(3)}"


def requested_run(status: CheckStatus, request: str, run_id: int | None = None) -> CheckRun | None:
    """Our run: by id once known, else the newest run when the operator has answered `request`."""
    runs = status.get("runs") or []
    if run_id is not None:
        return next((r for r in runs if r["id"] == run_id), None)
    if status.get("runRequest") == request and runs:
        return runs[0]
    return None


def finished(run: CheckRun) -> bool:
    return run.get("phase") in FINISHED_PHASES


def _current(run: CheckRun) -> ExperimentResult | None:
    """The experiment under way: the first not Done that has started (Pending ones have not)."""
    for e in run.get("experiments") or []:
        if e.get("state") != "Done":
            return e if e.get("state", "Pending") != "Pending" else None
    return None


def _since(start: str | None, now: datetime) -> str:
    began = parse_time(start)
    if began is None:
        return "?"
    # Whole seconds: a progress line ticking in milliseconds is noise.
    whole = int(max((now - began).total_seconds(), 0.0))
    return format_duration(whole) if whole else "0s"


def _doing(e: ExperimentResult, now: datetime) -> str:
    state = e.get("state", "Pending")
    if state == "Observing":
        return f"Observing (fault active {_since(e.get('faultStartedAt'), now)})"
    if state == "Recovering":
        return f"Recovering (fault ended {_since(e.get('faultEndedAt'), now)} ago)"
    if state == "Injecting":
        return "Injecting (fault created, not active yet)"
    if state == "Settling":
        return f"Settling (waiting for steady state, {_since(e.get('startedAt'), now)})"
    return state


def _bar(done: int, total: int) -> str:
    filled = BAR_WIDTH * done // total if total else 0
    return f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {done}/{total}"


def progress_line(run: CheckRun, now: datetime) -> str:
    """`[#####-----] 3/6 latency: Observing (fault active 12s)`."""
    experiments = run.get("experiments") or []
    done = sum(1 for e in experiments if e.get("state") == "Done")
    head = f"{_bar(done, len(experiments))} run {run['id']}"
    phase = run.get("phase", "Baseline")
    if finished(run):
        score = f", score {run['score']}" if "score" in run else ""
        return f"{head} {phase}{score}"
    if phase == "Baseline":
        return f"{head} baseline: checking the steady state ({_since(run.get('startedAt'), now)})"
    current = _current(run)
    return f"{head} {current['name']}: {_doing(current, now)}" if current else f"{head} {phase}"


def progress_key(run: CheckRun) -> tuple[object, ...]:
    """What a CI log line is printed for: the phase, the count judged, the current experiment and its state."""
    current = _current(run)
    done = sum(1 for e in run.get("experiments") or [] if e.get("state") == "Done")
    return (run["id"], run.get("phase"), done, current and current["name"], current and current.get("state"))
