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
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from typing import Any, TypedDict

from agentops.errors import InvalidField
from agentops.label_selector import LabelSelector
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
    targetSelector: dict[str, Any] | None
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
    incidents: list[dict[str, Any]]
    timeline: list[TimelineEntry]
    events: list[EventSummary]
    faults: list[FaultSummary]
    latencyHistory: list[HistoryPoint]


def iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _dict(value: Any) -> dict[str, Any]:
    """A JSON object, or {} for anything else: one malformed field must not break a page."""
    return value if isinstance(value, dict) else {}


def _status(obj: Obj) -> dict[str, Any]:
    return _dict(obj.get("status"))


def _spec(obj: Obj) -> dict[str, Any]:
    return _dict(obj.get("spec"))


def conditions(obj: Obj) -> list[ConditionView]:
    out: list[ConditionView] = []
    for c in _status(obj).get("conditions") or ():
        if isinstance(c, dict):
            out.append(ConditionView(type=str(c.get("type", "")), status=str(c.get("status", "")),
                                     reason=str(c.get("reason") or ""), message=str(c.get("message") or ""),
                                     lastTransitionTime=_text(c.get("lastTransitionTime"))))
    return out


def agent_phase(obj: Obj) -> str:
    return _text(_status(obj).get("phase")) or UNKNOWN


def fault_phase(obj: Obj) -> str:
    # No phase yet: the operator has not processed the Fault, which is what Pending means.
    return _text(_status(obj).get("phase")) or FAULT_PENDING


def _targets_spec(fault: Obj, agent: Obj) -> bool:
    """Whether a Fault's spec names or selects an agent (same namespace)."""
    target = _spec(fault).get("target") or {}
    if not isinstance(target, dict):
        return False
    if target.get("agent"):
        return bool(target["agent"] == key_of(agent)[1])
    try:
        selector = LabelSelector.from_spec(target.get("selector"))
    except InvalidField:
        return False  # no selector, or one the operator will refuse too: it targets nothing
    return selector.matches(_strings((agent.get("metadata") or {}).get("labels")))


def _selector_text(selector: dict[str, Any] | None) -> str:
    """As `kubectl get -l` takes it; "?" for a missing or unreadable selector."""
    try:
        return LabelSelector.from_spec(selector).text() or "?"
    except InvalidField:
        return "?"


def _resolved_targets(fault: Obj) -> list[str]:
    return [str(t) for t in _status(fault).get("targets") or () if isinstance(t, str)]


# ---------------------------------------------------------------- agents


class FaultIndex:
    """The store's Faults arranged for per-agent questions, built once per request (not once per agent)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.active_by_agent: dict[Key, list[Obj]] = defaultdict(list)
        self.unprocessed_by_namespace: dict[str, list[Obj]] = defaultdict(list)
        for (ns, _), fault in store.faults.items():
            phase = _text(_status(fault).get("phase"))
            if phase == FAULT_ACTIVE:
                for target in _resolved_targets(fault):
                    self.active_by_agent[(ns, target)].append(fault)
            elif phase is None:
                self.unprocessed_by_namespace[ns].append(fault)

    def active_faults(self, agent: Obj, now: float) -> list[ActiveFaultView]:
        key = key_of(agent)
        ns = key[0]
        out: dict[str, ActiveFaultView] = {}
        for entry in _status(agent).get("activeFaults") or ():
            if not isinstance(entry, dict) or not entry.get("name"):
                continue
            name = str(entry["name"])
            fault = self.store.faults.get((ns, name))
            if fault is not None and fault_phase(fault) in FAULT_FINAL:
                continue  # ended; the agent's status has not caught up yet
            expires = _text(entry.get("expiresAt"))
            out[name] = ActiveFaultView(name=name, type=str(entry.get("type") or _spec(fault or {}).get("type") or "?"),
                                        expiresAt=expires, secondsLeft=seconds_until(expires, now),
                                        state="applied" if entry.get("applied") else "assigned")
        extra = [(f, "assigned") for f in self.active_by_agent.get(key, ())]
        extra += [(f, "pending") for f in self.unprocessed_by_namespace.get(ns, ()) if _targets_spec(f, agent)]
        for fault, state in extra:
            name = key_of(fault)[1]
            if name in out:
                continue
            expires = _text(_status(fault).get("expiresAt"))
            out[name] = ActiveFaultView(name=name, type=str(_spec(fault).get("type") or "?"), expiresAt=expires,
                                        secondsLeft=seconds_until(expires, now), state=state)
        return [out[name] for name in sorted(out)]


def agent_summary(store: Store, agent: Obj, now: float, faults: FaultIndex | None = None) -> AgentSummary:
    meta = agent.get("metadata") or {}
    status = _status(agent)
    metrics = _dict(status.get("metrics"))
    telemetry = _dict(status.get("telemetry"))
    runtime = _spec(agent).get("runtime")
    key = key_of(agent)
    last_report = _text(telemetry.get("lastReportTime"))
    requests = _number(metrics.get("requests"))
    reporters = _number(telemetry.get("reporters"))
    return AgentSummary(
        namespace=key[0],
        name=key[1],
        phase=agent_phase(agent),
        labels=_strings(meta.get("labels")),
        annotations={k: v for k, v in _strings(meta.get("annotations")).items() if k not in HIDDEN_ANNOTATIONS},
        runtime=_text(runtime.get("type")) if isinstance(runtime, dict) else None,
        latencyP50Ms=_number(metrics.get("latencyP50Ms")),
        latencyP95Ms=_number(metrics.get("latencyP95Ms")),
        errorRate=_number(metrics.get("errorRate")),
        requestRate=_number(metrics.get("requestRate")),
        requests=int(requests) if requests is not None else None,
        restartCount=int(_number(status.get("restartCount")) or 0),
        lastReportTime=last_report,
        secondsSinceReport=seconds_since(last_report, now),
        reporters=int(reporters) if reporters is not None else None,
        activeFaults=(faults or FaultIndex(store)).active_faults(agent, now),
        conditions=conditions(agent),
        latencyHistory=[HistoryPoint(time=iso(s.time), latencyP95Ms=s.latency_p95_ms) for s in store.history(key)],
    )


def agents_overview(store: Store, now: float) -> list[AgentSummary]:
    index = FaultIndex(store)
    return [agent_summary(store, store.agents[key], now, index) for key in sorted(store.agents)]


# ---------------------------------------------------------------- faults


def fault_summary(fault: Obj, now: float) -> FaultSummary:
    meta = fault.get("metadata") or {}
    spec, status = _spec(fault), _status(fault)
    target = _dict(spec.get("target"))
    agent = _text(target.get("agent"))
    selector = _dict(target.get("selector")) or None
    phase = fault_phase(fault)
    expires = _text(status.get("expiresAt"))
    key = key_of(fault)
    return FaultSummary(
        namespace=key[0],
        name=key[1],
        type=str(spec.get("type") or "?"),
        phase=phase,
        target=agent or _selector_text(selector),
        targetAgent=agent,
        targetSelector=selector,
        targets=_resolved_targets(fault),
        duration=_text(spec.get("duration")),
        createdAt=_text(meta.get("creationTimestamp")),
        startedAt=_text(status.get("startedAt")),
        expiresAt=expires,
        endedAt=_text(status.get("endedAt")),
        secondsLeft=seconds_until(expires, now) if phase == FAULT_ACTIVE else None,
        message=_text(status.get("message")),
        conditions=conditions(fault),
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
    for entry in _status(agent).get("activeFaults") or ():
        if isinstance(entry, dict) and entry.get("name") and entry["name"] not in known:
            expires = _text(entry.get("expiresAt"))
            summaries.append(FaultSummary(
                namespace=ns, name=str(entry["name"]), type=str(entry.get("type") or "?"), phase=FAULT_ACTIVE,
                target=name, targetAgent=name, targetSelector=None, targets=[name], duration=None, createdAt=None,
                startedAt=None, expiresAt=expires, endedAt=None, secondsLeft=seconds_until(expires, now),
                message="listed in the agent's status; the Fault object is not (or no longer) visible", conditions=[]))
    return sorted(summaries, key=_fault_order)


# ---------------------------------------------------------------- events and the timeline


def event_summary(event: Obj, now: float) -> EventSummary:
    meta = event.get("metadata") or {}
    kind, ns, name = involved_of(event)
    stamp = event_time(event)
    series = _dict(event.get("series"))
    count = _number(series.get("count")) or _number(event.get("count")) or 1
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


def _incident_time(entry: dict[str, Any]) -> float:
    stamps = [t for v in entry.values() if (t := parse_time(v)) is not None]
    return min(stamps) if stamps else 0.0


def incidents(agent: Obj) -> list[dict[str, Any]]:
    """`status.incidents` as written (any fields), oldest first."""
    raw = _status(agent).get("incidents")
    entries = [dict(e) for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []
    return sorted(entries, key=_incident_time)


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
