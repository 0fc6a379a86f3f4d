"""The agent half of a reconcile pass: assess, heal, guard faults, and write status.

For one dirty agent: summarise its telemetry, assess health against its thresholds,
let the healing policy act (healing_effects), ask its faults to stop where a stop
condition tripped, and write the new status only when agent_status says it is worth
an API call — with an Event on a phase change and a copy to the optional mirror.
"""

from __future__ import annotations

from datetime import datetime

from agentops.api_types import AgentMetrics, AgentModelMetrics, AgentStatus
from agentops.times import format_time
from agentops_operator import agent_status, fault_lifecycle, healing_state, stop_conditions
from agentops_operator.assignments import AssignmentBoard
from agentops_operator.fault_pass import FaultPass
from agentops_operator.healing_effects import HealingEffects
from agentops_operator.health import assess
from agentops_operator.object_index import ObjectIndex
from agentops_operator.records import AgentRecord, Mirror, StatusSink
from agentops_operator.telemetry_store import TelemetryStore
from agentops_operator.work_queue import WorkQueue


class AgentPass:
    def __init__(self, index: ObjectIndex, queue: WorkQueue, telemetry: TelemetryStore, board: AssignmentBoard,
                 faults: FaultPass, healing: HealingEffects, writer: StatusSink, mirror: Mirror | None,
                 *, heartbeat_s: float, started: float) -> None:
        self.index, self.queue, self.telemetry, self.board = index, queue, telemetry, board
        self.faults, self.healing, self.writer, self.mirror = faults, healing, writer, mirror
        self.heartbeat_s = heartbeat_s
        self.started = started  # monotonic start of this operator

    def run(self, wall: datetime, mono: float) -> None:
        for key in self.queue.take("agent"):
            rec = self.index.agents.get(key)
            if rec is not None:
                self.reconcile(rec, wall, mono)

    def reconcile(self, rec: AgentRecord, wall: datetime, mono: float) -> None:
        key, th = rec.ref.key, rec.thresholds
        summary = self.telemetry.summary(key, now=mono, window_s=th.window_s, stale_s=th.heartbeat_timeout_s)
        if summary is None and rec.status.get("phase") not in (None, "Unknown") and mono - self.started < th.heartbeat_timeout_s:
            # Just restarted: telemetry windows are soft state and empty, but the
            # sidecars will report within their interval. Judging now would flip every
            # agent to Unknown and back (two writes and two Events each); keep the
            # recorded status for one heartbeat timeout instead.
            self.queue.schedule("agent", key, self.started + th.heartbeat_timeout_s)
            return
        assessment = assess(summary, th)
        applied = summary.applied_fault_uids if summary else frozenset()
        faults = [agent_status.ActiveFault(f["name"], f["uid"], f["type"], f["expiresAt"], f["uid"] in applied)
                  for f in sorted(self.board.current(key)[1], key=lambda f: f["name"])]
        instances = summary.instances if summary else ()
        self.healing.heal(rec, assessment, instances, [f.name for f in faults], bool(summary and summary.requests >= th.min_samples),
                          wall, mono)
        self._guard_faults(rec, assessment.metrics, assessment.model, wall, mono)
        last = self.telemetry.last_report_wall(key)
        wanted = agent_status.desired_status(
            rec.status, generation=rec.generation, assessment=assessment, faults=faults,
            last_report_time=format_time(last) if last else None, reporters=summary.reporters if summary else 0,
            instances=instances, now=format_time(wall), healing=rec.healing.to_status(), incidents=rec.incidents,
            extra_conditions=[*healing_state.conditions(rec.healing), *agent_status.sidecar_conditions(rec.sidecar_missing)],
            restart_count=rec.restart_count,
        )
        if agent_status.needs_write(rec.status, wanted, since_last_write=mono - rec.last_write, heartbeat=self.heartbeat_s):
            self._announce_phase(rec, wanted)
            self._mirror(rec, wanted, wall)
            rec.status, rec.last_write = wanted, mono
            self.writer.write_status(rec.ref, wanted)
        elif agent_status.metrics_moved(rec.status, wanted):
            self.queue.schedule("agent", key, rec.last_write + self.heartbeat_s)
        if summary is not None and assessment.telemetry_fresh == "True":
            # Look again just after the telemetry would turn stale.
            self.queue.schedule("agent", key, mono + th.heartbeat_timeout_s - summary.last_report_age_s + 0.01)

    def _announce_phase(self, rec: AgentRecord, wanted: AgentStatus) -> None:
        old, new = rec.status.get("phase"), wanted["phase"]
        if old is not None and old != new:
            ready = next(c for c in wanted["conditions"] if c["type"] == "Ready")
            self.writer.post_event(rec.ref, "Normal" if new == "Healthy" else "Warning", f"Agent{new}",
                                   f"{old} → {new}: {ready['message']}")

    def _guard_faults(self, rec: AgentRecord, metrics: AgentMetrics, model: AgentModelMetrics | None, wall: datetime,
                      mono: float) -> None:
        """Ask each assigned fault whose stop condition tripped to abort; look again when one may trip."""
        key = rec.ref.key
        for fault in self.index.assigned_to(key):
            if fault.spec is None or fault.stop is not None or not fault.spec.stop_conditions:
                continue
            why, recheck = stop_conditions.tripped(
                fault.spec.stop_conditions, agent=key.name, metrics=metrics, min_samples=rec.thresholds.min_samples,
                unhealthy_since=rec.healing.unhealthy_since, now=wall, model=model,
                min_calls=rec.thresholds.model_min_calls)
            if why is not None:
                self.faults.request_stop(fault.ref.key, fault_lifecycle.EarlyStop(fault_lifecycle.ABORTED, "StopConditionTripped", why))
            elif recheck is not None:
                self.queue.schedule_at("agent", key, recheck, wall, mono)

    def _mirror(self, rec: AgentRecord, wanted: AgentStatus, wall: datetime) -> None:
        if self.mirror is None:
            return
        key = rec.ref.key
        doc = {k: v for k, v in wanted.items() if k != "incidents"}
        self.mirror.put_agent(key.namespace, key.name, {**doc, "updatedAt": format_time(wall)})
        old = {i.get("id"): i for i in rec.status.get("incidents") or ()}
        for incident in wanted.get("incidents") or ():
            if old.get(incident["id"]) != incident:
                self.mirror.put_incident(key.namespace, key.name, incident["id"], incident)
