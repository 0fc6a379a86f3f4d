"""ResilienceChecks as the pages show them: the checks list, one check's page, an agent's checks.

Both the HTML views and the JSON mirror (`/api/checks`, `/api/checks/...`) render these
records, so a script reading the API sees exactly what a person sees on the page. Pure:
the store and `now` go in, plain data comes out.

The operator decides; this module only arranges. Verdicts, findings, scores and Passed
are shown as the operator wrote them, never re-judged here. The one thing joined in is
each experiment's expectations, which a run result does not repeat: they come from the
check's spec, matched by experiment name — the spec as it is now, so when the run
followed an older generation of the spec the record says so (`specChanged`).
"""

from __future__ import annotations

from typing import TypedDict

from agentops.api_types import CheckRun, ExpectSpec, ExperimentResult, Measurement, SeriesPoint
from agentops.durations import parse_duration
from agentops.errors import InvalidField
from agentops_ui.store import CHECK, Obj, Store, key_of
from agentops_ui.time_text import parse_time, seconds_since, seconds_until
from agentops_ui.typed_objects import ConditionView, check_spec, check_status, conditions

CHECK_PENDING = "Pending"


class CheckSummary(TypedDict):
    namespace: str
    name: str
    agent: str
    phase: str
    progress: str | None
    score: int | None  # the latest completed run's
    passed: bool | None  # the Passed condition; None before any run completed
    summary: str | None
    message: str | None
    schedule: str | None
    suspend: bool
    nextRunAt: str | None
    secondsToNextRun: float | None
    lastRunId: int | None
    lastRunAt: str | None  # when the latest run started
    secondsSinceLastRun: float | None
    conditions: list[ConditionView]


class Band(TypedDict):
    """One experiment's fault window, in seconds since the run started."""

    name: str
    verdict: str | None
    start: float
    end: float | None  # None: the fault has not ended yet


class ExperimentRow(TypedDict):
    name: str
    faultType: str
    weight: int | None
    state: str | None
    verdict: str | None
    findings: list[str]
    fault: str | None
    faultPhase: str | None
    faultMessage: str | None
    faultStartedAt: str | None
    faultEndedAt: str | None
    detectionSeconds: float | None
    recoverySeconds: float | None
    restarts: int | None
    escalated: bool | None
    incident: str | None
    incidentState: str | None
    worstPhase: str | None
    during: Measurement | None
    # From the check's spec (matched by name); None where the spec sets no such limit
    # or no longer has the experiment.
    detectedWithinSeconds: float | None
    recoveredWithinSeconds: float | None
    recoveryDeadlineSeconds: float | None
    maxErrorRate: float | None
    maxLatencyP95Ms: float | None
    inSpec: bool


class RunLink(TypedDict):
    id: int
    phase: str | None
    trigger: str | None
    startedAt: str | None
    score: int | None
    passed: bool | None


class RunView(TypedDict):
    id: int
    trigger: str | None
    phase: str | None
    generation: int | None
    specChanged: bool  # the run followed another generation of the spec than the current one
    startedAt: str | None
    finishedAt: str | None
    score: int | None
    passed: bool | None
    message: str | None
    baseline: Measurement | None
    experiments: list[ExperimentRow]
    series: list[SeriesPoint]
    bands: list[Band]


class CheckDetail(TypedDict):
    check: CheckSummary
    generation: int | None
    passingScore: int | None
    failOnVulnerableWeight: int | None
    runs: list[RunLink]  # newest first, as status.runs keeps them
    run: RunView | None  # the run shown: the requested one, else the latest


def _seconds(text: str | None, field: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text, field)
    except InvalidField:
        return None  # the API server validated it; an unreadable limit is shown as none


def _passed(check: Obj) -> bool | None:
    for c in check_status(check).get("conditions", []):
        if c["type"] == "Passed" and c["status"] in ("True", "False"):
            return c["status"] == "True"
    return None


def check_summary(check: Obj, now: float) -> CheckSummary:
    spec, status = check_spec(check), check_status(check)
    runs = status.get("runs", [])
    latest = runs[0] if runs else None
    last_at = latest.get("startedAt") if latest else None
    next_at = status.get("nextRunAt")
    ns, name = key_of(check)
    return CheckSummary(
        namespace=ns, name=name, agent=spec.get("agent", "?"),
        # No phase yet: the operator has not looked at the check, which is what Pending means.
        phase=status.get("phase", CHECK_PENDING),
        progress=status.get("progress"), score=status.get("score"), passed=_passed(check),
        summary=status.get("summary") or None, message=status.get("message") or None,
        schedule=spec.get("schedule"), suspend=spec.get("suspend", False),
        nextRunAt=next_at, secondsToNextRun=seconds_until(next_at, now),
        lastRunId=latest["id"] if latest else None, lastRunAt=last_at, secondsSinceLastRun=seconds_since(last_at, now),
        conditions=conditions(status),
    )


def checks_overview(store: Store, now: float) -> list[CheckSummary]:
    """Every check, by namespace and name."""
    return [check_summary(store.checks[key], now) for key in sorted(store.checks)]


def checks_by_agent(store: Store, now: float) -> dict[tuple[str, str], list[CheckSummary]]:
    """The checks that target each agent, keyed by the agent's (namespace, name)."""
    out: dict[tuple[str, str], list[CheckSummary]] = {}
    for summary in checks_overview(store, now):
        out.setdefault((summary["namespace"], summary["agent"]), []).append(summary)
    return out


def _float(value: float | None) -> float | None:
    return float(value) if value is not None else None


def experiment_row(result: ExperimentResult, expect: ExpectSpec | None) -> ExperimentRow:
    e = expect or ExpectSpec()
    limit_ms = e.get("maxLatencyP95Ms")
    return ExperimentRow(
        name=result["name"], faultType=result.get("faultType", "?"), weight=result.get("weight"),
        state=result.get("state"), verdict=result.get("verdict"), findings=list(result.get("findings", [])),
        fault=result.get("fault"), faultPhase=result.get("faultPhase"), faultMessage=result.get("faultMessage") or None,
        faultStartedAt=result.get("faultStartedAt"), faultEndedAt=result.get("faultEndedAt"),
        detectionSeconds=_float(result.get("detectionSeconds")), recoverySeconds=_float(result.get("recoverySeconds")),
        restarts=result.get("restarts"), escalated=result.get("escalated"),
        incident=result.get("incident"), incidentState=result.get("incidentState"), worstPhase=result.get("worstPhase"),
        during=result.get("during"),
        detectedWithinSeconds=_seconds(e.get("detectedWithin"), "expect.detectedWithin"),
        recoveredWithinSeconds=_seconds(e.get("recoveredWithin"), "expect.recoveredWithin"),
        recoveryDeadlineSeconds=_seconds(e.get("recoveryDeadline"), "expect.recoveryDeadline"),
        maxErrorRate=_float(e.get("maxErrorRate")),
        maxLatencyP95Ms=_float(limit_ms),
        inSpec=expect is not None,
    )


def fault_bands(run: CheckRun) -> list[Band]:
    """Each experiment's fault window relative to the run's start; experiments whose fault never started have none."""
    started = parse_time(run.get("startedAt"))
    if started is None:
        return []
    bands = []
    for result in run.get("experiments", []):
        begin = parse_time(result.get("faultStartedAt"))
        if begin is None:
            continue
        end = parse_time(result.get("faultEndedAt"))
        bands.append(Band(name=result["name"], verdict=result.get("verdict"), start=max(0.0, begin - started),
                          end=None if end is None else max(0.0, end - started)))
    return bands


def run_view(check: Obj, run: CheckRun) -> RunView:
    expects = {e["name"]: e.get("expect", ExpectSpec()) for e in check_spec(check).get("experiments", [])}
    generation = run.get("generation")
    current = (check.get("metadata") or {}).get("generation")
    return RunView(
        id=run["id"], trigger=run.get("trigger"), phase=run.get("phase"), generation=generation,
        specChanged=generation is not None and current is not None and generation != current,
        startedAt=run.get("startedAt"), finishedAt=run.get("finishedAt"), score=run.get("score"),
        passed=run.get("passed"), message=run.get("message") or None, baseline=run.get("baseline"),
        experiments=[experiment_row(r, expects.get(r["name"])) for r in run.get("experiments", [])],
        series=list(run.get("series", [])), bands=fault_bands(run),
    )


def run_link(run: CheckRun) -> RunLink:
    return RunLink(id=run["id"], phase=run.get("phase"), trigger=run.get("trigger"), startedAt=run.get("startedAt"),
                   score=run.get("score"), passed=run.get("passed"))


class RunNotKept(LookupError):
    """The requested run is not (or no longer) among status.runs."""


def check_detail(store: Store, namespace: str, name: str, now: float, run_id: int | None = None) -> CheckDetail | None:
    """One check and one of its runs (`run_id`, else the latest); None if there is no such check."""
    check = store.checks.get((namespace, name))
    if check is None:
        return None
    runs = check_status(check).get("runs", [])
    if run_id is None:
        chosen = runs[0] if runs else None
    else:
        chosen = next((r for r in runs if r["id"] == run_id), None)
        if chosen is None:
            raise RunNotKept(f"run {run_id} of {namespace}/{name} is not among the runs kept "
                             f"({', '.join(str(r['id']) for r in runs) or 'none'})")
    spec = check_spec(check)
    return CheckDetail(
        check=check_summary(check, now),
        generation=(check.get("metadata") or {}).get("generation"),
        passingScore=spec.get("passingScore"), failOnVulnerableWeight=spec.get("failOnVulnerableWeight"),
        runs=[run_link(r) for r in runs],
        run=run_view(check, chosen) if chosen is not None else None,
    )


def checks_absent(store: Store) -> str | None:
    """Why no check can be shown at all: the API server does not serve the kind (its CRD is not installed)."""
    for state in store.sources.values():
        if state.kind == CHECK and state.absent is not None:
            return state.absent
    return None
