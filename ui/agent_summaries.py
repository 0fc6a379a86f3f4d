"""Agents as the pages show them: the overview's cards, and one agent's page with its timeline.

Both the HTML views and the JSON mirror (`/api/agents`, `/api/agents/...`) render these
records, so a script reading the API sees exactly what a person sees on the page. Pure:
the store and `now` go in, plain data comes out.

Which faults count as an agent's *active* faults: the operator's own list
(`status.activeFaults`), plus Faults that are already Active on it but not yet in the
agent's status (the two objects are written one after the other), plus a Fault just
applied that the operator has not looked at yet (no phase) whose target names the
agent — shown as "pending", so that what a user just applied appears at once. A Fault
whose own phase is final is never listed as active, even while the agent's status
still lags behind.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TypedDict

from agentops.api_types import AgentModelMetrics, Incident, ModelProvider
from agentops_ui.event_summaries import EventSummary, event_summary, stage_of
from agentops_ui.fault_summaries import FaultSummary, faults_of_agent
from agentops_ui.store import AGENT, FAULT, Key, Obj, Store, event_order, event_time, involved_of, key_of
from agentops_ui.time_text import parse_time, seconds_since, seconds_until
from agentops_ui.typed_objects import (
    FAULT_ACTIVE, FAULT_FINAL, ConditionView, agent_phase, agent_spec, agent_status, conditions, fault_phase, fault_spec,
    fault_status, iso, resolved_targets, spec_targets, string_map,
)

# Written by `kubectl apply`: a copy of the whole object, noise on a page.
HIDDEN_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


class HistoryPoint(TypedDict):
    time: str
    latencyP95Ms: float


class ActiveFaultView(TypedDict):
    name: str
    type: str
    expiresAt: str | None
    secondsLeft: float | None
    state: str  # applied (the sidecar enforces it), assigned (on its way), pending (not yet seen by the operator)


class AgentSummary(TypedDict):
    namespace: str
    name: str
    phase: str
    labels: dict[str, str]
    annotations: dict[str, str]
    runtime: str | None
    latencyP50Ms: float | None
    latencyP95Ms: float | None
    errorRate: float | None
    requestRate: float | None
    requests: int | None
    restartCount: int
    lastReportTime: str | None
    secondsSinceReport: float | None
    reporters: int | None
    activeFaults: list[ActiveFaultView]
    conditions: list[ConditionView]
    latencyHistory: list[HistoryPoint]
    # The agent's model calls (status.model, as the operator wrote it); None until a
    # gateway reported one. modelProviders: what spec.models declares.
    model: AgentModelMetrics | None
    modelProviders: list[ModelProvider]


class TimelineEntry(TypedDict):
    time: str | None
    stage: str  # fault, detected, action, verified, escalated, event
    kind: str
    object: str
    type: str
    reason: str
    message: str


class AgentDetail(TypedDict):
    agent: AgentSummary
    incidents: list[Incident]
    timeline: list[TimelineEntry]
    events: list[EventSummary]
    faults: list[FaultSummary]
    latencyHistory: list[HistoryPoint]


def _float(value: float | None) -> float | None:
    """A JSON number as a float: the API server hands back 1200 for 1200.0, the pages show one form."""
    return float(value) if value is not None else None


class FaultIndex:
    """The store's Faults arranged for per-agent questions, built once per request (not once per agent)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.active_by_agent: dict[Key, list[Obj]] = defaultdict(list)
        self.unprocessed_by_namespace: dict[str, list[Obj]] = defaultdict(list)
        for (ns, _), fault in store.faults.items():
            phase = fault_status(fault).get("phase")
            if phase == FAULT_ACTIVE:
                for target in resolved_targets(fault):
                    self.active_by_agent[(ns, target)].append(fault)
            elif phase is None:
                self.unprocessed_by_namespace[ns].append(fault)

    def active_faults(self, agent: Obj, now: float) -> list[ActiveFaultView]:
        key = key_of(agent)
        ns = key[0]
        out: dict[str, ActiveFaultView] = {}
        for entry in agent_status(agent).get("activeFaults", []):
            # Only `name` is required by the CRD; the others may be absent.
            name = entry["name"]
            fault = self.store.faults.get((ns, name))
            if fault is not None and fault_phase(fault) in FAULT_FINAL:
                continue  # ended; the agent's status has not caught up yet
            expires: str | None = entry.get("expiresAt")
            type_ = entry.get("type") or (fault_spec(fault).get("type") if fault is not None else None) or "?"
            out[name] = ActiveFaultView(name=name, type=type_, expiresAt=expires, secondsLeft=seconds_until(expires, now),
                                        state="applied" if entry.get("applied") else "assigned")
        extra = [(f, "assigned") for f in self.active_by_agent.get(key, ())]
        extra += [(f, "pending") for f in self.unprocessed_by_namespace.get(ns, ()) if spec_targets(f, agent)]
        for fault, state in extra:
            name = key_of(fault)[1]
            if name in out:
                continue
            expires = fault_status(fault).get("expiresAt")
            out[name] = ActiveFaultView(name=name, type=fault_spec(fault).get("type", "?"), expiresAt=expires,
                                        secondsLeft=seconds_until(expires, now), state=state)
        return [out[name] for name in sorted(out)]


def agent_summary(store: Store, agent: Obj, now: float, faults: FaultIndex | None = None) -> AgentSummary:
    meta = agent.get("metadata") or {}
    status = agent_status(agent)
    metrics = status.get("metrics", {})
    telemetry = status.get("telemetry", {})
    key = key_of(agent)
    last_report = telemetry.get("lastReportTime")
    return AgentSummary(
        namespace=key[0],
        name=key[1],
        phase=agent_phase(agent),
        labels=string_map(meta.get("labels")),
        annotations={k: v for k, v in string_map(meta.get("annotations")).items() if k not in HIDDEN_ANNOTATIONS},
        runtime=agent_spec(agent).get("runtime", {}).get("type"),
        latencyP50Ms=_float(metrics.get("latencyP50Ms")),
        latencyP95Ms=_float(metrics.get("latencyP95Ms")),
        errorRate=_float(metrics.get("errorRate")),
        requestRate=_float(metrics.get("requestRate")),
        requests=metrics.get("requests"),
        restartCount=status.get("restartCount", 0),
        lastReportTime=last_report,
        secondsSinceReport=seconds_since(last_report, now),
        reporters=telemetry.get("reporters"),
        activeFaults=(faults or FaultIndex(store)).active_faults(agent, now),
        conditions=conditions(status),
        latencyHistory=[HistoryPoint(time=iso(s.time), latencyP95Ms=s.latency_p95_ms) for s in store.history(key)],
        model=status.get("model"),
        modelProviders=list(agent_spec(agent).get("models", {}).get("providers", [])),
    )


def agents_overview(store: Store, now: float) -> list[AgentSummary]:
    index = FaultIndex(store)
    return [agent_summary(store, store.agents[key], now, index) for key in sorted(store.agents)]


# ---------------------------------------------------------------- one agent's page: incidents and the timeline


def _incident_time(incident: Incident) -> float:
    """When an incident began: the earliest of its times (observed, detected, ended), 0 if it has none."""
    stamps = [t for v in (incident.get("observedAt"), incident.get("detectedAt"), incident.get("endedAt"))
              if (t := parse_time(v)) is not None]
    return min(stamps) if stamps else 0.0


def incidents(agent: Obj) -> list[Incident]:
    """`status.incidents` as the operator wrote them, oldest first."""
    return sorted((i.copy() for i in agent_status(agent).get("incidents", [])), key=_incident_time)


def agent_detail(store: Store, namespace: str, name: str, now: float) -> AgentDetail | None:
    agent = store.agents.get((namespace, name))
    if agent is None:
        return None
    faults = faults_of_agent(store, agent, now)
    raw_events = [(AGENT, e) for e in store.events_for(AGENT, namespace, name)]
    for f in faults:
        raw_events += [(FAULT, e) for e in store.events_for(FAULT, namespace, f["name"])]
    raw_events.sort(key=lambda pair: event_order(pair[1]))
    timeline = []
    open_incident = False
    for kind, event in raw_events:
        stamp = event_time(event)
        stage = stage_of(kind, str(event.get("reason") or ""))
        if stage in ("detected", "action"):
            open_incident = True
        elif stage in ("verified", "escalated"):
            # A first verdict (Unknown → Healthy) verifies nothing: only a recovery after
            # a detection closes an incident.
            stage, open_incident = (stage if open_incident else "event"), False
        timeline.append(TimelineEntry(
            time=iso(stamp) if stamp else None, stage=stage, kind=kind,
            object=involved_of(event)[2], type=str(event.get("type") or ""), reason=str(event.get("reason") or ""),
            message=str(event.get("message") or event.get("note") or "")))
    summary = agent_summary(store, agent, now)
    return AgentDetail(
        agent=summary,
        incidents=incidents(agent),
        timeline=timeline,
        # The agent's own Events and its faults' (FaultActivated, FaultExpired, ...), newest first.
        events=[event_summary(e, now) for _, e in reversed(raw_events)],
        faults=faults,
        latencyHistory=summary["latencyHistory"],
    )
