"""The operator's one reconcile loop over in-memory indexes.

Inputs arrive as plain calls — watch events from kopf (`agent_event`, `fault_event`,
`namespace_event`, `resync`: intake.py), telemetry from the HTTP API (`ingest`) — and
only mark objects dirty. The loop (`run`) then makes one pass (`process`) over what is
dirty or due: faults first (fault_pass.py), because they decide each agent's
assignments, then agents (agent_pass.py, with healing_effects.py). Time-driven work
(fault expiry, a Pending fault giving up, stale telemetry, the status heartbeat) is a
deadline in one heap (work_queue.py), not a timer per object. Writes go to the
StatusWriter, which coalesces and bounds them; nothing here blocks or awaits I/O.

State of record is the custom resources' status; everything here is rebuilt from a
list of them after a restart. Telemetry windows are soft state.

The HTTP API sees the Reconciler only through `SidecarPort` (its methods below), not
its fields.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence

from agentops.wire import FaultAssignment, TelemetryReport
from agentops_operator.agent_pass import AgentPass
from agentops_operator.assignments import AssignmentBoard
from agentops_operator.authorization import AgentIdentity, RefusalLog
from agentops_operator.callers import Caller, Refused
from agentops_operator.fault_pass import FaultPass
from agentops_operator.gauges import refresh_gauges
from agentops_operator.halt_switch import HaltSwitch
from agentops_operator.healing_effects import HealingEffects
from agentops_operator.intake import Intake
from agentops_operator.metrics import OperatorMetrics
from agentops_operator.object_index import ObjectIndex
from agentops_operator.records import AgentRecord, Clock, FaultRecord, Mirror, StatusSink, UnknownAgent
from agentops_operator.resources import Key
from agentops_operator.restart_runner import RestartRunner
from agentops_operator.restart_slots import RestartSlots
from agentops_operator.runtimes import RestartOutcome
from agentops_operator.telemetry_store import TelemetryStore
from agentops_operator.work_queue import WorkQueue

# Gauges of phase counts are O(objects); refresh them at most this often.
GAUGE_REFRESH_S = 1.0
# Wake at least this often even with nothing due, as a guard against a missed wake-up.
MAX_IDLE_S = 30.0


class Reconciler:
    def __init__(
        self,
        writer: StatusSink,
        metrics: OperatorMetrics,
        *,
        heartbeat_s: float = 60.0,
        clock: Clock | None = None,
        restarts: RestartRunner | None = None,
        max_concurrent_restarts: int = 3,
        control_namespace: str = "agentops-system",
        mirror: Mirror | None = None,
    ) -> None:
        self.metrics = metrics
        self.writer = writer
        self.clock = clock or Clock()
        # Others that measure the reports as they come (check_controller: runs in progress).
        self.report_taps: list[Callable[[Key, TelemetryReport, float], None]] = []
        self.halts = HaltSwitch(control_namespace)
        self.refusals = RefusalLog(clock=self.clock.mono)
        self.board = AssignmentBoard()
        self.telemetry = TelemetryStore()
        self.index = ObjectIndex()
        self.queue = WorkQueue()
        self.slots = RestartSlots(max_concurrent_restarts)
        self.fault_pass = FaultPass(self.index, self.queue, self.board, writer, metrics, self.halts)
        self.healing = HealingEffects(self.index, self.queue, self.fault_pass, writer, metrics, self.slots, restarts)
        self.agent_pass = AgentPass(self.index, self.queue, self.telemetry, self.board, self.fault_pass, self.healing, writer,
                                    mirror, heartbeat_s=heartbeat_s, started=self.clock.mono())
        self.intake = Intake(self.index, self.queue, self.clock, self.fault_pass, self.slots, self.telemetry, self.board,
                             writer, mirror, self.halts)
        if restarts is not None:
            restarts.on_done = self.restart_finished
        self._gauges_at = float("-inf")
        self.synced = False

    @property
    def agents(self) -> Mapping[Key, AgentRecord]:
        return self.index.agents

    @property
    def faults(self) -> Mapping[Key, FaultRecord]:
        return self.index.faults

    # ------------------------------------------------------------------ inputs (kopf)

    def agent_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        self.intake.agent_event(event_type, body)

    def fault_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        self.intake.fault_event(event_type, body)

    def namespace_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        self.intake.namespace_event(event_type, body)

    def resync(self, agents: Sequence[Mapping[str, Any]], faults: Sequence[Mapping[str, Any]], *, listed_at: float) -> None:
        self.intake.resync(agents, faults, listed_at=listed_at)
        self.synced = True

    def restart_finished(self, key: Key, token: str, outcome: RestartOutcome) -> None:
        """A runtime's answer (from the RestartRunner, on the loop)."""
        rec = self.index.agents.get(key)
        if rec is not None:
            self.healing.finished(rec, token, outcome)

    # ------------------------------------------------------------------ the sidecars' port (http_api)

    def ingest(self, report: TelemetryReport) -> None:
        key = Key(report["agent"]["namespace"], report["agent"]["name"])
        if key not in self.index.agents:
            raise UnknownAgent(f"agent {key} does not exist (or is not watched by this operator)")
        wall = self.clock.wall()
        self.telemetry.add(key, report, received=self.clock.mono(), wall=wall)
        self.queue.mark("agent", key)
        for tap in self.report_taps:
            tap(key, report, wall.timestamp())

    def knows(self, key: Key) -> bool:
        return key in self.index.agents

    async def wait_assignments(self, key: Key, held: int | None, wait_s: float) -> tuple[int, tuple[FaultAssignment, ...], str | None]:
        """The agent's assignment set once its version differs from `held` (or after `wait_s`): version, faults, restart token."""
        version, faults = await self.board.wait(key, held, wait_s)
        return version, faults, self.board.restart_request(key)

    def now(self) -> datetime:
        return self.clock.wall()

    def waiting_polls(self) -> int:
        return self.board.waiters

    def identity(self, key: Key) -> AgentIdentity | None:
        rec = self.index.agents.get(key)
        if rec is None:
            return None
        google = rec.runtime.service_account if rec.runtime.type == "CloudRun" else None
        return AgentIdentity(rec.service_accounts, google)

    def sidecars_missing(self, found: Mapping[Key, Sequence[str]]) -> None:
        """The latest scan for bare pods (sidecar_scan): `found` maps each agent injection concerns to
        its pods without the sidecar; agents not in it are not concerned. An Event names new bare pods."""
        for key, rec in self.index.agents.items():
            pods = found.get(key)
            missing = tuple(sorted(pods)) if pods is not None else None
            if missing == rec.sidecar_missing:
                continue
            new = set(missing or ()) - set(rec.sidecar_missing or ())
            if new:
                self.writer.post_event(rec.ref, "Warning", "SidecarMissing",
                                       f"pod(s) without the AgentOps sidecar: {', '.join(sorted(new))} (created while the "
                                       "injection webhook was unavailable?); delete them to have them re-created with it")
            rec.sidecar_missing = missing
            self.queue.mark("agent", key)

    def refused(self, key: Key, caller: Caller, refusal: Refused) -> None:
        """A caller was refused for this Agent: say so on the Agent, at most once a minute per caller and reason."""
        rec = self.index.agents.get(key)
        if rec is not None and self.refusals.due(key, caller, refusal.reason):
            self.writer.post_event(rec.ref, "Warning", "CallerRefused", refusal.message)

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        while True:
            self.queue.wake.clear()
            started = time.perf_counter()
            self.process()
            self.metrics.reconcile_seconds.observe(time.perf_counter() - started)
            due = self.queue.next_due()
            timeout = MAX_IDLE_S if due is None else min(MAX_IDLE_S, max(0.0, due - self.clock.mono()))
            try:
                await asyncio.wait_for(self.queue.wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def process(self) -> None:
        """One pass over everything dirty or due. Synchronous and I/O-free."""
        mono, wall = self.clock.mono(), self.clock.wall()
        self.queue.release_due(mono)
        self.fault_pass.run(wall, mono)
        self.agent_pass.run(wall, mono)
        if self.queue.pending("fault"):
            # The agent pass asked faults to stop or cured them: decide them in this
            # pass, so that their sidecars hear of it without waiting a loop turn.
            self.fault_pass.run(wall, mono)
        if mono - self._gauges_at >= GAUGE_REFRESH_S:
            refresh_gauges(self.metrics, self.index, self.board, self.slots)
            self._gauges_at = mono
