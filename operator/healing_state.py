"""The healing loop's persisted state: status.healing, its state names, and the conditions it shows.

`HealingState` is status.healing as the healing loop reads and writes it (the wire shape
is `agentops.api_types.HealingRecord`). What the loop must remember lives there, not in
the operator's memory: the ledger of automatic restart times in the budget window, so a
restarted operator cannot forget it; the token of the restart in flight, so a late answer
to an earlier restart is recognised as moot; and the annotation values already handled,
so a manual request runs once per value.

The state names are those of the machine drawn in `healing_policy`, which decides the
transitions. Restarting and Verifying hold one of the cluster-wide restart slots
(`HOLDS_SLOT`); Stalled means escalated: no automatic restart until the agent is Healthy
again, its spec changes, or a human asks.

Pure: status in, status out, and the kstatus conditions that follow from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agentops.times import format_time, parse_time
from agentops.api_types import HealingActionType, HealingRecord, HealingStateName, RestartRequestKind

from agentops_operator.conditions import ConditionSpec

IDLE: HealingStateName = "Idle"
WAITING: HealingStateName = "Waiting"
BACKOFF: HealingStateName = "Backoff"
QUEUED: HealingStateName = "Queued"
RESTARTING: HealingStateName = "Restarting"
VERIFYING: HealingStateName = "Verifying"
STALLED: HealingStateName = "Stalled"
DISABLED: HealingStateName = "Disabled"
OBSERVE_ONLY: HealingStateName = "ObserveOnly"
# States that hold one of the cluster-wide restart slots.
HOLDS_SLOT = frozenset({RESTARTING, VERIFYING})
MANUAL_RECOVER: RestartRequestKind = "ManualRecover"
MANUAL_RESTART: RestartRequestKind = "ManualRestart"


@dataclass(frozen=True)
class HealingState:
    """status.healing, as the healing loop reads and writes it."""

    state: HealingStateName = IDLE
    message: str = ""
    unhealthy_since: datetime | None = None
    restarts: tuple[datetime, ...] = ()  # automatic restarts in the budget window, oldest first
    next_restart: datetime | None = None
    verify_deadline: datetime | None = None
    instances_before: tuple[str, ...] = ()
    restart_token: str | None = None
    handled_restart: str | None = None
    handled_recover: str | None = None
    pending_request: RestartRequestKind | None = None  # a manual request waiting for a slot
    incident_seq: int = 0
    stalled_reason: str | None = None
    action: HealingActionType | None = None  # the runtime call in flight, when it is not a plain restart

    @classmethod
    def from_status(cls, raw: HealingRecord | None) -> HealingState:
        raw = raw or HealingRecord()
        return cls(
            state=raw.get("state") or IDLE,
            message=str(raw.get("message") or ""),
            unhealthy_since=parse_time(raw.get("unhealthySince")),
            restarts=tuple(t for t in (parse_time(s) for s in raw.get("restarts") or ()) if t is not None),
            next_restart=parse_time(raw.get("nextRestartTime")),
            verify_deadline=parse_time(raw.get("verifyDeadline")),
            instances_before=tuple(raw.get("instancesBefore") or ()),
            restart_token=raw.get("restartToken"),
            handled_restart=raw.get("handledRestart"),
            handled_recover=raw.get("handledRecover"),
            pending_request=raw.get("pendingRequest"),
            incident_seq=int(raw.get("incidentSeq") or 0),
            stalled_reason=raw.get("stalledReason"),
            action=raw.get("action"),
        )

    def to_status(self) -> HealingRecord:
        out = HealingRecord(state=self.state, message=self.message, restarts=[format_time(t) for t in self.restarts],
                            incidentSeq=self.incident_seq)
        optional = {
            "unhealthySince": format_time(self.unhealthy_since) if self.unhealthy_since else None,
            "nextRestartTime": format_time(self.next_restart) if self.next_restart else None,
            "verifyDeadline": format_time(self.verify_deadline) if self.verify_deadline else None,
            "instancesBefore": list(self.instances_before)[:50] if self.instances_before else None,
            "restartToken": self.restart_token,
            "handledRestart": self.handled_restart,
            "handledRecover": self.handled_recover,
            "pendingRequest": self.pending_request,
            "stalledReason": self.stalled_reason,
            "action": self.action,
        }
        out.update({k: v for k, v in optional.items() if v is not None})  # type: ignore[typeddict-item]  # keys of HealingRecord
        return out


def conditions(state: HealingState) -> list[ConditionSpec]:
    """kstatus conditions: Reconciling while a restart is under way, Stalled when escalated."""
    busy = state.state in (QUEUED, BACKOFF, RESTARTING, VERIFYING)
    reconciling = ConditionSpec("Reconciling", "True" if busy else "False", state.state if busy else "Idle",
                                state.message if busy else "no restart in progress")
    if state.state == STALLED:
        stalled = ConditionSpec("Stalled", "True", state.stalled_reason or "HealingEscalated", state.message)
    else:
        stalled = ConditionSpec("Stalled", "False", "HealingAvailable", "automatic healing is not escalated")
    return [reconciling, stalled]
