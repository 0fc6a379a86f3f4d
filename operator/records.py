"""What the reconcile loop keeps per object, and the clock and mirror it is given.

Plain records: the loop owns and mutates them; nothing here does I/O. A record holds
the last status written (or observed) so that a restarted operator rebuilds from the
resources themselves, plus soft state (`outcome`, `cured`, `stop`) that the next
decision consumes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Protocol

from agentops.api_types import AgentStatus, FaultStatus, Incident
from agentops.errors import AgentOpsError
from agentops_operator import fault_lifecycle, healing_state
from agentops_operator.resources import FaultSpec, HealingPolicy, HealthThresholds, ObjectRef, RuntimeSpec
from agentops_operator.runtimes import RestartOutcome


class UnknownAgent(AgentOpsError):
    pass


class StatusSink(Protocol):
    """Where the loop's writes go (status_writer.StatusWriter): queued, coalesced, never awaited."""

    def write_status(self, ref: ObjectRef, status: AgentStatus | FaultStatus) -> None: ...
    def post_event(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None: ...
    def forget(self, plural: str, key: Any) -> None: ...


class Mirror(Protocol):
    """The optional Firestore mirror (firestore_mirror.FirestoreMirror): non-blocking puts."""

    def put_agent(self, namespace: str, name: str, doc: Mapping[str, Any]) -> None: ...
    def put_incident(self, namespace: str, name: str, incident_id: str, doc: Mapping[str, Any]) -> None: ...
    def remove_agent(self, namespace: str, name: str) -> None: ...


@dataclass
class Clock:
    """Wall and monotonic time, injectable so that tests need no sleeps."""

    wall: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    mono: Callable[[], float] = field(default=time.monotonic)


@dataclass
class AgentRecord:
    ref: ObjectRef
    generation: int
    labels: dict[str, str]
    thresholds: HealthThresholds
    status: AgentStatus  # the last status written by us, else the one observed
    restart: str | None = None  # RESTART_ANNOTATION's value
    recover: str | None = None  # RECOVER_ANNOTATION's value
    last_write: float = float("-inf")  # monotonic
    seen: float = 0.0  # monotonic time of the last watch event or list that included it
    policy: HealingPolicy = field(default_factory=HealingPolicy)
    runtime: RuntimeSpec = field(default_factory=RuntimeSpec)
    # spec.identity.serviceAccounts: who (besides the namespace check) may speak for it; empty: any.
    service_accounts: frozenset[str] = frozenset()
    # Pods that should carry the injected sidecar and do not (sidecar_scan); None: injection
    # does not concern this agent (no opted-in namespace or pod), so no SidecarMissing condition.
    sidecar_missing: tuple[str, ...] | None = None
    healing: healing_state.HealingState = field(default_factory=healing_state.HealingState)
    incidents: list[Incident] = field(default_factory=list)
    outcome: RestartOutcome | None = None  # the runtime's answer to the restart in flight
    restart_count: int = 0  # status.restartCount: every restart begun, automatic or asked for
    spec_changed: bool = False


@dataclass
class FaultRecord:
    ref: ObjectRef
    generation: int
    created: datetime
    spec: FaultSpec | None
    spec_error: str | None
    status: FaultStatus
    assigned_to: tuple[str, ...] = ()  # agent names whose sidecars must enforce it now
    seen: float = 0.0
    # Requests of other parts, consumed by the next decision (fault_pass):
    stop: fault_lifecycle.EarlyStop | None = None  # end it early (recover, stop condition)
    # Agents restarted since this (Crash) fault struck them: a crash is cured by a
    # restart, so it is no longer assigned to them — even to a brand-new pod's sidecar.
    cured: set[str] = field(default_factory=set)
