"""The healing half of an agent's pass: run the policy's step and carry out what it decided.

`healing_policy.step` is pure; this module performs its effects: Events and metrics,
restart slots, deadlines, the restart itself (through the RestartRunner, or by
publishing a restart token to a supervising sidecar), and the requests a restart makes
of Faults (a verified restart cures Crash faults; a manual recover halts them).
"""

from __future__ import annotations

from datetime import datetime

from agentops.api_types import HealingActionType
from agentops.times import parse_time
from agentops_operator import fault_lifecycle, healing_decision, healing_policy, healing_state
from agentops_operator.conditions import find
from agentops_operator.fault_pass import FaultPass
from agentops_operator.health import Assessment
from agentops_operator.metrics import OperatorMetrics
from agentops_operator.object_index import ObjectIndex
from agentops_operator.records import AgentRecord, StatusSink
from agentops_operator.resources import RECOVER_ANNOTATION
from agentops_operator.restart_runner import RestartRunner
from agentops_operator.restart_slots import RestartSlots
from agentops_operator.runtimes import RestartOutcome
from agentops_operator.work_queue import WorkQueue


class HealingEffects:
    def __init__(self, index: ObjectIndex, queue: WorkQueue, faults: FaultPass, writer: StatusSink,
                 metrics: OperatorMetrics, slots: RestartSlots, restarts: RestartRunner | None) -> None:
        self.index, self.queue, self.faults, self.writer = index, queue, faults, writer
        self.metrics, self.slots, self.restarts = metrics, slots, restarts

    def heal(self, rec: AgentRecord, assessment: Assessment, instances: tuple[str, ...], faults: list[str], judged: bool,
             wall: datetime, mono: float) -> None:
        key = rec.ref.key
        ready = find(rec.status.get("conditions"), "Ready")
        not_healthy_since = parse_time(ready.get("lastTransitionTime")) if ready and ready.get("status") != "True" else None
        obs = healing_decision.Observation(assessment.phase, assessment.reason, assessment.message, instances, tuple(faults),
                                         not_healthy_since, judged)
        outcome, rec.outcome = rec.outcome, None
        answered = rec.healing.action or "Restart"  # what `outcome` answers, if anything
        decision = healing_policy.step(
            rec.healing, rec.incidents, policy=rec.policy, runtime_type=rec.runtime.type, runtime_name=rec.runtime.describe(),
            obs=obs, now=wall, slot_free=self.slots.free_for(key), outcome=outcome,
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
        if outcome is not None and outcome.ok and answered == "Restart":
            # A restart cures Crash faults (a scale to zero cures nothing: it ends in Stalled).
            for fault in self.index.assigned_to(key):
                if fault.spec is not None and fault.spec.type == "Crash":
                    self.faults.cure(fault.ref.key, key.name)
        if decision.halt_faults:
            stop = fault_lifecycle.EarlyStop(fault_lifecycle.HALTED, "ManualRecover",
                                             f"agent {key.name} was recovered by hand ({RECOVER_ANNOTATION})")
            for fault in self.index.assigned_to(key):
                self.faults.request_stop(fault.ref.key, stop)
        if decision.state.state in healing_state.HOLDS_SLOT:
            self.slots.hold(key)
        else:
            self.queue.mark_all("agent", self.slots.release(key))
            if decision.state.state == healing_state.QUEUED:
                self.slots.queue(key)
        if decision.next_check is not None:
            self.queue.schedule_at("agent", key, decision.next_check, wall, mono)
        if decision.restart is not None:
            if decision.restart.action == "Restart":
                rec.restart_count += 1
                self.metrics.restarts.labels(runtime=runtime, result="Started").inc()
            self._start_restart(rec, decision.restart.token, decision.restart.action)

    def _start_restart(self, rec: AgentRecord, token: str, action: HealingActionType) -> None:
        key = rec.ref.key
        if rec.runtime.type == "Process" and action == "Restart":
            # The sidecar restarts the process it supervises when the restart token in
            # its assignment changes: publishing it is the whole action.
            self.faults.publish(key)
            rec.outcome = RestartOutcome.done("restart requested from the supervising sidecar")
            self.queue.mark("agent", key)
        elif self.restarts is None:
            rec.outcome = RestartOutcome.failed("RuntimeUnavailable", "this operator runs without runtime backends", retryable=False)
            self.queue.mark("agent", key)
        else:
            self.restarts.submit(rec.ref, rec.runtime, token, action)

    def finished(self, rec: AgentRecord, token: str, outcome: RestartOutcome) -> None:
        """A runtime's answer (from the RestartRunner, on the loop)."""
        if rec.healing.restart_token != token or rec.healing.state != healing_state.RESTARTING:
            return  # the agent moved on; the answer is moot
        rec.outcome = outcome
        self.queue.mark("agent", rec.ref.key)
