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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from agentops.errors import AgentOpsError
from agentops.wire import FaultAssignment, TelemetryReport
from agentops_operator import agent_status, fault_lifecycle
from agentops_operator.assignments import AssignmentBoard
from agentops_operator.deadlines import DeadlineHeap
from agentops_operator.health import assess
from agentops_operator.metrics import OperatorMetrics
from agentops_operator.resources import AGENTS, FAULTS, RESTART_ANNOTATION, FaultSpec, HealthThresholds, Key, ObjectRef, format_time, parse_time
from agentops_operator.status_writer import StatusWriter
from agentops_operator.telemetry_store import TelemetryStore

log = logging.getLogger(__name__)

# Gauges of phase counts are O(objects); refresh them at most this often.
GAUGE_REFRESH_S = 1.0
# Wake at least this often even with nothing due, as a guard against a missed wake-up.
MAX_IDLE_S = 30.0


class UnknownAgent(AgentOpsError):
    pass


@dataclass
class Clock:
    """Wall and monotonic time, injectable so that tests need no sleeps."""

    wall: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    mono: Callable[[], float] = field(default=time.monotonic)


@dataclass
class AgentRecord:
    ref: ObjectRef
    generation: int
    labels: dict[str, str]
    thresholds: HealthThresholds
    status: dict[str, Any]  # the last status written by us, else the one observed
    restart: str | None = None  # RESTART_ANNOTATION's value: a request to its sidecars
    last_write: float = float("-inf")  # monotonic
    seen: float = 0.0  # monotonic time of the last watch event or list that included it


@dataclass
class FaultRecord:
    ref: ObjectRef
    generation: int
    created: datetime
    spec: FaultSpec | None
    spec_error: str | None
    status: dict[str, Any]
    enforced_on: tuple[str, ...] = ()  # agent names whose sidecars must enforce it now
    seen: float = 0.0


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
    ) -> None:
        self.writer = writer
        self.metrics = metrics
        self.heartbeat_s = heartbeat_s
        self.clock = clock or Clock()
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
        labels = dict(meta.get("labels") or {})
        generation = int(meta.get("generation", 1))
        restart = (meta.get("annotations") or {}).get(RESTART_ANNOTATION) or None
        if old is None:
            self.agents[key] = AgentRecord(ref, generation, labels, thresholds, dict(body.get("status") or {}), restart=restart, seen=self.clock.mono())
            self._agents_in_ns.setdefault(key.namespace, set()).add(key.name)
            self._mark_namespace_faults(key.namespace)
            self._mark_agent(key)
            return
        old.seen = self.clock.mono()
        if restart != old.restart:
            old.restart = restart
            self._publish(key)
        if labels != old.labels:
            old.labels = labels
            self._mark_namespace_faults(key.namespace)
        if generation != old.generation:
            old.generation, old.thresholds = generation, thresholds
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
            self.faults[key] = FaultRecord(ref, generation, created, spec, error, dict(body.get("status") or {}), seen=self.clock.mono())
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
            decision = fault_lifecycle.decide(view, self._targets(rec), wall)
        if decision.status != rec.status:
            rec.status = decision.status
            self.writer.write_status(rec.ref, decision.status)
        for ev in decision.events:
            self.writer.post_event(rec.ref, ev.type, ev.reason, ev.message)
        if decision.next_check is not None:
            self._deadlines.schedule(("fault", key), mono + (decision.next_check - wall).total_seconds())
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
        faults = [self._assignment(self.faults[k]) for k in keys if k in self.faults and self.faults[k].spec is not None]
        rec = self.agents.get(agent)
        if rec is None:
            return
        if self.board.publish(agent, faults, rec.restart):
            self.metrics.assignment_changes.inc()
            self._mark_agent(agent)

    # ------------------------------------------------------------------ agents

    def _reconcile_agent(self, key: Key, wall: datetime, mono: float) -> None:
        rec = self.agents.get(key)
        if rec is None:
            return
        th = rec.thresholds
        summary = self.telemetry.summary(key, now=mono, window_s=th.window_s)
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
        )
        since = mono - rec.last_write
        if agent_status.needs_write(rec.status, wanted, since_last_write=since, heartbeat=self.heartbeat_s):
            old_phase = rec.status.get("phase")
            if old_phase is not None and old_phase != wanted["phase"]:
                kind = "Normal" if wanted["phase"] == "Healthy" else "Warning"
                ready = next(c for c in wanted["conditions"] if c["type"] == "Ready")
                self.writer.post_event(rec.ref, kind, f"Agent{wanted['phase']}", f"{old_phase} → {wanted['phase']}: {ready['message']}")
            rec.status, rec.last_write = wanted, mono
            self.writer.write_status(rec.ref, wanted)
        elif wanted.get("metrics") != rec.status.get("metrics"):
            self._deadlines.schedule(("agent", key), rec.last_write + self.heartbeat_s)
        if summary is not None and assessment.telemetry_fresh == "True":
            # Look again just after the telemetry would turn stale.
            self._deadlines.schedule(("agent", key), mono + th.heartbeat_timeout_s - summary.last_report_age_s + 0.01)

    # ------------------------------------------------------------------ helpers

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
