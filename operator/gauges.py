"""Gauges that count objects by phase and state: O(objects), so refreshed on a timer, not per change."""

from __future__ import annotations

from collections import Counter

from agentops_operator.assignments import AssignmentBoard
from agentops_operator.metrics import OperatorMetrics
from agentops_operator.object_index import ObjectIndex
from agentops_operator.restart_slots import RestartSlots


def refresh_gauges(metrics: OperatorMetrics, index: ObjectIndex, board: AssignmentBoard, slots: RestartSlots) -> None:
    # A status without a phase has not been written by us yet: Unknown for an agent,
    # Pending for a fault (what the UI and `kubectl get` show for them too).
    agents = Counter(rec.status.get("phase") or "Unknown" for rec in index.agents.values())
    faults = Counter(rec.status.get("phase") or "Pending" for rec in index.faults.values())
    states = Counter(rec.healing.state for rec in index.agents.values())
    for gauge, label, counts in ((metrics.agents, "phase", agents), (metrics.faults, "phase", faults),
                                 (metrics.healing_states, "state", states)):
        gauge.clear()
        for value, n in counts.items():
            gauge.labels(**{label: value}).set(n)
    metrics.assignment_waiters.set(board.waiters)
    metrics.restart_slots_in_use.set(len(slots))
