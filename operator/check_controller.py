"""ResilienceChecks in the operator: a runner per check, ticked once a second.

The check runners (check_runner.py) decide; this module feeds them and carries out
what they ask. Inputs: watch events of ResilienceChecks and of the Faults that checks
created (labelled agentops.dev/resilience-check), and every telemetry report about an
Agent under a running check (`observe_report`, called by the reconciler's ingest). It
reads the Agents' state from the reconciler's index (the status the operator itself
last wrote) and the halt switch from the reconciler's HaltSwitch; it never writes an
Agent.

Outputs: Fault creates and deletes (through the Kubernetes client, in its thread
pool), the checks' status (through the StatusWriter, only when it changed; the chart's
series at most once per bin) and Events. A delete that fails is retried every tick:
a check's Fault must not outlive the check's decision to end it (each Fault is
bounded by its own duration and owned by the check for the garbage collector, too).

A tick a second is fine-grained enough for timings reported to the second, and cheap:
checks are few (one at a time per Agent), and a tick is a few dict lookups each.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, Mapping

from agentops import GROUP, VERSION
from agentops.api_types import CHECK_LABEL, RUN_REQUESTED_ANNOTATION, CheckStatus, FaultPhase
from agentops.errors import AgentOpsError
from agentops.times import format_time
from agentops.wire import TelemetryReport
from agentops_operator.check_meter import BIN_S
from agentops_operator.check_io import AgentView, CreateFault, DeleteFault, FaultView, PostEvent, Seen
from agentops_operator.check_runner import CheckRunner
from agentops_operator.check_settings import CheckSettings
from agentops_operator.conditions import ConditionSpec, merge_conditions
from agentops_operator.kube_client import KubeClient, KubeError
from agentops_operator.reconciler import Reconciler
from agentops_operator.resources import FAULTS, Key, ObjectRef

log = logging.getLogger(__name__)

CHECKS = "resiliencechecks"
TICK_S = 1.0
# The Event reasons with which a run ends (check_runner), and the phase each means.
RUN_ENDINGS = {"RunCompleted": "Completed", "RunAborted": "Aborted", "SteadyStateLost": "Aborted",
               "SteadyStateNotMet": "Failed", "RunFailed": "Failed"}


@dataclass
class _Check:
    ref: ObjectRef
    generation: int
    spec: dict[str, Any]
    annotations: dict[str, str]
    runner: CheckRunner
    settings: CheckSettings | None = None
    settings_error: str | None = None
    settings_generation: int = -1
    written: str = ""  # the last status sent, as JSON
    series_at: float = float("-inf")


class CheckController:
    def __init__(self, kube: KubeClient, reconciler: Reconciler) -> None:
        self._kube = kube
        self._reconciler = reconciler
        self._checks: dict[Key, _Check] = {}
        self._faults: dict[Key, tuple[str, FaultView]] = {}  # check-made Faults: owning check's name, state
        self._deleting: set[Key] = set()  # Faults to delete, retried until gone
        self._tasks: set[asyncio.Task[None]] = set()
        self._metered: dict[Key, CheckRunner] = {}  # Agent → the runner measuring it
        self._pending_deletes: set[Key] = set()  # deletes on the wire

    # ------------------------------------------------------------------ inputs

    def check_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        key = Key(meta["namespace"], meta["name"])
        if event_type == "DELETED":
            check = self._checks.pop(key, None)
            if check is not None:
                self._metered = {a: r for a, r in self._metered.items() if r is not check.runner}
                self._carry_out(check, check.runner.abort("the ResilienceCheck was deleted", self._reconciler.now()),
                                write=False)
            # Every Fault this check made, whatever the runner remembers. (A check deleted
            # while the operator was down: the garbage collector deletes its Faults, which
            # it owns; and each is bounded by its own duration.)
            self._deleting |= {k for k, (owner, _) in self._faults.items() if k.namespace == key.namespace and owner == key.name}
            return
        check = self._checks.get(key)
        if check is None or check.ref.uid != meta.get("uid"):
            ref = ObjectRef("ResilienceCheck", CHECKS, key, meta.get("uid", ""))
            status: CheckStatus = json.loads(json.dumps(body.get("status") or {}))
            check = self._checks[key] = _Check(ref, 0, {}, {}, CheckRunner(key.namespace, key.name, ref.uid, status))
            check.written = json.dumps(status, sort_keys=True)
        # Spec and annotations from the event; status stays ours (our writes come back as events).
        check.generation = int(meta.get("generation", 1))
        check.spec = dict(body.get("spec") or {})
        check.annotations = dict(meta.get("annotations") or {})

    def fault_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        owner = (meta.get("labels") or {}).get(CHECK_LABEL)
        if owner is None:
            return
        key = Key(meta["namespace"], meta["name"])
        if event_type == "DELETED":
            self._faults.pop(key, None)
            self._deleting.discard(key)
            return
        status = body.get("status") or {}
        phase: FaultPhase | None = status.get("phase")
        self._faults[key] = (owner, FaultView(uid=meta.get("uid", ""), phase=phase, started_at=status.get("startedAt"),
                                              ended_at=status.get("endedAt"), message=status.get("message", "")))

    def observe_report(self, agent: Key, report: TelemetryReport, received: float) -> None:
        """A telemetry report about `agent` (wall-clock Unix seconds): measured while a run is on."""
        runner = self._metered.get(agent)
        if runner is not None:
            runner.meter.add(report, received)

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        try:
            while True:
                self.tick()
                await asyncio.sleep(TICK_S)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def tick(self) -> None:
        now = self._reconciler.now()
        held: dict[Key, str] = {}
        for key, check in self._checks.items():
            if check.runner.running and check.settings is not None:
                held[Key(key.namespace, check.settings.agent)] = key.name
        for key, check in list(self._checks.items()):
            try:
                self._tick_one(key, check, now, held)
            except Exception:  # one broken check never stops the others
                log.exception("resilience check %s: tick failed", key)
        for key in list(self._deleting):
            self._delete_fault(key)

    def _tick_one(self, key: Key, check: _Check, now: Any, held: dict[Key, str]) -> None:
        if check.settings_generation != check.generation:
            check.settings_generation = check.generation
            try:
                check.settings, check.settings_error = CheckSettings.from_spec(check.spec), None
            except (AgentOpsError, KeyError, TypeError, ValueError) as exc:
                check.settings, check.settings_error = None, str(exc)
        if check.settings is None:
            self._write_invalid(check, now)
            return
        settings = check.settings
        agent_key = Key(key.namespace, settings.agent)
        holder = held.get(agent_key)
        seen = Seen(now=now, agent=self._agent_view(agent_key), faults=self._fault_views(key),
                    halted=self._halted(key.namespace), held_by=holder if holder not in (None, key.name) else None,
                    run_request=check.annotations.get(RUN_REQUESTED_ANNOTATION))
        actions = check.runner.step(settings, check.generation, seen)
        if check.runner.running:
            self._metered[agent_key] = check.runner
            held[agent_key] = key.name
            mono = self._reconciler.clock.mono()
            if mono - check.series_at >= BIN_S:
                check.runner.refresh_series(now)
                check.series_at = mono
        elif self._metered.get(agent_key) is check.runner:
            del self._metered[agent_key]
        self._carry_out(check, actions)

    # ------------------------------------------------------------------ views

    def _agent_view(self, key: Key) -> AgentView | None:
        rec = self._reconciler.index.agents.get(key)
        if rec is None:
            return None
        ours = {k for k in self._faults}
        others = tuple(f.ref.key.name for f in self._reconciler.index.assigned_to(key) if f.ref.key not in ours)
        return AgentView(phase=rec.status.get("phase", "Unknown"), stalled=rec.status.get("healing", {}).get("state") == "Stalled",
                         restart_count=rec.restart_count, incidents=tuple(rec.incidents), other_faults=others)

    def _fault_views(self, check: Key) -> dict[str, FaultView]:
        return {k.name: view for k, (owner, view) in self._faults.items()
                if k.namespace == check.namespace and owner == check.name and k not in self._deleting}

    def _halted(self, namespace: str) -> str | None:
        stop = self._reconciler.halts.stop_for(namespace)
        return None if stop is None else stop.message

    # ------------------------------------------------------------------ outputs

    def _write_invalid(self, check: _Check, now: Any) -> None:
        status = check.runner.status
        status["phase"] = "Failed"
        status["message"] = f"invalid spec: {check.settings_error}"[:4096]
        status["observedGeneration"] = check.generation
        status["conditions"] = merge_conditions(status.get("conditions"), [
            ConditionSpec("Ready", "False", "InvalidSpec", status["message"]),
            ConditionSpec("Reconciling", "False", "InvalidSpec", ""),
            ConditionSpec("Stalled", "True", "InvalidSpec", status["message"])], generation=check.generation,
            now=format_time(now))
        self._carry_out(check, [])

    def _carry_out(self, check: _Check, actions: list[Any], *, write: bool = True) -> None:
        writer = self._reconciler.writer
        self._count(actions)
        for action in actions:
            if isinstance(action, CreateFault):
                self._spawn(self._create_fault(check.ref, action))
            elif isinstance(action, DeleteFault):
                self._deleting.add(Key(check.ref.key.namespace, action.name))
            elif isinstance(action, PostEvent):
                writer.post_event(check.ref, action.type, action.reason, action.message)
        if write:
            text = json.dumps(check.runner.status, sort_keys=True)
            if text != check.written:
                check.written = text
                writer.write_status(check.ref, check.runner.status)  # type: ignore[arg-type]  # a third kind

    def _count(self, actions: list[Any]) -> None:
        """Verdicts and run endings, from the runner's Events (their reasons are part of the API)."""
        metrics = self._reconciler.metrics
        for action in actions:
            if not isinstance(action, PostEvent):
                continue
            if action.reason.startswith("Experiment") and action.reason != "ExperimentStarted":
                metrics.check_experiments.labels(verdict=action.reason.removeprefix("Experiment")).inc()
            elif action.reason in RUN_ENDINGS:
                metrics.check_runs.labels(phase=RUN_ENDINGS[action.reason]).inc()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _create_fault(self, check: ObjectRef, action: CreateFault) -> None:
        try:
            await self._kube.run(lambda: self._kube.call(
                "POST", version=f"{GROUP}/{VERSION}", namespace=check.key.namespace, url=FAULTS,
                data=json.dumps(action.body), headers={"Content-Type": "application/json"}))
        except KubeError as exc:
            if exc.status == 409:
                return  # already there: created before (the name is fixed per run and experiment)
            log.warning("resilience check %s: creating Fault %s failed: %s", check.key, action.name, exc)
            self._reconciler.writer.post_event(check, "Warning", "FaultCreateFailed", f"Fault {action.name}: {exc}")

    def _delete_fault(self, key: Key) -> None:
        if key in self._pending_deletes:
            return
        self._pending_deletes.add(key)

        async def delete() -> None:
            try:
                await self._kube.run(lambda: self._kube.call("DELETE", version=f"{GROUP}/{VERSION}", namespace=key.namespace,
                                                             url=f"{FAULTS}/{key.name}"))
                self._deleting.discard(key)
            except KubeError as exc:
                if exc.status == 404:
                    self._deleting.discard(key)
                else:
                    log.warning("deleting Fault %s failed (retrying): %s", key, exc)
            finally:
                self._pending_deletes.discard(key)

        self._spawn(delete())
