"""The fault half of a reconcile pass: decide each dirty Fault, then publish assignments.

A Fault's status changes only through `fault_lifecycle.decide` (or `invalid_spec`),
here. Other parts of the operator may only *ask*: `request_stop` (a halt, a manual
recover, a tripped stop condition) and `cure` (a restart cured an agent of a Crash
fault); the request is recorded on the record and consumed by the next decision.

Publishing turns the Faults assigned to an agent into its assignment set on the
board, from which the agent's sidecars long-poll.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from agentops.api_types import CrashParams, ErrorParams, LatencyParams, ModelFaultParams
from agentops.wire import FaultAssignment
from agentops_operator import fault_lifecycle
from agentops_operator.assignments import AssignmentBoard
from agentops_operator.halt_switch import HaltSwitch
from agentops_operator.metrics import OperatorMetrics
from agentops_operator.object_index import ObjectIndex
from agentops_operator.records import FaultRecord, StatusSink
from agentops_operator.resources import Key
from agentops_operator.work_queue import WorkQueue


def assignment(rec: FaultRecord) -> FaultAssignment:
    """What a sidecar needs of an assigned Fault: its type's block as written, and the deadline."""
    assert rec.spec is not None
    item = FaultAssignment(uid=rec.ref.uid, name=rec.ref.key.name, type=rec.spec.type,
                           expiresAt=str(rec.status.get("expiresAt")), percentage=rec.spec.percentage)
    # The type's own block as written (the API server checked it against the CRD schema).
    params = dict(rec.spec.params)
    if rec.spec.type == "Latency":
        item["latency"] = cast(LatencyParams, params)
    elif rec.spec.type == "Error":
        item["error"] = cast(ErrorParams, params)
    elif rec.spec.type.startswith("Model"):
        item["model"] = cast(ModelFaultParams, params)
    else:
        item["crash"] = cast(CrashParams, params)
    return item


class FaultPass:
    def __init__(self, index: ObjectIndex, queue: WorkQueue, board: AssignmentBoard, writer: StatusSink,
                 metrics: OperatorMetrics, halts: HaltSwitch) -> None:
        self.index, self.queue, self.board, self.writer = index, queue, board, writer
        self.metrics, self.halts = metrics, halts

    # ------------------------------------------------------------------ requests

    def request_stop(self, key: Key, stop: fault_lifecycle.EarlyStop) -> None:
        """End the Fault early on its next decision (the first request wins)."""
        rec = self.index.faults.get(key)
        if rec is not None and rec.stop is None:
            rec.stop = stop
            self.queue.mark("fault", key)

    def cure(self, key: Key, agent: str) -> None:
        """A restart cured `agent` of this (Crash) fault: no longer assign it there, even to a new pod."""
        rec = self.index.faults.get(key)
        if rec is not None and agent not in rec.cured:
            rec.cured.add(agent)
            self.queue.mark("fault", key)

    # ------------------------------------------------------------------ the pass

    def run(self, wall: datetime, mono: float) -> None:
        touched: set[Key] = set()
        for key in self.queue.take("fault"):
            touched |= self.decide(key, wall, mono)
        for agent in touched:
            self.publish(agent)

    def decide(self, key: Key, wall: datetime, mono: float) -> set[Key]:
        """Decide one Fault; return the agents whose assignment sets may have changed."""
        rec = self.index.faults.get(key)
        if rec is None:
            return set()
        if rec.spec is None:
            decision = fault_lifecycle.invalid_spec(rec.status, rec.generation, rec.spec_error or "invalid spec", wall)
        else:
            view = fault_lifecycle.FaultView(key.name, rec.generation, rec.created, rec.spec, rec.status, frozenset(rec.cured))
            decision = fault_lifecycle.decide(view, self.index.targets(rec), wall, rec.stop or self.halts.stop_for(key.namespace))
            phase = decision.status.get("phase")
            if phase in (fault_lifecycle.HALTED, fault_lifecycle.ABORTED) and decision.status != rec.status:
                self.metrics.fault_early_stops.labels(phase=phase).inc()
        if decision.status != rec.status:
            rec.status = decision.status
            self.writer.write_status(rec.ref, decision.status)
        for ev in decision.events:
            self.writer.post_event(rec.ref, ev.type, ev.reason, ev.message)
        if decision.next_check is not None:
            self.queue.schedule_at("fault", key, decision.next_check, wall, mono)
        assigned = tuple(decision.status.get("targets") or ()) if decision.assign else ()
        # Every agent it was or is assigned to: the set, or a parameter in it, may differ;
        # and one newly cured must get a set without it.
        return self.index.assign(key, assigned) | {Key(key.namespace, n) for n in rec.cured}

    def publish(self, agent: Key) -> None:
        """Put the agent's current assignment set (and restart token, for Process) on the board."""
        rec = self.index.agents.get(agent)
        if rec is None:
            return
        # A fault whose new spec cannot be read is withdrawn on its next decision;
        # until then it is not handed out either.
        faults = [assignment(f) for f in self.index.assigned_to(agent) if f.spec is not None and agent.name not in f.cured]
        # Only a supervising sidecar acts on a restart token (runtime Process).
        token = rec.healing.restart_token if rec.runtime.type == "Process" else None
        if self.board.publish(agent, faults, token):
            self.metrics.assignment_changes.inc()
            self.queue.mark("agent", agent)

    def forget(self, key: Key) -> None:
        """The Fault is gone: its agents simply stop being assigned it (level-based delivery)."""
        self.queue.cancel("fault", key)
        for agent in self.index.drop_fault(key):
            self.publish(agent)
