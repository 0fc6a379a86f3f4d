"""One ResilienceCheck's runs as a state machine: what to do next, given what is seen.

`CheckRunner.step` is called once a tick with what the operator sees now (the Agent,
the check's Faults, the halt switch, whether another check holds the Agent) and the
time; it advances the newest run in `status` and returns the actions to carry out
(create or delete a Fault, post an Event: check_io.py); check_conditions.py sets the
conditions. It does no I/O, so every path is tested
without a cluster or a sleep.

A run goes: Baseline (the first experiment Settling: the steady-state hypothesis must
hold for `baseline`) → for each experiment: Settling (hypothesis held for `settle`
since the previous one) → Injecting (its Fault created, named
<check>-<run>-<experiment>) → Observing (the Fault Active: when the Agent leaves and
regains Healthy, escalation, restarts, the incident) → Recovering (the Fault ended:
wait for Healthy, at most `recoveryDeadline`) → Done (judged by check_verdict, its
Fault deleted) → Completed with a score.

Never twice: an experiment's state is written to status before its Fault is created,
and the Fault's name is fixed by run and experiment, so a second create is refused by
the API server. An operator that restarts mid-experiment (state Injecting, Observing
or Recovering, and no memory of it here) cannot trust the numbers it missed: it marks
the experiment Aborted, deletes its Fault and goes on with the next.

Aborting - the halt switch, the Agent deleted, the check deleted (by the controller),
steady state not regained - deletes the running experiment's Fault at once; the
remaining experiments are Aborted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agentops import API_VERSION
from agentops.api_types import (CHECK_LABEL, EXPERIMENT_LABEL, RUN_LABEL, CheckRun, CheckStatus, ExperimentResult,
                                FaultPhase, RunTrigger)
from agentops.times import format_time, parse_time
from agentops_operator import check_conditions, check_verdict
from agentops_operator.check_io import Action, CreateFault, DeleteFault, PostEvent, Seen
from agentops_operator.check_meter import Meter
from agentops_operator.check_settings import CheckSettings, Experiment

# A Fault that is not Active this long after it was created will not be: the
# experiment is Aborted (the Fault's own status says why, e.g. Failed).
INJECT_TIMEOUT_S = 60.0
ACTIVE_STATES = ("Injecting", "Observing", "Recovering")
FINAL_FAULT_PHASES: tuple[FaultPhase, ...] = ("Expired", "Halted", "Aborted", "Failed")




@dataclass
class _Memory:
    """Soft state of the run in progress; lost on an operator restart (see the docstring)."""

    run_id: int
    healthy_since: datetime | None = None
    restarts_at_fault: int = 0
    created: set[str] = field(default_factory=set)
    inject_started: datetime | None = None
    # Healing's Stalled is a level: one left over from before the fault is not this
    # experiment's escalation (until it clears and comes back).
    stalled_before: bool = False


def fault_name(check: str, run_id: int, experiment: str) -> str:
    return f"{check}-{run_id}-{experiment}"


def _ts(moment: datetime) -> str:
    return format_time(moment, milliseconds=True)


class CheckRunner:
    def __init__(self, namespace: str, name: str, uid: str, status: CheckStatus) -> None:
        self.namespace, self.name, self.uid = namespace, name, uid
        self.status: CheckStatus = status
        self.meter = Meter()
        self._memory: _Memory | None = None
        self._actions: list[Action] = []
        self._schedule_seen: str | None = None

    # ------------------------------------------------------------------ queries

    @property
    def run(self) -> CheckRun | None:
        runs = self.status.get("runs") or []
        return runs[0] if runs else None

    @property
    def running(self) -> bool:
        run = self.run
        return run is not None and run.get("phase") in ("Baseline", "Running")

    def current(self) -> tuple[int, ExperimentResult] | None:
        run = self.run
        if run is None or not self.running:
            return None
        for i, e in enumerate(run.get("experiments") or []):
            if e.get("state") != "Done":
                return i, e
        return None

    # ------------------------------------------------------------------ the step

    def step(self, settings: CheckSettings, generation: int, seen: Seen) -> list[Action]:
        self._actions = []
        if self.running:
            self._adopt(seen.now)
            self._advance(settings, seen)
        else:
            self._maybe_start(settings, generation, seen)
        check_conditions.summarize(self.status, settings, generation, seen.now)
        return self._actions

    def abort(self, reason: str, now: datetime) -> list[Action]:
        """Stop the run in progress (the check is being deleted): delete its Fault."""
        self._actions = []
        if self.running:
            self._end_run("Aborted", reason, now)
        return self._actions

    # ------------------------------------------------------------------ starting a run

    def _due(self, settings: CheckSettings, seen: Seen) -> RunTrigger | None:
        if settings.suspend:
            return None
        if not self.status.get("runs") and settings.schedule is None:
            return "Created"
        if seen.run_request is not None and seen.run_request != self.status.get("runRequest"):
            return "Requested"
        due = parse_time(self.status.get("nextRunAt"))
        if settings.schedule is not None and due is not None and seen.now >= due:
            return "Schedule"
        return None

    def _maybe_start(self, settings: CheckSettings, generation: int, seen: Seen) -> None:
        if settings.schedule is not None and not settings.suspend and (
                "nextRunAt" not in self.status or str(settings.schedule) != self._schedule_seen):
            self.status["nextRunAt"] = format_time(settings.schedule.next_after(seen.now))
            self._schedule_seen = str(settings.schedule)
        elif settings.schedule is None or settings.suspend:
            self.status.pop("nextRunAt", None)
        trigger = self._due(settings, seen)
        if trigger is None:
            if not self.status.get("runs"):
                self.status["phase"] = "Scheduled" if settings.schedule and not settings.suspend else "Pending"
                self.status["message"] = "suspended" if settings.suspend else "waiting for the first scheduled run"
            elif settings.schedule is not None and not settings.suspend and self.status.get("phase") != "Failed":
                self.status["message"] = f"next run at {self.status.get('nextRunAt')}"
            return
        if seen.held_by is not None:
            self.status["phase"] = "Pending"
            self.status["message"] = f"waiting: check {seen.held_by} is running on Agent {settings.agent}"
            return
        runs = list(self.status.get("runs") or [])
        run_id = (runs[0]["id"] + 1) if runs else 1
        run = CheckRun(id=run_id, trigger=trigger, phase="Baseline", generation=generation, startedAt=_ts(seen.now),
                       experiments=[ExperimentResult(name=e.name, faultType=e.fault_type, weight=e.weight, state="Pending")
                                    for e in settings.experiments])
        run["experiments"][0]["state"] = "Settling"
        run["experiments"][0]["startedAt"] = _ts(seen.now)
        self.status["runs"] = [run] + runs[: max(0, settings.history_limit - 1)]
        if seen.run_request is not None:
            self.status["runRequest"] = seen.run_request
        if trigger == "Schedule" and settings.schedule is not None:
            self.status["nextRunAt"] = format_time(settings.schedule.next_after(seen.now))
        self.status["phase"] = "Running"
        self.status["message"] = f"run {run_id}: checking the steady state of Agent {settings.agent}"
        self.status.pop("score", None)
        self.status.pop("summary", None)
        self.meter = Meter()
        self._memory = _Memory(run_id)
        self._event("Normal", "RunStarted", f"run {run_id} ({trigger}) of {len(settings.experiments)} experiments "
                                             f"on Agent {settings.agent}")

    # ------------------------------------------------------------------ a run in progress

    def _adopt(self, now: datetime) -> None:
        """A run this process has no memory of: one started before an operator restart."""
        run = self.run
        assert run is not None
        if self._memory is not None and self._memory.run_id == run["id"]:
            return
        self._memory = _Memory(run["id"])
        cur = self.current()
        if cur is not None and cur[1].get("state") in ACTIVE_STATES:
            _, e = cur
            self._abort_experiment(e, "the operator restarted during this experiment: what happened meanwhile was not "
                                      "seen, so it is not judged", now)

    def _advance(self, settings: CheckSettings, seen: Seen) -> None:
        run = self.run
        assert run is not None and self._memory is not None
        if seen.halted is not None:
            self._end_run("Aborted", f"halted: {seen.halted}", seen.now)
            return
        cur = self.current()
        if seen.agent is None and cur is not None and cur[1].get("state") in ACTIVE_STATES:
            self._end_run("Aborted", f"Agent {settings.agent} was deleted", seen.now)
            return
        self._track_health(seen)
        # Several states may pass in one tick (e.g. an experiment judged and the next settling).
        for _ in range(4):
            cur = self.current()
            if cur is None:
                return
            i, e = cur
            if i >= len(settings.experiments) or settings.experiments[i].name != e["name"]:
                self._end_run("Aborted", "the check's experiments changed under a run that started with others", seen.now)
                return
            before = e.get("state")
            handler = {"Settling": self._settle, "Injecting": self._inject, "Observing": self._observe,
                       "Recovering": self._recover, "Pending": self._settle}[before or "Pending"]
            handler(settings, settings.experiments[i], i, e, seen)
            if not self.running or e.get("state") == before:
                break

    def _track_health(self, seen: Seen) -> None:
        assert self._memory is not None
        phase = seen.agent.phase if seen.agent else "Unknown"
        if phase == "Healthy":
            if self._memory.healthy_since is None:
                self._memory.healthy_since = seen.now
        else:
            self._memory.healthy_since = None
        self.meter.note_phase(seen.now.timestamp(), phase)

    # --- Settling

    def _settle(self, settings: CheckSettings, exp: Experiment, index: int, e: ExperimentResult, seen: Seen) -> None:
        assert self._memory is not None
        run = self.run
        assert run is not None
        e["state"] = "Settling"
        started = parse_time(e.get("startedAt")) or seen.now
        e.setdefault("startedAt", _ts(seen.now))
        first = index == 0
        needed = settings.steady.baseline_s if first else settings.steady.settle_s
        problem = self._steady_problem(settings, seen, started, needed)
        if problem is None:
            if first:
                run["baseline"] = self.meter.window(seen.now.timestamp() - needed, seen.now.timestamp())
                run["phase"] = "Running"
            e["state"] = "Injecting"
            name = fault_name(self.name, run["id"], exp.name)
            e["fault"] = name
            self.status["message"] = f"run {run['id']}: experiment {exp.name} ({exp.fault_type}) injecting"
            return
        if (seen.now - started).total_seconds() > settings.steady.timeout_s:
            if first:
                self._end_run("Failed", f"steady state not met within {settings.steady.timeout_s:g}s: {problem}", seen.now,
                              reason="SteadyStateNotMet")
            else:
                self._end_run("Aborted", f"steady state not regained within {settings.steady.timeout_s:g}s "
                                         f"before experiment {exp.name}: {problem}", seen.now, reason="SteadyStateLost")
            return
        self.status["message"] = f"run {run['id']}: waiting for steady state before {exp.name}: {problem}"

    def _steady_problem(self, settings: CheckSettings, seen: Seen, since: datetime, needed_s: float) -> str | None:
        """Why the hypothesis does not hold yet (None: it holds)."""
        assert self._memory is not None
        if seen.agent is None:
            return f"Agent {settings.agent} not found"
        if seen.agent.other_faults:
            return f"Agent {settings.agent} has other faults on it: {', '.join(seen.agent.other_faults)}"
        if seen.agent.phase != "Healthy" or self._memory.healthy_since is None:
            return f"Agent {settings.agent} is {seen.agent.phase}"
        steady_from = max(self._memory.healthy_since, since)
        held = (seen.now - steady_from).total_seconds()
        if held < needed_s:
            return f"Healthy for {held:.0f}s of {needed_s:g}s"
        numbers = self.meter.window(seen.now.timestamp() - needed_s, seen.now.timestamp())
        if numbers.get("requests", 0) < settings.steady.min_requests:
            return f"{numbers.get('requests', 0)} requests in the last {needed_s:g}s, fewer than {settings.steady.min_requests}"
        over = check_verdict.limit_findings(numbers, settings.steady.limits, f"over the last {needed_s:g}s")
        return "; ".join(over) if over else None

    # --- Injecting

    def _inject(self, settings: CheckSettings, exp: Experiment, index: int, e: ExperimentResult, seen: Seen) -> None:
        assert self._memory is not None
        name = e.get("fault", "")
        fault = seen.faults.get(name)
        if fault is None:
            if name not in self._memory.created:
                self._memory.created.add(name)
                self._actions.append(CreateFault(name, self._fault_body(settings, exp, name)))
                self._event("Normal", "ExperimentStarted", f"experiment {exp.name}: Fault {name} ({exp.fault_type}) created")
                self._memory.inject_started = seen.now
            elif (seen.now - (self._memory.inject_started or seen.now)).total_seconds() > INJECT_TIMEOUT_S:
                self._abort_experiment(e, f"Fault {name} did not appear within {INJECT_TIMEOUT_S:g}s", seen.now)
            return
        e["faultUID"] = fault.uid
        if fault.phase is not None:
            e["faultPhase"] = fault.phase
        if fault.phase == "Active" and fault.started_at:
            e["faultStartedAt"] = fault.started_at
            e["state"] = "Observing"
            self._memory.restarts_at_fault = seen.agent.restart_count if seen.agent else 0
            self._memory.stalled_before = bool(seen.agent and seen.agent.stalled)
            self.status["message"] = f"run {self.run['id']}: experiment {exp.name}: fault active"  # type: ignore[index]
            return
        if fault.phase in FINAL_FAULT_PHASES:
            if fault.phase == "Halted":
                self._end_run("Aborted", f"Fault {name} was halted: {fault.message}", seen.now)
                return
            self._abort_experiment(e, f"Fault {name} ended {fault.phase} before it started: {fault.message}", seen.now)
            return
        waited = (seen.now - (self._memory.inject_started or seen.now)).total_seconds()
        if waited > INJECT_TIMEOUT_S:
            self._abort_experiment(e, f"Fault {name} was not Active within {INJECT_TIMEOUT_S:g}s "
                                      f"({fault.phase or 'no phase'}: {fault.message})", seen.now)

    def _fault_body(self, settings: CheckSettings, exp: Experiment, name: str) -> dict[str, Any]:
        run = self.run
        assert run is not None
        return {
            "apiVersion": API_VERSION, "kind": "Fault",
            "metadata": {
                "name": name, "namespace": self.namespace,
                "labels": {CHECK_LABEL: self.name, RUN_LABEL: str(run["id"]), EXPERIMENT_LABEL: exp.name},
                # The check owns its Faults: the garbage collector deletes them with it
                # even when the operator is down (the operator deletes them itself too).
                "ownerReferences": [{"apiVersion": API_VERSION, "kind": "ResilienceCheck", "name": self.name,
                                     "uid": self.uid, "controller": True, "blockOwnerDeletion": False}],
            },
            "spec": {**exp.fault, "target": {"agent": settings.agent}},
        }

    # --- Observing and Recovering

    def _watch_agent(self, e: ExperimentResult, seen: Seen) -> None:
        assert self._memory is not None
        agent = seen.agent
        if agent is None:
            return
        worst = e.get("worstPhase", "Healthy")
        order = ("Unknown", "Healthy", "Degraded", "Unhealthy")
        if order.index(agent.phase) > order.index(worst):
            e["worstPhase"] = agent.phase
        else:
            e.setdefault("worstPhase", worst)
        if agent.phase in ("Degraded", "Unhealthy"):
            e.setdefault("detectedAt", _ts(seen.now))
            e.setdefault("detectionSeconds", check_verdict.seconds_between(e["detectedAt"], e.get("faultStartedAt")) or 0.0)
            e.pop("recoveredAt", None)
            e.pop("recoverySeconds", None)
        elif agent.phase == "Healthy" and "detectedAt" in e and "recoveredAt" not in e:
            e["recoveredAt"] = _ts(seen.now)
            e["recoverySeconds"] = check_verdict.seconds_between(e["recoveredAt"], e.get("faultStartedAt")) or 0.0
        if not agent.stalled:
            self._memory.stalled_before = False
        elif not self._memory.stalled_before:
            e["escalated"] = True
        e["restarts"] = max(0, agent.restart_count - self._memory.restarts_at_fault)
        started = parse_time(e.get("faultStartedAt"))
        for incident in agent.incidents:
            opened = parse_time(incident.get("detectedAt") or incident.get("observedAt"))
            if started is not None and opened is not None and opened >= started - timedelta(seconds=1):
                e["incident"] = incident["id"]
                e["incidentState"] = incident["state"]
                break

    def _observe(self, settings: CheckSettings, exp: Experiment, index: int, e: ExperimentResult, seen: Seen) -> None:
        self._watch_agent(e, seen)
        name = e.get("fault", "")
        fault = seen.faults.get(name)
        if fault is not None and fault.phase == "Halted":
            self._end_run("Aborted", f"Fault {name} was halted: {fault.message}", seen.now)
            return
        if fault is None:
            self._abort_experiment(e, f"Fault {name} was deleted while it was active", seen.now)
            return
        if fault.phase not in FINAL_FAULT_PHASES:
            return
        e["faultPhase"] = fault.phase
        if fault.message:
            e["faultMessage"] = fault.message[:1024]
        e["faultEndedAt"] = fault.ended_at or _ts(seen.now)
        start, end = parse_time(e.get("faultStartedAt")), parse_time(e["faultEndedAt"])
        if start is not None and end is not None:
            e["during"] = self.meter.window(start.timestamp(), end.timestamp())
        e["state"] = "Recovering"
        self.status["message"] = f"run {self.run['id']}: experiment {exp.name}: fault ended, waiting for recovery"  # type: ignore[index]

    def _recover(self, settings: CheckSettings, exp: Experiment, index: int, e: ExperimentResult, seen: Seen) -> None:
        self._watch_agent(e, seen)
        ended = parse_time(e.get("faultEndedAt")) or seen.now
        healthy = seen.agent is not None and seen.agent.phase == "Healthy"
        if not healthy and (seen.now - ended).total_seconds() <= exp.expect.recovery_deadline_s:
            return
        if "detectedAt" not in e:
            e["recoverySeconds"] = 0.0  # never left Healthy: not affected
        judgement = check_verdict.judge(e, exp.expect)
        self._finish_experiment(e, judgement.verdict, judgement.findings, seen.now)
        self._next_experiment(self.run, seen.now)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ endings

    def _finish_experiment(self, e: ExperimentResult, verdict: Any, findings: tuple[str, ...], now: datetime) -> None:
        e["verdict"] = verdict
        if findings:
            e["findings"] = [f[:512] for f in findings[:16]]
        e["state"] = "Done"
        e["finishedAt"] = _ts(now)
        if e.get("fault"):
            self._actions.append(DeleteFault(e["fault"]))
        kind = "Normal" if verdict in ("Resilient", "Degraded") else "Warning"
        self._event(kind, f"Experiment{verdict}", f"experiment {e['name']}: {verdict}"
                    + (f" - {findings[0]}" if findings else ""))

    def _abort_experiment(self, e: ExperimentResult, why: str, now: datetime) -> None:
        """Not judged (its Fault never ran, or vanished): Aborted, its Fault deleted, the next one settles."""
        self._finish_experiment(e, "Aborted", (why,), now)
        self._next_experiment(self.run, now)  # type: ignore[arg-type]  # only called while a run is on

    def _next_experiment(self, run: CheckRun, now: datetime) -> None:
        cur = self.current()
        if cur is None:
            self._complete(run, now)
            return
        cur[1]["state"] = "Settling"
        cur[1]["startedAt"] = _ts(now)

    def _complete(self, run: CheckRun, now: datetime) -> None:
        experiments = run.get("experiments") or []
        run_score = check_verdict.score(experiments)
        run["phase"] = "Completed"
        run["finishedAt"] = _ts(now)
        if run_score is not None:
            run["score"] = run_score
            self.status["score"] = run_score
        self._fill_series(run, now)
        self.status["phase"] = "Completed"
        self.status["summary"] = check_verdict.summary(experiments)
        self.status["message"] = f"run {run['id']} completed: score {run_score if run_score is not None else 'none'}"
        self._event("Normal", "RunCompleted", f"run {run['id']}: {self.status['summary']}; score "
                                               f"{run_score if run_score is not None else 'none (nothing judged)'}")

    def _end_run(self, phase: Any, message: str, now: datetime, *, reason: str | None = None) -> None:
        run = self.run
        assert run is not None
        for e in run.get("experiments") or []:
            if e.get("state") == "Done":
                continue
            if e.get("state") in ACTIVE_STATES:
                self._finish_experiment(e, "Aborted", (message,), now)
            else:
                e["state"], e["verdict"], e["findings"] = "Done", "Aborted", [message[:512]]
        run["phase"] = phase
        run["finishedAt"] = _ts(now)
        run["message"] = message[:4096]
        run_score = check_verdict.score(run.get("experiments") or [])
        if run_score is not None:
            run["score"] = run_score
        self._fill_series(run, now)
        self.status["phase"] = phase
        self.status["summary"] = check_verdict.summary(run.get("experiments") or [])
        self.status["message"] = f"run {run['id']} {phase.lower()}: {message}"[:4096]
        self._event("Warning", reason or f"Run{phase}", f"run {run['id']}: {message}")

    # ------------------------------------------------------------------ bookkeeping

    def _fill_series(self, run: CheckRun, now: datetime) -> None:
        started = parse_time(run.get("startedAt"))
        if started is not None:
            run["series"] = self.meter.series(started.timestamp(), now.timestamp())

    def refresh_series(self, now: datetime) -> None:
        run = self.run
        if run is not None and self.running:
            self._fill_series(run, now)

    def _event(self, type_: str, reason: str, message: str) -> None:
        self._actions.append(PostEvent(type_, reason, message))
