"""A Fault's life: pure decisions from its spec, its status, its targets and the time.

    Pending ──target appears──▶ Active ──expiresAt──▶ Expired
       │
       └──no target within `duration` of creation──▶ Failed

* The clock starts when the fault becomes Active: `expiresAt = startedAt + duration`.
* A Pending fault waits for its target (GitOps tools apply Agents and Faults in any
  order) but not forever: a forgotten fault must not strike an agent created weeks
  later, so Pending is bounded by the same duration and then ends as Failed.
* A fault whose `expiresAt` passed while the operator was down is expired on the
  first decision after the restart, never re-activated.
* Halted and Aborted end a fault early on request of other parts (`EarlyStop`: the
  halt switch, a manual recover, a tripped stop condition); a Pending fault meeting a
  halt is refused (Halted before it ever ran). Every ended phase is final.

The decision says what the status should be, which Events to post and when to look
again; the caller performs the I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agentops.api_types import Condition, FaultPhase, FaultStatus
from agentops.times import format_time, parse_time
from agentops_operator.conditions import ConditionSpec, merge_conditions
from agentops_operator.resources import FaultSpec

PENDING: FaultPhase = "Pending"
ACTIVE: FaultPhase = "Active"
EXPIRED: FaultPhase = "Expired"
HALTED: FaultPhase = "Halted"
ABORTED: FaultPhase = "Aborted"
FAILED: FaultPhase = "Failed"
ENDED: frozenset[FaultPhase] = frozenset({EXPIRED, HALTED, ABORTED, FAILED})

PENDING_GRACE_S = 2.0
# `kubectl get faults` shows at most this many target names before "+N".
_SUMMARY_NAMES = 3


@dataclass(frozen=True)
class EventSpec:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class FaultDecision:
    status: FaultStatus
    events: tuple[EventSpec, ...] = ()
    next_check: datetime | None = None  # when the decision may change with time alone
    assign: bool = False  # whether it is assigned to its targets now (their sidecars enforce it)


@dataclass(frozen=True)
class EarlyStop:
    """A request to end the fault now: Halted (halt switch, recover) or Aborted (a guard)."""

    phase: FaultPhase  # HALTED | ABORTED
    reason: str  # CamelCase, e.g. NamespaceHalted, ClusterHalted, ManualRecover, StopConditionTripped
    message: str


@dataclass(frozen=True)
class FaultView:
    """The parts of a Fault object a decision depends on."""

    name: str
    generation: int
    created: datetime
    spec: FaultSpec
    status: FaultStatus = field(default_factory=lambda: FaultStatus())
    # Agents a restart cured of this (Crash) fault: recorded in status.curedTargets so
    # that an operator restart does not strike them again.
    cured: frozenset[str] = frozenset()


def target_summary(targets: list[str]) -> str:
    if not targets:
        return "<none>"
    shown = ",".join(targets[:_SUMMARY_NAMES])
    return shown if len(targets) <= _SUMMARY_NAMES else f"{shown},+{len(targets) - _SUMMARY_NAMES}"


def _describe_target(spec: FaultSpec) -> str:
    if spec.target_agent is not None:
        return f"agent {spec.target_agent!r}"
    assert spec.target_selector is not None
    return f"agents matching {spec.target_selector.describe()}"


def _whole_second_floor(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def decide(fault: FaultView, targets: list[str], now: datetime, stop: EarlyStop | None = None) -> FaultDecision:
    """The status the fault should have at `now`, given the agents it resolves to."""
    status = FaultStatus(**fault.status)
    phase: FaultPhase = status.get("phase") or PENDING
    events: list[EventSpec] = []
    stamp = format_time(now)
    targets = sorted(targets)

    if phase in ENDED:
        # Final: nothing changes any more, but a spec edit is still acknowledged, or
        # kstatus and Argo CD would read the Fault as in progress for ever.
        if status.get("observedGeneration") not in (None, fault.generation):
            status["observedGeneration"] = fault.generation
            status["conditions"] = [Condition(**{**c, "observedGeneration": fault.generation}) for c in status.get("conditions") or ()]
        return FaultDecision(status=status)
    if fault.cured and sorted(fault.cured) != status.get("curedTargets"):
        status["curedTargets"] = sorted(fault.cured)
    if stop is not None:
        return _stop_early(fault, status, phase, stop, stamp)

    if phase == ACTIVE:
        expires = parse_time(status.get("expiresAt"))
        if expires is None:  # an Active status without expiry is not ours; restart the clock safely
            phase = PENDING
        elif now >= expires:
            late = (now - expires).total_seconds()
            note = f" (operator resumed {late:.0f}s after expiry)" if late >= 2 else ""
            status.update(FaultStatus(phase=EXPIRED, endedAt=stamp, message=f"expired at {format_time(expires)}{note}"))
            events.append(EventSpec("Normal", "FaultExpired", f"{fault.spec.type} fault ended after {fault.spec.duration_s:g}s{note}"))
            wanted = [
                ConditionSpec("Active", "False", "Expired", "the fault's duration has elapsed"),
                ConditionSpec("Ready", "True", "Expired", "the fault ran for its whole duration and ended"),
            ]
            _conclude(status, wanted, fault.generation, stamp)
            return FaultDecision(status=status, events=tuple(events))
        else:
            resolved = bool(targets)
            if targets != status.get("targets"):
                status["targets"] = targets
                status["targetSummary"] = target_summary(targets)
                status["message"] = f"{fault.spec.type} fault active on {target_summary(targets)}"
            wanted = [
                ConditionSpec("TargetsResolved", "True" if resolved else "False",
                              "TargetsFound" if resolved else "TargetNotFound",
                              f"assigned to {len(targets)} agent(s)" if resolved else f"no {_describe_target(fault.spec)} exists now"),
                ConditionSpec("Active", "True", "Injecting", f"until {format_time(expires)}"),
                ConditionSpec("Ready", "True" if resolved else "False",
                              "Active" if resolved else "TargetNotFound",
                              "the fault is assigned to its targets" if resolved else "the fault is active but has no target"),
            ]
            old_reason = _reason(status, "TargetsResolved")
            if old_reason == "TargetsFound" and not resolved:
                events.append(EventSpec("Warning", "TargetLost", f"no {_describe_target(fault.spec)} exists any more"))
            _conclude(status, wanted, fault.generation, stamp)
            return FaultDecision(status=status, events=tuple(events), next_check=expires, assign=resolved)

    # Pending: give up after `duration` (checked first: a fault the operator finds
    # long after its give-up time must not start then), else start once a target exists.
    # creationTimestamp has whole-second precision and the first decision may lag a
    # moment; the grace keeps a 1 s fault from giving up before it was ever looked at.
    give_up = fault.created + timedelta(seconds=fault.spec.duration_s + PENDING_GRACE_S)
    if now >= give_up:
        status.update(FaultStatus(phase=FAILED, endedAt=stamp, targets=[], targetSummary=target_summary([]),
                      message=f"no {_describe_target(fault.spec)} appeared within the fault's duration"))
        wanted = [
            ConditionSpec("TargetsResolved", "False", "TargetNotFound", f"no {_describe_target(fault.spec)} exists"),
            ConditionSpec("Active", "False", "NeverStarted", "no target appeared within the fault's duration"),
            ConditionSpec("Ready", "False", "TargetNotFound", "the fault ended without ever running"),
        ]
        events.append(EventSpec("Warning", "FaultFailed", f"no {_describe_target(fault.spec)} appeared within {fault.spec.duration_s:g}s; the fault will not run"))
        _conclude(status, wanted, fault.generation, stamp)
        return FaultDecision(status=status, events=tuple(events))

    if targets:
        started = _whole_second_floor(now)
        expires = started + timedelta(seconds=math.ceil(fault.spec.duration_s))
        status.update(FaultStatus(
            phase=ACTIVE,
            startedAt=format_time(started),
            expiresAt=format_time(expires),
            targets=targets,
            targetSummary=target_summary(targets),
            message=f"{fault.spec.type} fault active on {target_summary(targets)}",
        ))
        status.pop("endedAt", None)
        wanted = [
            ConditionSpec("TargetsResolved", "True", "TargetsFound", f"assigned to {len(targets)} agent(s)"),
            ConditionSpec("Active", "True", "Injecting", f"until {format_time(expires)}"),
            ConditionSpec("Ready", "True", "Active", "the fault is assigned to its targets"),
        ]
        events.append(EventSpec("Normal", "FaultActivated", f"{fault.spec.type} fault active on {', '.join(targets)} until {format_time(expires)}"))
        _conclude(status, wanted, fault.generation, stamp)
        return FaultDecision(status=status, events=tuple(events), next_check=expires, assign=True)

    if _reason(status, "TargetsResolved") != "TargetNotFound":
        events.append(EventSpec("Warning", "TargetNotFound", f"waiting for {_describe_target(fault.spec)} until {format_time(give_up)}"))
    status.update(FaultStatus(phase=PENDING, targets=[], targetSummary=target_summary([]),
                  message=f"waiting for {_describe_target(fault.spec)} until {format_time(give_up)}"))
    wanted = [
        ConditionSpec("TargetsResolved", "False", "TargetNotFound", f"no {_describe_target(fault.spec)} exists yet"),
        ConditionSpec("Active", "False", "WaitingForTarget", f"starts when {_describe_target(fault.spec)} appears, at the latest by {format_time(give_up)}"),
        ConditionSpec("Ready", "False", "TargetNotFound", "the fault is waiting for its target"),
    ]
    _conclude(status, wanted, fault.generation, stamp)
    return FaultDecision(status=status, events=tuple(events), next_check=give_up)


def _stop_early(fault: FaultView, status: FaultStatus, phase: FaultPhase, stop: EarlyStop, stamp: str) -> FaultDecision:
    refused = phase == PENDING
    status.update(FaultStatus(phase=stop.phase, endedAt=stamp, message=stop.message))
    if refused:
        status.update(FaultStatus(targets=[], targetSummary=target_summary([])))
        event = EventSpec("Warning", "FaultRefused", f"{fault.spec.type} fault refused: {stop.message}")
    else:
        verb = "halted" if stop.phase == HALTED else "aborted"
        event = EventSpec("Warning", "FaultHalted" if stop.phase == HALTED else "FaultAborted", f"{fault.spec.type} fault {verb}: {stop.message}")
    wanted = [
        ConditionSpec("Active", "False", stop.reason, stop.message),
        ConditionSpec("Ready", "False", stop.reason, ("refused, never ran: " if refused else "ended early: ") + stop.message),
    ]
    _conclude(status, wanted, fault.generation, stamp)
    return FaultDecision(status=status, events=(event,))


def _kstatus(phase: FaultPhase, wanted: list[ConditionSpec]) -> list[ConditionSpec]:
    """kstatus' pair (what Flux reads): Reconciling while waiting for a target, Stalled
    when the fault failed (it will never run without a new Fault)."""
    ready = next((c for c in wanted if c.type == "Ready"), None)
    reason = ready.reason if ready is not None else phase
    return [
        ConditionSpec("Reconciling", "True", "WaitingForTarget", "the fault waits for its target")
        if phase == PENDING else ConditionSpec("Reconciling", "False", phase, f"the fault is {phase}"),
        ConditionSpec("Stalled", "True", reason, ready.message if ready is not None else "the fault failed")
        if phase == FAILED else ConditionSpec("Stalled", "False", phase, f"the fault is {phase}"),
    ]


def _conclude(status: FaultStatus, wanted: list[ConditionSpec], generation: int, stamp: str) -> None:
    """Every decision ends the same way: its conditions merged, the generation observed."""
    wanted = wanted + _kstatus(status.get("phase") or PENDING, wanted)
    status["conditions"] = merge_conditions(status.get("conditions"), wanted, generation=generation, now=stamp)
    status["observedGeneration"] = generation


def _reason(status: FaultStatus, type_: str) -> str | None:
    for c in status.get("conditions") or ():
        if c.get("type") == type_:
            return str(c.get("reason"))
    return None


def invalid_spec(previous: FaultStatus, generation: int, error: str, now: datetime) -> FaultDecision:
    """A spec the operator cannot read (the CRD schema should prevent it): never enforced.

    An Active fault whose spec turns unreadable stops at once rather than running on
    parameters nobody can see.
    """
    status = FaultStatus(**previous)
    stamp = format_time(now)
    events: tuple[EventSpec, ...] = ()
    if status.get("phase") not in ENDED:
        events = (EventSpec("Warning", "InvalidSpec", error),)
        status.update(FaultStatus(phase=FAILED, endedAt=stamp, message=f"invalid spec: {error}"))
    wanted = [
        ConditionSpec("Active", "False", "InvalidSpec", error),
        ConditionSpec("Ready", "False", "InvalidSpec", error),
    ]
    _conclude(status, wanted, generation, stamp)
    return FaultDecision(status=status, events=events)
