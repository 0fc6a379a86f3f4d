"""What a ResilienceCheck runner sees on a tick and what it asks for: plain values.

The runner (check_runner.py) takes a `Seen` and returns `Action`s; the controller
(check_controller.py) builds the one from the operator's indexes and carries out the
others. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from agentops.api_types import AgentPhase, FaultPhase, Incident


@dataclass(frozen=True)
class AgentView:
    phase: AgentPhase
    stalled: bool
    restart_count: int
    incidents: tuple[Incident, ...] = ()
    other_faults: tuple[str, ...] = ()  # faults assigned to it that no check of ours created


@dataclass(frozen=True)
class FaultView:
    uid: str
    phase: FaultPhase | None
    started_at: str | None
    ended_at: str | None
    message: str = ""


@dataclass(frozen=True)
class Seen:
    """What the operator sees on one tick."""

    now: datetime
    agent: AgentView | None  # None: the Agent does not exist
    faults: Mapping[str, FaultView]  # this check's Faults by name
    halted: str | None = None  # why the namespace (or cluster) is halted
    held_by: str | None = None  # another check running on the same Agent
    run_request: str | None = None  # the agentops.dev/run-requested annotation


@dataclass(frozen=True)
class CreateFault:
    name: str
    body: dict[str, Any]


@dataclass(frozen=True)
class DeleteFault:
    name: str


@dataclass(frozen=True)
class PostEvent:
    type: str
    reason: str
    message: str


Action = CreateFault | DeleteFault | PostEvent
