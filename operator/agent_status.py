"""The Agent status the operator wants, and whether writing it is worth an API call.

Writes are expensive at scale (10,000 agents reporting every few seconds would be
thousands of writes per second), so a new status is written only when

* something meaningful changed: phase, a condition's status or reason, the observed
  generation, the set of active faults or whether they are applied, the restart
  count, the healing record or the incidents; or
* the heartbeat interval has passed since the last write and the metrics moved.

Metrics and messages ride along with those writes but never cause one on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentops.api_types import ActiveFaultStatus, AgentStatus, AgentTelemetry, FaultType, HealingRecord, Incident

from agentops_operator.conditions import ConditionSpec, essence, merge_conditions
from agentops_operator.health import HEALTHY, UNKNOWN, Assessment


@dataclass(frozen=True)
class ActiveFault:
    name: str
    uid: str
    type: FaultType
    expires_at: str
    applied: bool


def desired_status(
    previous: AgentStatus,
    *,
    generation: int,
    assessment: Assessment,
    faults: list[ActiveFault],
    last_report_time: str | None,
    reporters: int,
    instances: tuple[str, ...],
    now: str,
    healing: HealingRecord | None = None,
    incidents: list[Incident] | None = None,
    extra_conditions: list[ConditionSpec] | None = None,
    restart_count: int | None = None,
) -> AgentStatus:
    if assessment.phase == HEALTHY:
        ready = ConditionSpec("Ready", "True", "Healthy", assessment.message)
    elif assessment.phase == UNKNOWN:
        ready = ConditionSpec("Ready", "Unknown", assessment.reason, assessment.message)
    else:
        ready = ConditionSpec("Ready", "False", assessment.reason, assessment.message)
    telemetry = ConditionSpec(
        "TelemetryFresh",
        assessment.telemetry_fresh,
        assessment.telemetry_reason,
        {"True": f"{reporters} sidecar(s) reporting", "False": assessment.message}.get(assessment.telemetry_fresh, assessment.message),
    )
    if faults:
        applied = all(f.applied for f in faults)
        fault_condition = ConditionSpec(
            "FaultActive",
            "True",
            "FaultsApplied" if applied else "FaultsAssigned",
            ", ".join(f"{f.name} ({f.type})" for f in faults)
            + ("" if applied else "; not yet confirmed by the sidecar"),
        )
    else:
        fault_condition = ConditionSpec("FaultActive", "False", "NoActiveFaults", "no fault targets this agent")

    status = AgentStatus(
        phase=assessment.phase,
        observedGeneration=generation,
        conditions=merge_conditions(previous.get("conditions"), [ready, telemetry, fault_condition, *(extra_conditions or ())],
                                    generation=generation, now=now),
        metrics=assessment.metrics,
        activeFaults=[ActiveFaultStatus(name=f.name, type=f.type, expiresAt=f.expires_at, applied=f.applied) for f in faults],
        activeFaultCount=len(faults),
        restartCount=int(previous.get("restartCount", 0)) if restart_count is None else restart_count,
    )
    if assessment.model is not None:
        status["model"] = assessment.model
    if healing is not None:
        status["healing"] = healing
    if incidents is not None:
        status["incidents"] = incidents
    if last_report_time is not None:
        status["telemetry"] = AgentTelemetry(lastReportTime=last_report_time, reporters=reporters, instances=list(instances)[:50])
    elif "telemetry" in previous:
        status["telemetry"] = previous["telemetry"]
    return status


def sidecar_conditions(missing: tuple[str, ...] | None) -> list[ConditionSpec]:
    """SidecarMissing, for an agent whose pods should have the injected sidecar (None: injection does not concern it)."""
    if missing is None:
        return []
    if not missing:
        return [ConditionSpec("SidecarMissing", "False", "SidecarsInjected", "every pod of the agent runs the AgentOps sidecar")]
    shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
    return [ConditionSpec("SidecarMissing", "True", "PodsWithoutSidecar",
                          f"{len(missing)} pod(s) run without the AgentOps sidecar (created while the injection webhook was "
                          f"unavailable, or injection failed): {shown}; delete them to have them re-created with it")]


def signature(status: AgentStatus) -> tuple[Any, ...]:
    """What a change must touch to be worth a write on its own."""
    return (
        status.get("phase"),
        status.get("observedGeneration"),
        essence(status.get("conditions")),
        tuple((f.get("name"), f.get("applied")) for f in status.get("activeFaults") or ()),
        status.get("restartCount"),
        status.get("healing"),
        status.get("incidents"),
    )


def needs_write(previous: AgentStatus, wanted: AgentStatus, *, since_last_write: float, heartbeat: float) -> bool:
    if signature(previous) != signature(wanted):
        return True
    if since_last_write < heartbeat:
        return False
    return metrics_moved(previous, wanted) or previous.get("telemetry") != wanted.get("telemetry")


def metrics_moved(previous: AgentStatus, wanted: AgentStatus) -> bool:
    """Whether the measured numbers changed: worth a write at the next heartbeat, not before."""
    return previous.get("metrics") != wanted.get("metrics") or previous.get("model") != wanted.get("model")
