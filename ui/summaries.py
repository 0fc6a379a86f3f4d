"""What the pages show, as typed records: built once per request from the store.

Both the HTML views and the JSON mirror (`/api/...`) render these records, so a script
reading the API sees exactly what a person sees on the page. Pure: the store and `now`
go in, plain data comes out.

Which faults count as an agent's *active* faults: the operator's own list
(`status.activeFaults`), plus Faults that are already Active on it but not yet in the
agent's status (the two objects are written one after the other), plus a Fault just
applied that the operator has not looked at yet (no phase) whose target names the
agent — shown as "pending", so that what a user just applied appears at once. A Fault
whose own phase is final is never listed as active, even while the agent's status
still lags behind.

Status and spec are read through the types of `agentops.api_types`, the contract the
operator writes: `agent_status`, `agent_spec`, `fault_status` and `fault_spec` are the one
place where a stored object becomes typed. Metadata and Events are Kubernetes' own and
stay plain dicts.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, TypedDict, cast

from agentops.api_types import AgentSpecBody, AgentStatus, FaultSpecBody, FaultStatus, Incident, LabelSelectorSpec
from agentops.errors import InvalidField
from agentops.label_selector import LabelSelector
from agentops.times import format_timestamp
from agentops_ui.store import AGENT, FAULT, Key, Obj, Store, event_order, event_time, involved_of, key_of
from agentops_ui.time_text import parse_time, seconds_since, seconds_until

UNKNOWN = "Unknown"
AGENT_PHASES = ("Healthy", "Degraded", "Unhealthy", UNKNOWN)
FAULT_PENDING = "Pending"
FAULT_ACTIVE = "Active"
FAULT_FINAL = ("Expired", "Halted", "Aborted", "Failed")
# Written by `kubectl apply`: a copy of the whole object, noise on a page.
HIDDEN_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


class ConditionView(TypedDict):
    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str | None


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


def iso(stamp: float) -> str:
    return format_timestamp(stamp)


def _strings(value: Any) -> dict[str, str]:
    """Labels and annotations: metadata is Kubernetes', not ours, so read it as a plain map."""
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


# The boundary where a stored object becomes typed. The API server validated `spec` and
# `status` against the CRD schema (crds/), which tests/unit/test_api_types.py keeps equal
# to these TypedDicts, so a field is present or absent but never of another type: a cast,
# not a parse. An object the operator has not written yet has no status: {}.


def agent_status(agent: Obj) -> AgentStatus:
    return cast(AgentStatus, agent.get("status") or {})


def agent_spec(agent: Obj) -> AgentSpecBody:
    return cast(AgentSpecBody, agent.get("spec") or {})


def fault_status(fault: Obj) -> FaultStatus:
    return cast(FaultStatus, fault.get("status") or {})


def fault_spec(fault: Obj) -> FaultSpecBody:
    return cast(FaultSpecBody, fault.get("spec") or {})


def _float(value: float | None) -> float | None:
    """A JSON number as a float: the API server hands back 1200 for 1200.0, the pages show one form."""
    return float(value) if value is not None else None


def conditions(status: AgentStatus | FaultStatus) -> list[ConditionView]:
    return [ConditionView(type=c["type"], status=c["status"], reason=c["reason"], message=c["message"],
                          lastTransitionTime=c["lastTransitionTime"])
            for c in status.get("conditions", [])]


def agent_phase(agent: Obj) -> str:
    return agent_status(agent).get("phase", UNKNOWN)


def fault_phase(fault: Obj) -> str:
    # No phase yet: the operator has not processed the Fault, which is what Pending means.
    return fault_status(fault).get("phase", FAULT_PENDING)


def _targets_spec(fault: Obj, agent: Obj) -> bool:
    """Whether a Fault's spec names or selects an agent (same namespace)."""
    target = fault_spec(fault).get("target", {})
    if name := target.get("agent"):
        return name == key_of(agent)[1]
    try:
        selector = LabelSelector.from_spec(target.get("selector"))
    except InvalidField:
        return False  # no selector, or one the operator will refuse too: it targets nothing
    return selector.matches(_strings((agent.get("metadata") or {}).get("labels")))


def _selector_text(selector: LabelSelectorSpec | None) -> str:
    """As `kubectl get -l` takes it; "?" for a missing or unreadable selector."""
    try:
        return LabelSelector.from_spec(selector).text() or "?"
    except InvalidField:
        return "?"


def _resolved_targets(fault: Obj) -> list[str]:
    return list(fault_status(fault).get("targets", []))


# ---------------------------------------------------------------- agents


class FaultIndex:
    """The store's Faults arranged for per-agent questions, built once per request (not once per agent)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.active_by_agent: dict[Key, list[Obj]] = defaultdict(list)
        self.unprocessed_by_namespace: dict[str, list[Obj]] = defaultdict(list)
        for (ns, _), fault in store.faults.items():
            phase = fault_status(fault).get("phase")
            if phase == FAULT_ACTIVE:
                for target in _resolved_targets(fault):
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
        extra += [(f, "pending") for f in self.unprocessed_by_namespace.get(ns, ()) if _targets_spec(f, agent)]
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
        labels=_strings(meta.get("labels")),
        annotations={k: v for k, v in _strings(meta.get("annotations")).items() if k not in HIDDEN_ANNOTATIONS},
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
    )


def agents_overview(store: Store, now: float) -> list[AgentSummary]:
    index = FaultIndex(store)
    return [agent_summary(store, store.agents[key], now, index) for key in sorted(store.agents)]


# ---------------------------------------------------------------- faults


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
        targets=_resolved_targets(fault),
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
             if fns == ns and (name in _resolved_targets(f) or _targets_spec(f, agent))]
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


# ---------------------------------------------------------------- events and the timeline


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
