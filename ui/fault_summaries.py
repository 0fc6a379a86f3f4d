"""Faults as the pages show them: the faults page, and an agent's faults on its page.

Both the HTML views and the JSON mirror (`/api/faults`, `/api/agents/...`) render these
records, so a script reading the API sees exactly what a person sees on the page. Pure:
the store and `now` go in, plain data comes out.

An agent's faults include those its status still lists after the Fault object is gone
(deleted): the operator's word is still worth showing.
"""

from __future__ import annotations

from typing import TypedDict

from agentops.api_types import LabelSelectorSpec
from agentops.errors import InvalidField
from agentops.label_selector import LabelSelector
from agentops_ui.store import Obj, Store, key_of
from agentops_ui.time_text import parse_time, seconds_until
from agentops_ui.typed_objects import (
    FAULT_ACTIVE, FAULT_PENDING, ConditionView, agent_status, conditions, fault_phase, fault_spec, fault_status,
    resolved_targets, spec_targets,
)


class FaultSummary(TypedDict):
    namespace: str
    name: str
    type: str
    phase: str
    target: str  # the agent's name, or the selector as kubectl would write it
    targetAgent: str | None
    targetSelector: LabelSelectorSpec | None
    targets: list[str]
    duration: str | None
    createdAt: str | None
    startedAt: str | None
    expiresAt: str | None
    endedAt: str | None
    secondsLeft: float | None  # only while Active
    message: str | None
    conditions: list[ConditionView]


def _selector_text(selector: LabelSelectorSpec | None) -> str:
    """As `kubectl get -l` takes it; "?" for a missing or unreadable selector."""
    try:
        return LabelSelector.from_spec(selector).text() or "?"
    except InvalidField:
        return "?"


def fault_summary(fault: Obj, now: float) -> FaultSummary:
    meta = fault.get("metadata") or {}
    spec, status = fault_spec(fault), fault_status(fault)
    target = spec.get("target", {})
    agent = target.get("agent")
    selector = target.get("selector") or None
    phase = fault_phase(fault)
    expires = status.get("expiresAt")
    key = key_of(fault)
    return FaultSummary(
        namespace=key[0],
        name=key[1],
        type=spec.get("type", "?"),
        phase=phase,
        target=agent or _selector_text(selector),
        targetAgent=agent,
        targetSelector=selector,
        targets=resolved_targets(fault),
        duration=spec.get("duration"),
        createdAt=meta.get("creationTimestamp"),  # set by the API server on create, RFC 3339
        startedAt=status.get("startedAt"),
        expiresAt=expires,
        endedAt=status.get("endedAt"),
        secondsLeft=seconds_until(expires, now) if phase == FAULT_ACTIVE else None,
        message=status.get("message") or None,
        conditions=conditions(status),
    )


def _fault_order(f: FaultSummary) -> tuple[int, float, str, str]:
    """Active first (soonest to end first), then Pending, then ended (most recent first)."""
    if f["phase"] == FAULT_ACTIVE:
        return 0, parse_time(f["expiresAt"]) or 0.0, f["namespace"], f["name"]
    if f["phase"] == FAULT_PENDING:
        return 1, -(parse_time(f["createdAt"]) or 0.0), f["namespace"], f["name"]
    return 2, -(parse_time(f["endedAt"]) or parse_time(f["createdAt"]) or 0.0), f["namespace"], f["name"]


def faults_list(store: Store, now: float) -> list[FaultSummary]:
    return sorted((fault_summary(f, now) for f in store.faults.values()), key=_fault_order)


def faults_of_agent(store: Store, agent: Obj, now: float) -> list[FaultSummary]:
    """Faults that target the agent now or did before: resolved to it, naming it, or selecting it."""
    ns, name = key_of(agent)
    found = [f for (fns, _), f in store.faults.items()
             if fns == ns and (name in resolved_targets(f) or spec_targets(f, agent))]
    summaries = [fault_summary(f, now) for f in found]
    # Listed by the operator but no longer in the store (deleted): still worth showing.
    known = {s["name"] for s in summaries}
    for entry in agent_status(agent).get("activeFaults", []):
        if entry["name"] not in known:
            expires = entry.get("expiresAt")
            summaries.append(FaultSummary(
                namespace=ns, name=entry["name"], type=entry.get("type", "?"), phase=FAULT_ACTIVE,
                target=name, targetAgent=name, targetSelector=None, targets=[name], duration=None, createdAt=None,
                startedAt=None, expiresAt=expires, endedAt=None, secondsLeft=seconds_until(expires, now),
                message="listed in the agent's status; the Fault object is not (or no longer) visible", conditions=[]))
    return sorted(summaries, key=_fault_order)
