"""What one healing step takes in and gives out, and the draft it builds on the way.

`Observation` is the agent as the health assessment sees it now. `HealingDecision` is the
step's answer: the new state and incidents, and what the caller must do about them (a
`Restart` to start, faults to halt, Events to post, when to look again, what to count in
the metrics). `DecisionDraft` is that decision while `healing_policy.step` builds it:
mutable scratch that leaves only frozen, so a caller never holds a half-made decision.

Pure records: no I/O, and no clock of their own (a draft carries the `now` it was given).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from agentops.times import format_time
from agentops.api_types import HealingActionType, Incident, IncidentState, IncidentTrigger

from agentops_operator import incidents as inc
from agentops_operator.fault_lifecycle import EventSpec
from agentops_operator.healing_state import HealingState


@dataclass(frozen=True)
class Observation:
    """What the agent looks like now, from the health assessment."""

    phase: str
    reason: str
    message: str
    instances: tuple[str, ...]
    faults: tuple[str, ...]
    not_healthy_since: datetime | None  # when Ready last left True (the first bad signal)
    # Whether the window holds minSamples requests, i.e. latency and errors were judged
    # and not only the probes: a restarted instance with a handful of requests has not
    # shown yet that it serves well.
    judged: bool = True


@dataclass(frozen=True)
class Restart:
    token: str
    trigger: str  # Unhealthy | ManualRecover | ManualRestart | TokenBurn
    action: HealingActionType = "Restart"  # or ScaleToZero: stop a runaway agent's spend


@dataclass(frozen=True)
class HealingDecision:
    state: HealingState
    incidents: list[Incident]
    restart: Restart | None = None
    halt_faults: bool = False  # a manual recover: end every active fault on the agent
    events: tuple[EventSpec, ...] = ()
    next_check: datetime | None = None
    escalated: str | None = None  # the reason, for the escalation metric
    restart_result: str | None = None  # Verified / NotVerified / a failure reason, for the metric
    incident_ended: str | None = None  # its end state, for the incident metric


@dataclass
class DecisionDraft:
    """The decision being built (mutable scratch, returned frozen)."""

    state: HealingState
    incidents: list[Incident]
    now: datetime
    events: list[EventSpec] = field(default_factory=list)
    restart: Restart | None = None
    halt_faults: bool = False
    next_check: datetime | None = None
    escalated: str | None = None
    restart_result: str | None = None
    incident_ended: str | None = None

    @property
    def stamp(self) -> str:
        return format_time(self.now)

    def set(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(EventSpec(type_, reason, message))

    def check_at(self, moment: datetime) -> None:
        self.next_check = moment if self.next_check is None else min(self.next_check, moment)

    def end_incident(self, state: IncidentState, message: str | None = None) -> None:
        if inc.current(self.incidents) is not None:
            self.incidents = inc.end(self.incidents, state=state, at=self.stamp, message=message)
            self.incident_ended = state

    def open_incident(self, trigger: IncidentTrigger, reason: str, message: str, obs: Observation) -> None:
        seq = self.state.incident_seq + 1
        self.set(incident_seq=seq)
        observed = obs.not_healthy_since or self.now
        self.incidents, _ = inc.open_incident(
            self.incidents, seq=seq, trigger=trigger, reason=reason, message=message, faults=list(obs.faults),
            observed_at=format_time(min(observed, self.now)), detected_at=self.stamp,
        )

    def freeze(self) -> HealingDecision:
        return HealingDecision(self.state, self.incidents, self.restart, self.halt_faults, tuple(self.events),
                               self.next_check, self.escalated, self.restart_result, self.incident_ended)
