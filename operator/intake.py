"""Watch events and lists in, records out: how Agents and Faults enter the operator's view.

Each event updates the ObjectIndex and marks what must be looked at again; nothing is
decided here. Deletions leave a tombstone (uid → monotonic time), so that a list that
began before the deletion cannot bring the object back (see `resync`).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from agentops.api_types import AgentStatus, FaultStatus
from agentops.errors import AgentOpsError
from agentops.times import parse_time
from agentops_operator import healing_state
from agentops_operator.assignments import AssignmentBoard
from agentops_operator.fault_pass import FaultPass
from agentops_operator.halt_switch import ALL, HaltSwitch
from agentops_operator.object_index import ObjectIndex
from agentops_operator.records import AgentRecord, Clock, FaultRecord, Mirror, StatusSink
from agentops_operator.resources import (
    AGENTS, FAULTS, RECOVER_ANNOTATION, RESTART_ANNOTATION, FaultSpec, HealingPolicy, HealthThresholds, Key, ObjectRef,
    RuntimeSpec,
)
from agentops_operator.restart_slots import RestartSlots
from agentops_operator.runtimes import RestartOutcome
from agentops_operator.telemetry_store import TelemetryStore
from agentops_operator.work_queue import WorkQueue

log = logging.getLogger(__name__)

Body = Mapping[str, Any]


def ref_of(body: Body, kind: str, plural: str) -> ObjectRef:
    meta = body["metadata"]
    return ObjectRef(kind=kind, plural=plural, key=Key(meta["namespace"], meta["name"]), uid=meta.get("uid", ""))


def _agent_settings(key: Key, spec: Body) -> tuple[HealthThresholds, HealingPolicy, RuntimeSpec]:
    """The Agent's spec as settings; a part that cannot be read falls back to something safe, loudly."""
    try:
        thresholds = HealthThresholds.from_spec(dict(spec))
    except AgentOpsError as exc:
        log.warning("agent %s: %s; using default health thresholds", key, exc)
        thresholds = HealthThresholds()
    try:
        policy = HealingPolicy.from_spec(dict(spec))
    except AgentOpsError as exc:
        log.warning("agent %s: %s; healing disabled until the spec is fixed", key, exc)
        policy = HealingPolicy(enabled=False)
    try:
        runtime = RuntimeSpec.from_spec(dict(spec))
    except AgentOpsError as exc:
        log.warning("agent %s: %s; observing only until the spec is fixed", key, exc)
        runtime = RuntimeSpec()
    return thresholds, policy, runtime


class Intake:
    def __init__(self, index: ObjectIndex, queue: WorkQueue, clock: Clock, faults: FaultPass, slots: RestartSlots,
                 telemetry: TelemetryStore, board: AssignmentBoard, writer: StatusSink, mirror: Mirror | None,
                 halts: HaltSwitch) -> None:
        self.index, self.queue, self.clock, self.faults, self.slots = index, queue, clock, faults, slots
        self.telemetry, self.board, self.writer, self.mirror, self.halts = telemetry, board, writer, mirror, halts
        self._tombstones: dict[str, float] = {}

    # ------------------------------------------------------------------ Agents

    def agent_event(self, event_type: str | None, body: Body) -> None:
        ref = ref_of(body, "Agent", AGENTS)
        key = ref.key
        if event_type == "DELETED":
            self._tombstones[ref.uid] = self.clock.mono()
            self.drop_agent(key)
            return
        meta = body["metadata"]
        old = self.index.agents.get(key)
        if old is not None and old.ref.uid != ref.uid:
            self.drop_agent(key)  # deleted and re-created: nothing carries over
            old = None
        thresholds, policy, runtime = _agent_settings(key, body.get("spec") or {})
        service_accounts = frozenset(((body.get("spec") or {}).get("identity") or {}).get("serviceAccounts") or ())
        labels = dict(meta.get("labels") or {})
        generation = int(meta.get("generation", 1))
        annotations = meta.get("annotations") or {}
        restart = annotations.get(RESTART_ANNOTATION) or None
        recover = annotations.get(RECOVER_ANNOTATION) or None
        if old is None:
            status: AgentStatus = dict(body.get("status") or {})  # type: ignore[assignment]  # the CRD's shape
            rec = AgentRecord(ref, generation, labels, thresholds, status, restart=restart, recover=recover, seen=self.clock.mono(),
                              policy=policy, runtime=runtime, service_accounts=service_accounts, healing=healing_state.HealingState.from_status(status.get("healing")),
                              incidents=list(status.get("incidents") or ()), restart_count=int(status.get("restartCount", 0)))
            if rec.healing.state == healing_state.RESTARTING:
                # The operator stopped while this restart was in flight; its answer is
                # lost. Verify it like any other: a new healthy instance proves it.
                rec.outcome = RestartOutcome.done("the operator restarted while this restart was in flight")
            if rec.healing.state in healing_state.HOLDS_SLOT:
                self.slots.hold(key)
            self.index.add_agent(rec)
            self.queue.mark_all("fault", self.index.faults_in(key.namespace))
            self.queue.mark("agent", key)
            return
        old.seen = self.clock.mono()
        if (restart, recover) != (old.restart, old.recover):
            old.restart, old.recover = restart, recover
            self.queue.mark("agent", key)
        if labels != old.labels:
            old.labels = labels
            self.queue.mark_all("fault", self.index.faults_in(key.namespace))
        if generation != old.generation:
            old.generation, old.thresholds, old.policy, old.runtime = generation, thresholds, policy, runtime
            old.service_accounts = service_accounts
            old.spec_changed = True
            self.queue.mark("agent", key)

    def drop_agent(self, key: Key) -> None:
        if self.index.drop_agent(key) is None:
            return
        self.telemetry.forget(key)
        self.board.remove(key)
        self.queue.cancel("agent", key)
        self.writer.forget(AGENTS, key)
        self.queue.mark_all("agent", self.slots.release(key))
        if self.mirror is not None:
            self.mirror.remove_agent(key.namespace, key.name)
        self.queue.mark_all("fault", self.index.faults_in(key.namespace))

    # ------------------------------------------------------------------ Faults

    def fault_event(self, event_type: str | None, body: Body) -> None:
        ref = ref_of(body, "Fault", FAULTS)
        key = ref.key
        if event_type == "DELETED":
            self._tombstones[ref.uid] = self.clock.mono()
            self.drop_fault(key)
            return
        meta = body["metadata"]
        old = self.index.faults.get(key)
        if old is not None and old.ref.uid != ref.uid:
            self.drop_fault(key)
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
            status: FaultStatus = dict(body.get("status") or {})  # type: ignore[assignment]  # the CRD's shape
            self.index.add_fault(FaultRecord(ref, generation, created, spec, error, status, seen=self.clock.mono(),
                                             cured=set(status.get("curedTargets") or ())))
        else:
            old.generation, old.spec, old.spec_error = generation, spec, error
        self.queue.mark("fault", key)

    def drop_fault(self, key: Key) -> None:
        if key in self.index.faults:
            self.writer.forget(FAULTS, key)
            self.faults.forget(key)
            self.queue.wake.set()

    # ------------------------------------------------------------------ the halt switch

    def namespace_event(self, event_type: str | None, body: Body) -> None:
        """The halt switch (see halt_switch.py): a Namespace's annotations changed."""
        changed = self.halts.observe(event_type, dict(body))
        namespaces = self.index.namespaces_with_faults() if changed == ALL else [changed] if changed is not None else []
        for ns in namespaces:
            self.queue.mark_all("fault", self.index.faults_in(ns))

    # ------------------------------------------------------------------ lists

    def resync(self, agents: Sequence[Body], faults: Sequence[Body], *, listed_at: float) -> None:
        """Apply a full list that began at `listed_at` (monotonic).

        The watch may be newer than the list: an object the watch reported after the
        list began keeps the watch's version, and one deleted after it stays deleted.
        Objects missing from the list and last seen before it began are gone (a watch
        can miss a deletion across a reconnect).
        """
        for body in agents:
            if self._list_is_current(body, self.index.agents, listed_at):
                self.agent_event(None, body)
        for body in faults:
            if self._list_is_current(body, self.index.faults, listed_at):
                self.fault_event(None, body)
        self._tombstones = {uid: t for uid, t in self._tombstones.items() if t >= listed_at}
        listed_agents = {ref_of(b, "Agent", AGENTS).key for b in agents}
        listed_faults = {ref_of(b, "Fault", FAULTS).key for b in faults}
        for key in [k for k, r in self.index.agents.items() if k not in listed_agents and r.seen < listed_at]:
            self.drop_agent(key)
        for key in [k for k, f in self.index.faults.items() if k not in listed_faults and f.seen < listed_at]:
            self.drop_fault(key)
        self.queue.wake.set()

    def _list_is_current(self, body: Body, records: Mapping[Key, AgentRecord | FaultRecord], listed_at: float) -> bool:
        meta = body["metadata"]
        if self._tombstones.get(meta.get("uid", ""), float("-inf")) >= listed_at:
            return False
        rec = records.get(Key(meta["namespace"], meta["name"]))
        return rec is None or rec.ref.uid != meta.get("uid") or rec.seen < listed_at
