"""Events as the pages show them, and where each one sits in an incident.

Both the HTML views and the JSON mirror (`/api/events`, and the agent page's events and
timeline) render these records, so a script reading the API sees exactly what a person
sees on the page. Pure: the store and `now` go in, plain data comes out. Events are
Kubernetes' own objects and are read as plain dicts.
"""

from __future__ import annotations

from typing import TypedDict

from agentops_ui.store import FAULT, Obj, Store, event_time, involved_of
from agentops_ui.typed_objects import iso


class EventSummary(TypedDict):
    namespace: str
    name: str
    involvedKind: str
    involvedName: str
    type: str
    reason: str
    message: str
    count: int
    lastTime: str | None
    secondsAgo: float | None


def event_summary(event: Obj, now: float) -> EventSummary:
    meta = event.get("metadata") or {}
    kind, ns, name = involved_of(event)
    stamp = event_time(event)
    series = event.get("series") or {}
    count = series.get("count") or event.get("count") or 1
    return EventSummary(
        namespace=ns, name=str(meta.get("name") or ""), involvedKind=kind, involvedName=name,
        type=str(event.get("type") or ""), reason=str(event.get("reason") or ""),
        message=str(event.get("message") or event.get("note") or ""), count=int(count),
        lastTime=iso(stamp) if stamp else None, secondsAgo=max(0.0, now - stamp) if stamp else None,
    )


def events_list(store: Store, now: float) -> list[EventSummary]:
    """Every Event held, newest first."""
    return [event_summary(e, now) for e in reversed(store.all_events())]


def stage_of(kind: str, reason: str) -> str:
    """Where an Event sits in an incident: fault → detected → action → verified / escalated.

    By reason, as the operator names them (AgentUnhealthy, FaultActivated, ...); reasons
    added later fall through to "event" and still appear in the timeline.
    """
    if kind == FAULT:
        return "fault"
    if reason in ("AgentDegraded", "AgentUnhealthy") or reason.endswith("Detected"):
        return "detected"
    if "Escalat" in reason or "Stalled" in reason or "GaveUp" in reason:
        return "escalated"
    if reason in ("AgentHealthy", "AgentHealed", "Recovered") or reason.endswith("Verified") and "Not" not in reason:
        return "verified"
    if "Restart" in reason or "Rollout" in reason or reason.startswith("Heal"):
        return "action"
    return "event"
