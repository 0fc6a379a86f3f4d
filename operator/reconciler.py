"""The operator's one reconcile loop over in-memory indexes.

Inputs arrive as plain calls — watch events from kopf (`agent_event`, `fault_event`),
telemetry from the HTTP API (`ingest`) — and only mark objects dirty. The loop
(`run`) then makes one pass (`process`) over what is dirty or due: faults first,
because they decide each agent's assignments, then agents. Time-driven work (fault
expiry, a Pending fault giving up, stale telemetry, the status heartbeat) is a
deadline in one heap, not a timer per object. Writes go to the StatusWriter, which
coalesces and bounds them; nothing here blocks or awaits I/O.

State of record is the custom resources' status; everything here is rebuilt from a
list of them after a restart. Telemetry windows are soft state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

from agentops.errors import AgentOpsError
from agentops.wire import FaultAssignment, TelemetryReport
from agentops_operator import agent_status, fault_lifecycle, healing_policy, stop_conditions
from agentops_operator.assignments import AssignmentBoard
from agentops_operator.conditions import find
from agentops_operator.deadlines import DeadlineHeap
from agentops_operator.halt_switch import ALL, HaltSwitch
from agentops_operator.health import assess
from agentops_operator.metrics import OperatorMetrics
from agentops_operator.records import AgentRecord, Clock, FaultRecord, Mirror, UnknownAgent
from agentops_operator.resources import (
    AGENTS, FAULTS, RECOVER_ANNOTATION, RESTART_ANNOTATION, FaultSpec, HealingPolicy,
    HealthThresholds, Key, ObjectRef, RuntimeSpec, format_time, parse_time,
)
from agentops_operator.restart_runner import RestartRunner
from agentops_operator.runtimes import RestartOutcome
from agentops_operator.status_writer import StatusWriter
from agentops_operator.telemetry_store import TelemetryStore

log = logging.getLogger(__name__)

# Gauges of phase counts are O(objects); refresh them at most this often.
GAUGE_REFRESH_S = 1.0
# Wake at least this often even with nothing due, as a guard against a missed wake-up.
MAX_IDLE_S = 30.0


def _ref(body: dict[str, Any], kind: str, plural: str) -> ObjectRef:
    meta = body["metadata"]
    return ObjectRef(kind=kind, plural=plural, key=Key(meta["namespace"], meta["name"]), uid=meta.get("uid", ""))


class Reconciler:
    def __init__(
        self,
        writer: StatusWriter,
        metrics: OperatorMetrics,
        *,
        heartbeat_s: float = 60.0,
        clock: Clock | None = None,
        restarts: RestartRunner | None = None,
        max_concurrent_restarts: int = 3,
        control_namespace: str = "agentops-system",
        mirror: Mirror | None = None,
    ) -> None:
        self.writer = writer
        self.metrics = metrics
        self.heartbeat_s = heartbeat_s
        self.clock = clock or Clock()
        self.restarts = restarts
        if restarts is not None:
            restarts.on_done = self.restart_finished
        self.max_concurrent_restarts = max_concurrent_restarts
        self.halts = HaltSwitch(control_namespace)
        self.mirror = mirror
        self._slot_holders: set[Key] = set()  # agents restarting or verifying a restart
        # Agents waiting for a restart slot, first come first served (dict: insertion order).
        self._queued: dict[Key, None] = {}
        self.board = AssignmentBoard()
        self.telemetry = TelemetryStore()
        self.agents: dict[Key, AgentRecord] = {}
        self.faults: dict[Key, FaultRecord] = {}
        self._agents_in_ns: dict[str, set[str]] = {}
        self._faults_in_ns: dict[str, set[str]] = {}
        self._faults_on_agent: dict[Key, set[Key]] = {}
        self._deadlines: DeadlineHeap[tuple[str, Key]] = DeadlineHeap()
        self._dirty_agents: set[Key] = set()
        self._dirty_faults: set[Key] = set()
        self._wake = asyncio.Event()
        self._gauges_at = float("-inf")
        # uid → monotonic time of its DELETED event, so a list that began before the
        # deletion cannot bring the object back (see `resync`).
        self._tombstones: dict[str, float] = {}
        self._started = self.clock.mono()
        self.synced = False

    # ------------------------------------------------------------------ inputs

    def agent_event(self, event_type: str | None, body: dict[str, Any]) -> None:
        ref = _ref(body, "Agent", AGENTS)
        key = ref.key
        if event_type == "DELETED":
            self._tombstones[ref.uid] = self.clock.mono()
            self._drop_agent(key)
            return
        meta, spec = body["metadata"], body.get("spec") or {}
        old = self.agents.get(key)
        if old is not None and old.ref.uid != ref.uid:
            self._drop_agent(key)  # deleted and re-created: nothing carries over
            old = None
        try:
            thresholds = HealthThresholds.from_spec(spec)
        except AgentOpsError as exc:
            log.warning("agent %s: %s; using default health thresholds", key, exc)
            thresholds = HealthThresholds()
        try:
            policy = HealingPolicy.from_spec(spec)
        except AgentOpsError as exc:
            log.warning("agent %s: %s; healing disabled until the spec is fixed", key, exc)
            policy = HealingPolicy(enabled=False)
        runtime = RuntimeSpec.from_spec(spec)
        labels = dict(meta.get("labels") or {})
        generation = int(meta.get("generation", 1))
        annotations = meta.get("annotations") or {}
        restart = annotations.get(RESTART_ANNOTATION) or None
        recover = annotations.get(RECOVER_ANNOTATION) or None
        if old is None:
            status = dict(body.get("status") or {})
            rec = AgentRecord(ref, generation, labels, thresholds, status, restart=restart, recover=recover, seen=self.clock.mono(),
                              policy=policy, runtime=runtime, healing=healing_policy.HealingState.from_status(status.get("healing")),
                              incidents=list(status.get("incidents") or ()), restart_count=int(status.get("restartCount", 0)))
            if rec.healing.state == healing_policy.RESTARTING:
                # The operator stopped while this restart was in flight; its answer is
                # lost. Verify it like any other: a new healthy instance proves it.
                rec.outcome = RestartOutcome.done("the operator restarted while this restart was in flight")
            if rec.healing.state in healing_policy.HOLDS_SLOT:
                self._slot_holders.add(key)
            self.agents[key] = rec
            self._agents_in_ns.setdefault(key.namespace, set()).add(key.name)
            self._mark_namespace_faults(key.namespace)
            self._mark_agent(key)
            return
        old.seen = self.clock.mono()
        if (restart, recover) != (old.restart, old.recover):
            old.restart, old.recover = restart, recover
            self._mark_agent(key)
        if labels != old.labels:
            old.labels = labels
            self._mark_namespace_faults(key.namespace)
        if generation != old.generation:
            old.generation, old.thresholds, old.policy, old.runtime = generation, thresholds, policy, runtime
            old.spec_changed = True
            self._mark_agent(key)

    def namespace_event(self, event_type: str | None, body: dict[str, Any]) -> None:
        """The halt switch (see halt_switch.py): a Namespace's annotations changed."""
        changed = self.halts.observe(event_type, body)
        if changed == ALL:
            for ns in list(self._faults_in_ns):
                self._mark_namespace_faults(ns)
        elif changed is not None:
            self._mark_namespace_faults(changed)

    def restart_finished(self, key: Key, token: str, outcome: RestartOutcome) -> None:
        """A runtime's answer (from the RestartRunner, on the loop)."""
        rec = self.agents.get(key)
        if rec is None or rec.healing.restart_token != token or rec.healing.state != healing_policy.RESTARTING:
            return  # the agent is gone or moved on; the answer is moot
        rec.outcome = outcome
        self._mark_agent(key)

    def fault_event(self, event_type: str | None, body: dict[str, Any]) -> None:
        ref = _ref(body, "Fault", FAULTS)
        key = ref.key
        if event_type == "DELETED":
            self._tombstones[ref.uid] = self.clock.mono()
            self._drop_fault(key)
            return
        meta = body["metadata"]
        old = self.faults.get(key)
        if old is not None and old.ref.uid != ref.uid:
            self._drop_fault(key)
            old = None
        generation = int(meta.get("generation", 1))
        if old is not None:
            old.seen = self.clock.mono()
            if generation == old.generation:
                return  # our own status write coming back, or a metadata change
        try:
            spec: FaultSpec | None = FaultSpec.from_spec(body.get("spec") or {})
            error = None
        except (AgentOpsError, KeyError, TypeError, ValueError) as exc:
            spec, error = None, str(exc)
        if old is None:
            created = parse_time(meta.get("creationTimestamp")) or self.clock.wall()
            status = dict(body.get("status") or {})
            self.faults[key] = FaultRecord(ref, generation, created, spec, error, status, seen=self.clock.mono(),
                                           cured_on=set(status.get("curedTargets") or ()))
            self._faults_in_ns.setdefault(key.namespace, set()).add(key.name)
        else:
            old.generation, old.spec, old.spec_error = generation, spec, error
        self._mark_fault(key)

    def ingest(self, report: TelemetryReport) -> None:
        key = Key(report["agent"]["namespace"], report["agent"]["name"])
        if key not in self.agents:
            raise UnknownAgent(f"agent {key} does not exist (or is not watched by this operator)")
        self.telemetry.add(key, report, received=self.clock.mono(), wall=self.clock.wall())
        self._mark_agent(key)

    def resync(self, agents: list[dict[str, Any]], faults: list[dict[str, Any]], *, listed_at: float) -> None:
        """Apply a full list that began at `listed_at` (monotonic).

        The watch may be newer than the list: an object the watch reported after the
        list began keeps the watch's version, and one deleted after it stays deleted.
        Objects missing from the list and last seen before it began are gone (a watch
        can miss a deletion across a reconnect).
        """
        for body in agents:
            if self._list_is_current(body, self.agents, listed_at):
                self.agent_event(None, body)
        for body in faults:
            if self._list_is_current(body, self.faults, listed_at):
                self.fault_event(None, body)
        self._tombstones = {uid: t for uid, t in self._tombstones.items() if t >= listed_at}
        listed_agents = {_ref(b, "Agent", AGENTS).key for b in agents}
        listed_faults = {_ref(b, "Fault", FAULTS).key for b in faults}
        for key in [k for k, r in self.agents.items() if k not in listed_agents and r.seen < listed_at]:
            self._drop_agent(key)
        for key in [k for k, r in self.faults.items() if k not in listed_faults and r.seen < listed_at]:
            self._drop_fault(key)
        self.synced = True
        self._wake.set()

    def _list_is_current(self, body: dict[str, Any], records: dict[Key, Any], listed_at: float) -> bool:
        meta = body["metadata"]
        if self._tombstones.get(meta.get("uid", ""), float("-inf")) >= listed_at:
            return False
        rec = records.get(Key(meta["namespace"], meta["name"]))
        return rec is None or rec.ref.uid != meta.get("uid") or rec.seen < listed_at

    # ------------------------------------------------------------------ queries

    def assignments(self, key: Key) -> tuple[int, tuple[FaultAssignment, ...]]:
        return self.board.current(key)

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        while True:
            self._wake.clear()
            started = time.perf_counter()
            self.process()
            self.metrics.reconcile_seconds.observe(time.perf_counter() - started)
            due = self._deadlines.next_due()
            timeout = MAX_IDLE_S if due is None else min(MAX_IDLE_S, max(0.0, due - self.clock.mono()))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def process(self) -> None:
        """One pass over everything dirty or due. Synchronous and I/O-free."""
        mono, wall = self.clock.mono(), self.clock.wall()
        for kind, key in self._deadlines.pop_due(mono):
            (self._dirty_faults if kind == "fault" else self._dirty_agents).add(key)
        faults, self._dirty_faults = self._dirty_faults, set()
        touched: set[Key] = set()
        for key in faults:
            touched |= self._reconcile_fault(key, wall, mono)
        for agent in touched:
            self._publish(agent)
        agents, self._dirty_agents = self._dirty_agents, set()
        for key in agents:
            self._reconcile_agent(key, wall, mono)
        if mono - self._gauges_at >= GAUGE_REFRESH_S:
            self._refresh_gauges()
            self._gauges_at = mono

    # ------------------------------------------------------------------ faults

    def _targets(self, rec: FaultRecord) -> list[str]:
        assert rec.spec is not None
        ns = rec.ref.key.namespace
        names = self._agents_in_ns.get(ns, set())
        if rec.spec.target_agent is not None:
            return [rec.spec.target_agent] if rec.spec.target_agent in names else []
        selector = rec.spec.target_selector
        assert selector is not None
        return sorted(n for n in names if selector.matches(self.agents[Key(ns, n)].labels))

    def _reconcile_fault(self, key: Key, wall: datetime, mono: float) -> set[Key]:
        rec = self.faults.get(key)
        if rec is None:
            return set()
        before = rec.enforced_on
        if rec.spec is None:
            decision = fault_lifecycle.invalid_spec(rec.status, rec.generation, rec.spec_error or "invalid spec", wall)
        else:
            view = fault_lifecycle.FaultView(key.name, rec.generation, rec.created, rec.spec, rec.status)
            decision = fault_lifecycle.decide(view, self._targets(rec), wall, rec.stop or self.halts.stop_for(key.namespace))
            if decision.status.get("phase") in (fault_lifecycle.HALTED, fault_lifecycle.ABORTED) and decision.status != rec.status:
                self.metrics.fault_early_stops.labels(phase=decision.status["phase"]).inc()
        if decision.status != rec.status:
            rec.status = decision.status
            self.writer.write_status(rec.ref, decision.status)
        for ev in decision.events:
            self.writer.post_event(rec.ref, ev.type, ev.reason, ev.message)
        if decision.next_check is not None:
            self._schedule_at(("fault", key), decision.next_check, wall, mono)
        rec.enforced_on = tuple(decision.status.get("targets") or ()) if decision.enforce else ()
        for name in set(before) - set(rec.enforced_on):
            self._faults_on_agent.get(Key(key.namespace, name), set()).discard(key)
        for name in rec.enforced_on:
            self._faults_on_agent.setdefault(Key(key.namespace, name), set()).add(key)
        # Every agent it touched before or now: the set, or a parameter in it, may differ.
        return {Key(key.namespace, n) for n in set(before) | set(rec.enforced_on)}

    def _assignment(self, rec: FaultRecord) -> FaultAssignment:
        assert rec.spec is not None
        item = FaultAssignment(
            uid=rec.ref.uid,
            name=rec.ref.key.name,
            type=rec.spec.type,  # type: ignore[typeddict-item]
            expiresAt=str(rec.status.get("expiresAt")),
            percentage=rec.spec.percentage,
        )
        block = rec.spec.type.lower()
        item[block] = dict(rec.spec.params)  # type: ignore[literal-required]
        return item

    def _publish(self, agent: Key) -> None:
        keys = self._faults_on_agent.get(agent, set())
        # A fault whose new spec cannot be read is withdrawn on its next decision;
        # until then it is not handed out either.
        faults = [self._assignment(self.faults[k]) for k in keys
                  if k in self.faults and self.faults[k].spec is not None and agent.name not in self.faults[k].cured_on]
        rec = self.agents.get(agent)
        if rec is None:
            return
        # Only a supervising sidecar acts on a restart request (runtime Process).
        token = rec.healing.restart_token if rec.runtime.type == "Process" else None
        if self.board.publish(agent, faults, token):
            self.metrics.assignment_changes.inc()
            self._mark_agent(agent)

    # ------------------------------------------------------------------ agents

    def _reconcile_agent(self, key: Key, wall: datetime, mono: float) -> None:
        rec = self.agents.get(key)
        if rec is None:
            return
        th = rec.thresholds
        summary = self.telemetry.summary(key, now=mono, window_s=th.window_s, stale_s=th.heartbeat_timeout_s)
        if summary is None and rec.status.get("phase") not in (None, "Unknown") and mono - self._started < th.heartbeat_timeout_s:
            # Just restarted: telemetry windows are soft state and empty, but the
            # sidecars will report within their interval. Judging now would flip every
            # agent to Unknown and back (two writes and two Events each); keep the
            # recorded status for one heartbeat timeout instead.
            self._deadlines.schedule(("agent", key), self._started + th.heartbeat_timeout_s)
            return
        assessment = assess(summary, th)
        _, assigned = self.board.current(key)
        applied = summary.applied_fault_uids if summary else frozenset()
        faults = [
            agent_status.ActiveFault(f["name"], f["uid"], f["type"], f["expiresAt"], f["uid"] in applied)
            for f in sorted(assigned, key=lambda f: f["name"])
        ]
        self._heal(rec, assessment.phase, assessment.reason, assessment.message, summary.instances if summary else (),
                   [f.name for f in faults], bool(summary and summary.requests >= th.min_samples), wall, mono)
        self._check_stop_conditions(rec, assessment.metrics, wall, mono)
        last = self.telemetry.last_report_wall(key)
        wanted = agent_status.desired_status(
            rec.status,
            generation=rec.generation,
            assessment=assessment,
            faults=faults,
            last_report_time=format_time(last) if last else None,
            reporters=summary.reporters if summary else 0,
            instances=summary.instances if summary else (),
            now=format_time(wall),
            healing=rec.healing.to_status(),
            incidents=rec.incidents,
            extra_conditions=healing_policy.conditions(rec.healing),
            restart_count=rec.restart_count,
        )
        since = mono - rec.last_write
        if agent_status.needs_write(rec.status, wanted, since_last_write=since, heartbeat=self.heartbeat_s):
            old_phase = rec.status.get("phase")
            if old_phase is not None and old_phase != wanted["phase"]:
                kind = "Normal" if wanted["phase"] == "Healthy" else "Warning"
                ready = next(c for c in wanted["conditions"] if c["type"] == "Ready")
                self.writer.post_event(rec.ref, kind, f"Agent{wanted['phase']}", f"{old_phase} → {wanted['phase']}: {ready['message']}")
            self._mirror(rec, wanted, wall)
            rec.status, rec.last_write = wanted, mono
            self.writer.write_status(rec.ref, wanted)
        elif wanted.get("metrics") != rec.status.get("metrics"):
            self._deadlines.schedule(("agent", key), rec.last_write + self.heartbeat_s)
        if summary is not None and assessment.telemetry_fresh == "True":
            # Look again just after the telemetry would turn stale.
            self._deadlines.schedule(("agent", key), mono + th.heartbeat_timeout_s - summary.last_report_age_s + 0.01)

    # ------------------------------------------------------------------ healing

    def _slot_free(self, key: Key) -> bool:
        """Whether `key` may restart now: a slot is free and nobody queued before it."""
        free = self.max_concurrent_restarts - len(self._slot_holders - {key})
        if free <= 0:
            return False
        order = list(self._queued)
        position = order.index(key) if key in self._queued else len(order)
        return position < free

    def _heal(self, rec: AgentRecord, phase: str, reason: str, message: str, instances: tuple[str, ...],
              faults: list[str], judged: bool, wall: datetime, mono: float) -> None:
        key = rec.ref.key
        ready = find(rec.status.get("conditions"), "Ready")
        not_healthy_since = parse_time(ready.get("lastTransitionTime")) if ready and ready.get("status") != "True" else None
        outcome, rec.outcome = rec.outcome, None
        decision = healing_policy.step(
            rec.healing, rec.incidents, policy=rec.policy, runtime_type=rec.runtime.type, runtime_name=rec.runtime.describe(),
            obs=healing_policy.Observation(phase, reason, message, instances, tuple(faults), not_healthy_since, judged),
            now=wall, slot_free=self._slot_free(key), outcome=outcome,
            restart_annotation=rec.restart, recover_annotation=rec.recover, spec_changed=rec.spec_changed,
        )
        rec.spec_changed = False
        rec.healing, rec.incidents = decision.state, decision.incidents
        for ev in decision.events:
            self.writer.post_event(rec.ref, ev.type, ev.reason, ev.message)
        runtime = rec.runtime.type
        if decision.escalated:
            self.metrics.escalations.labels(reason=decision.escalated).inc()
        if decision.restart_result:
            self.metrics.restarts.labels(runtime=runtime, result=decision.restart_result).inc()
        if decision.incident_ended:
            self.metrics.incidents.labels(state=decision.incident_ended).inc()
        if outcome is not None and outcome.ok:
            self._cure_crash_faults(key)
        if decision.halt_faults:
            for fault_key in list(self._faults_on_agent.get(key, ())):
                frec = self.faults.get(fault_key)
                if frec is not None and frec.stop is None:
                    frec.stop = fault_lifecycle.EarlyStop(
                        fault_lifecycle.HALTED, "ManualRecover", f"agent {key.name} was recovered by hand ({RECOVER_ANNOTATION})")
                    self._mark_fault(fault_key)
        # Restart slots: held from the restart's start until it is verified or given up.
        if decision.state.state in healing_policy.HOLDS_SLOT:
            self._slot_holders.add(key)
        else:
            self._release_slot(key)
        if decision.state.state == healing_policy.QUEUED:
            self._queued.setdefault(key, None)
        else:
            self._queued.pop(key, None)
        if decision.next_check is not None:
            self._schedule_at(("agent", key), decision.next_check, wall, mono)
        if decision.restart is not None:
            rec.restart_count += 1
            self.metrics.restarts.labels(runtime=runtime, result="Started").inc()
            self._run_restart(rec, decision.restart.token)

    def _release_slot(self, key: Key) -> None:
        """The agent no longer holds a restart slot: queued agents get a look at it."""
        if key in self._slot_holders:
            self._slot_holders.discard(key)
            for waiting in self._queued:
                self._mark_agent(waiting)

    def _run_restart(self, rec: AgentRecord, token: str) -> None:
        key = rec.ref.key
        if rec.runtime.type == "Process":
            # The sidecar restarts the process it supervises when the restart request
            # in its assignment changes: publishing it is the whole action.
            self._publish(key)
            rec.outcome = RestartOutcome.done("restart requested from the supervising sidecar")
            self._mark_agent(key)
        elif self.restarts is None:
            rec.outcome = RestartOutcome.failed("RuntimeUnavailable", "this operator runs without runtime backends", retryable=False)
            self._mark_agent(key)
        else:
            self.restarts.submit(rec.ref, rec.runtime, token)

    def _cure_crash_faults(self, key: Key) -> None:
        cured = False
        for fault_key in self._faults_on_agent.get(key, ()):
            frec = self.faults.get(fault_key)
            if frec is not None and frec.spec is not None and frec.spec.type == "Crash" and key.name not in frec.cured_on:
                frec.cured_on.add(key.name)
                # Recorded in status so that an operator restart does not strike again.
                frec.status = {**frec.status, "curedTargets": sorted(frec.cured_on)}
                self.writer.write_status(frec.ref, frec.status)
                cured = True
        if cured:
            self._publish(key)

    def _check_stop_conditions(self, rec: AgentRecord, metrics: dict[str, float | int], wall: datetime, mono: float) -> None:
        key = rec.ref.key
        for fault_key in list(self._faults_on_agent.get(key, ())):
            frec = self.faults.get(fault_key)
            if frec is None or frec.spec is None or frec.stop is not None or not frec.spec.stop_conditions:
                continue
            why, recheck = stop_conditions.tripped(
                frec.spec.stop_conditions, agent=key.name, metrics=metrics, min_samples=rec.thresholds.min_samples,
                unhealthy_since=rec.healing.unhealthy_since, now=wall)
            if why is not None:
                frec.stop = fault_lifecycle.EarlyStop(fault_lifecycle.ABORTED, "StopConditionTripped", why)
                self._mark_fault(fault_key)
            elif recheck is not None:
                self._schedule_at(("agent", key), recheck, wall, mono)

    def _mirror(self, rec: AgentRecord, wanted: dict[str, Any], wall: datetime) -> None:
        if self.mirror is None:
            return
        key = rec.ref.key
        doc = {k: v for k, v in wanted.items() if k != "incidents"}
        self.mirror.put_agent(key.namespace, key.name, {**doc, "updatedAt": format_time(wall)})
        old = {i.get("id"): i for i in rec.status.get("incidents") or ()}
        for incident in wanted.get("incidents") or ():
            if old.get(incident["id"]) != incident:
                self.mirror.put_incident(key.namespace, key.name, incident["id"], incident)

    # ------------------------------------------------------------------ helpers

    def _schedule_at(self, item: tuple[str, Key], moment: datetime, wall: datetime, mono: float) -> None:
        """Look at `item` again at wall-clock `moment` (decisions speak wall time; the heap, monotonic)."""
        self._deadlines.schedule(item, mono + max(0.0, (moment - wall).total_seconds()))

    def _mark_agent(self, key: Key) -> None:
        self._dirty_agents.add(key)
        self._wake.set()

    def _mark_fault(self, key: Key) -> None:
        self._dirty_faults.add(key)
        self._wake.set()

    def _mark_namespace_faults(self, namespace: str) -> None:
        for name in self._faults_in_ns.get(namespace, ()):
            self._dirty_faults.add(Key(namespace, name))
        self._wake.set()

    def _drop_agent(self, key: Key) -> None:
        if self.agents.pop(key, None) is None:
            return
        self._agents_in_ns.get(key.namespace, set()).discard(key.name)
        self.telemetry.forget(key)
        self.board.remove(key)
        self._faults_on_agent.pop(key, None)
        self._deadlines.cancel(("agent", key))
        self.writer.forget(AGENTS, key)
        self._queued.pop(key, None)
        self._release_slot(key)
        if self.mirror is not None:
            self.mirror.remove_agent(key.namespace, key.name)
        self._mark_namespace_faults(key.namespace)

    def _drop_fault(self, key: Key) -> None:
        rec = self.faults.pop(key, None)
        if rec is None:
            return
        self._faults_in_ns.get(key.namespace, set()).discard(key.name)
        self._deadlines.cancel(("fault", key))
        self.writer.forget(FAULTS, key)
        # Level-based delivery: the agents simply stop being assigned this fault.
        for name in rec.enforced_on:
            agent = Key(key.namespace, name)
            self._faults_on_agent.get(agent, set()).discard(key)
            self._publish(agent)
        self._wake.set()

    def _refresh_gauges(self) -> None:
        for gauge, records in ((self.metrics.agents, self.agents), (self.metrics.faults, self.faults)):
            counts: dict[str, int] = {}
            for rec in records.values():
                phase = str(rec.status.get("phase") or "Pending" if gauge is self.metrics.faults else rec.status.get("phase") or "Unknown")
                counts[phase] = counts.get(phase, 0) + 1
            gauge.clear()
            for phase, n in counts.items():
                gauge.labels(phase=phase).set(n)
        self.metrics.assignment_waiters.set(self.board.waiters)
        self.metrics.restart_slots_in_use.set(len(self._slot_holders))
        states: dict[str, int] = {}
        for rec in self.agents.values():
            states[rec.healing.state] = states.get(rec.healing.state, 0) + 1
        self.metrics.healing_states.clear()
        for state, n in states.items():
            self.metrics.healing_states.labels(state=state).set(n)
