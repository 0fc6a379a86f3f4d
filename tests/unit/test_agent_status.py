"""agentops_operator.agent_status: the wanted Agent status and when it is worth a write."""

from __future__ import annotations

import copy

from agentops.api_types import AgentStatus
from agentops_operator.agent_status import ActiveFault, desired_status, metrics_moved, needs_write, signature
from agentops_operator.conditions import find
from agentops_operator.health import Assessment

T0, T1 = "2024-05-01T10:00:00Z", "2024-05-01T10:01:00Z"
HEALTHY = Assessment("Healthy", "WithinThresholds", "all health signals within thresholds", "True", "ReportsArriving",
                     {"requests": 100, "errorRate": 0.0})
DEGRADED = Assessment("Degraded", "ErrorRateElevated", "error rate 6.0% ≥ 5.0%", "True", "ReportsArriving", {"requests": 100, "errorRate": 0.06})
STALE = Assessment("Unknown", "TelemetryStale", "no telemetry for 31s (heartbeatTimeout 30s)", "False", "TelemetryStale")
NONE = Assessment("Unknown", "NoTelemetry", "no telemetry received from a sidecar yet", "Unknown", "NoTelemetry")
F1 = ActiveFault("slow", "u1", "Latency", "2024-05-01T10:05:00Z", applied=False)


def want(previous: AgentStatus | None = None, *, assessment: Assessment = HEALTHY, faults: list[ActiveFault] | None = None,
         generation: int = 1, last: str | None = T0, reporters: int = 1, instances: tuple[str, ...] = ("pod-1",),
         now: str = T0) -> AgentStatus:
    return desired_status(previous or {}, generation=generation, assessment=assessment, faults=faults or [],
                          last_report_time=last, reporters=reporters, instances=instances, now=now)


def test_healthy_status() -> None:
    s = want()
    assert s["phase"] == "Healthy"
    assert s["observedGeneration"] == 1
    assert s["metrics"] == {"requests": 100, "errorRate": 0.0}
    assert s["activeFaults"] == [] and s["activeFaultCount"] == 0
    assert s["restartCount"] == 0
    assert s["telemetry"] == {"lastReportTime": T0, "reporters": 1, "instances": ["pod-1"]}
    assert [(c["type"], c["status"], c["reason"]) for c in s["conditions"]] == [
        ("Ready", "True", "Healthy"),
        ("TelemetryFresh", "True", "ReportsArriving"),
        ("FaultActive", "False", "NoActiveFaults"),
    ]
    assert find(s["conditions"], "TelemetryFresh")["message"] == "1 sidecar(s) reporting"  # type: ignore[index]  # find() is Optional: a missing condition fails the test with a TypeError
    assert all(c["lastTransitionTime"] == T0 and c["observedGeneration"] == 1 for c in s["conditions"])


def test_ready_condition_per_phase() -> None:
    d = want(assessment=DEGRADED)
    assert (d["phase"], find(d["conditions"], "Ready")["status"], find(d["conditions"], "Ready")["reason"]) == ("Degraded", "False", "ErrorRateElevated")  # type: ignore[index]  # find() is Optional: a missing condition fails the test with a TypeError
    u = want(assessment=STALE)
    ready, fresh = find(u["conditions"], "Ready"), find(u["conditions"], "TelemetryFresh")
    assert (ready["status"], ready["reason"]) == ("Unknown", "TelemetryStale")  # type: ignore[index]  # find() is Optional: a missing condition fails the test with a TypeError
    assert (fresh["status"], fresh["reason"], fresh["message"]) == ("False", "TelemetryStale", STALE.message)  # type: ignore[index]  # find() is Optional: a missing condition fails the test with a TypeError
    n = want(assessment=NONE, last=None)
    fresh = find(n["conditions"], "TelemetryFresh")
    assert (fresh["status"], fresh["reason"], fresh["message"]) == ("Unknown", "NoTelemetry", NONE.message)  # type: ignore[index]  # find() is Optional: a missing condition fails the test with a TypeError
    assert "telemetry" not in n
    assert n["metrics"] == {}


def test_telemetry_block_kept_when_no_new_report_time() -> None:
    prev = want()
    s = want(prev, assessment=STALE, last=None)
    assert s["telemetry"] == prev["telemetry"]


def test_instances_capped_at_50() -> None:
    s = want(instances=tuple(f"pod-{i:03}" for i in range(80)), reporters=80)
    assert len(s["telemetry"]["instances"]) == 50


def test_fault_condition() -> None:
    s = want(faults=[F1, ActiveFault("boom", "u2", "Error", "2024-05-01T10:06:00Z", applied=True)])
    c = find(s["conditions"], "FaultActive")
    assert (c["status"], c["reason"]) == ("True", "FaultsAssigned")  # type: ignore[index]  # find() is Optional: a missing condition fails the test with a TypeError
    assert c["message"] == "slow (Latency), boom (Error); not yet confirmed by the sidecar"  # type: ignore[index]  # find() is Optional: a missing condition fails the test with a TypeError
    assert s["activeFaults"] == [
        {"name": "slow", "type": "Latency", "expiresAt": "2024-05-01T10:05:00Z", "applied": False},
        {"name": "boom", "type": "Error", "expiresAt": "2024-05-01T10:06:00Z", "applied": True},
    ]
    assert s["activeFaultCount"] == 2
    s = want(faults=[ActiveFault("slow", "u1", "Latency", "x", applied=True)])
    c = find(s["conditions"], "FaultActive")
    assert (c["reason"], c["message"]) == ("FaultsApplied", "slow (Latency)")  # type: ignore[index]  # find() is Optional: a missing condition fails the test with a TypeError


def test_previous_restart_count_and_foreign_conditions_kept() -> None:
    prev: AgentStatus = {"restartCount": 3, "conditions": [{"type": "Remediated", "status": "True", "reason": "Restarted", "message": "", "lastTransitionTime": T0}]}
    s = want(prev)
    assert s["restartCount"] == 3
    assert [c["type"] for c in s["conditions"]] == ["Remediated", "Ready", "TelemetryFresh", "FaultActive"]


def test_transition_times_stable_across_recomputations() -> None:
    first = want(now=T0)
    second = want(first, now=T1, assessment=Assessment("Healthy", "WithinThresholds", "other message", "True", "ReportsArriving", {"requests": 5}))
    assert [c["lastTransitionTime"] for c in second["conditions"]] == [T0, T0, T0]
    third = want(second, now=T1, assessment=DEGRADED)
    assert find(third["conditions"], "Ready")["lastTransitionTime"] == T1  # type: ignore[index]  # find() is Optional: a missing condition fails the test with a TypeError
    assert find(third["conditions"], "TelemetryFresh")["lastTransitionTime"] == T0  # type: ignore[index]  # find() is Optional: a missing condition fails the test with a TypeError


def test_previous_not_mutated() -> None:
    prev = want()
    snapshot = copy.deepcopy(prev)
    want(prev, assessment=DEGRADED, faults=[F1], now=T1)
    assert prev == snapshot


# ---------------------------------------------------------------- needs_write


def _nw(prev: AgentStatus, new: AgentStatus, since: float) -> bool:
    return needs_write(prev, new, since_last_write=since, heartbeat=60.0)


def test_meaningful_changes_write_at_once() -> None:
    base = want()
    changes: dict[str, AgentStatus] = {
        "phase": want(base, assessment=DEGRADED),
        "generation": want(base, generation=2),
        "faults": want(base, faults=[F1]),
        "telemetry condition": want(base, assessment=Assessment("Healthy", "WithinThresholds", "m", "Unknown", "Whatever", HEALTHY.metrics)),
        "restartCount": {**base, "restartCount": 1},
    }
    for name, new in changes.items():
        assert signature(new) != signature(base), name
        assert _nw(base, new, since=0.0), name


def test_fault_applied_flip_is_meaningful() -> None:
    assigned = want(faults=[F1])
    applied = want(assigned, faults=[ActiveFault("slow", "u1", "Latency", F1.expires_at, applied=True)])
    assert _nw(assigned, applied, since=0.0)


def test_first_write_from_empty_status() -> None:
    assert _nw({}, want(assessment=NONE, last=None), since=float("inf"))
    assert _nw({}, want(assessment=NONE, last=None), since=0.0)


def test_metrics_only_changes_wait_for_heartbeat() -> None:
    base = want()
    moved = want(base, assessment=Assessment("Healthy", "WithinThresholds", "a different message", "True", "ReportsArriving",
                                             {"requests": 250, "errorRate": 0.01}), last=T1, reporters=2, instances=("pod-1", "pod-2"), now=T1)
    assert signature(moved) == signature(base)
    assert not _nw(base, moved, since=0.0)
    assert not _nw(base, moved, since=59.99)
    assert _nw(base, moved, since=60.0)
    assert _nw(base, moved, since=600.0)


def test_model_metrics_ride_along_and_wait_for_heartbeat() -> None:
    base = want()
    assert "model" not in base  # no model call in the window: no status.model
    model_only = Assessment("Healthy", "WithinThresholds", "all health signals within thresholds", "True", "ReportsArriving",
                            {"requests": 100, "errorRate": 0.0}, {"calls": 12, "errorRate": 0.0, "tokensPerMinute": 900.0})
    moved = want(base, assessment=model_only)
    assert moved["model"] == {"calls": 12, "errorRate": 0.0, "tokensPerMinute": 900.0}
    assert metrics_moved(base, moved) and signature(moved) == signature(base)
    assert not _nw(base, moved, since=10.0)
    assert _nw(base, moved, since=60.0)


def test_only_telemetry_block_changed_waits_for_heartbeat() -> None:
    base = want()
    moved = want(base, last=T1)
    assert moved["metrics"] == base["metrics"]
    assert not _nw(base, moved, since=10.0)
    assert _nw(base, moved, since=61.0)


def test_nothing_changed_never_writes() -> None:
    base = want()
    same = want(base, now=T1)  # a later computation of the same state
    assert same == base
    assert not _nw(base, same, since=0.0)
    assert not _nw(base, same, since=10_000.0)

