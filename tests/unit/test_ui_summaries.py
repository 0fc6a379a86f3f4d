"""What the pages and the JSON mirror show, from a store with no cluster behind it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from agentops.label_selector import LabelSelector
from agentops_ui.agent_summaries import agent_detail, agents_overview
from agentops_ui.event_summaries import events_list, stage_of
from agentops_ui.fault_summaries import faults_list
from agentops_ui.store import AGENT, EVENT, FAULT, Store

NOW = 1_700_000_000.0


def at(offset: float) -> str:
    """An RFC 3339 time `offset` seconds from NOW (negative: in the past)."""
    return datetime.fromtimestamp(NOW + offset, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def agent(name: str, *, labels: dict[str, str] | None = None, rv: str = "1", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, "labels": labels or {}},
            "spec": {"runtime": {"type": "None"}}, "status": status}


def fault(name: str, *, target: dict[str, Any], phase: str | None = None, rv: str = "1", **status: Any) -> dict[str, Any]:
    if phase:
        status["phase"] = phase
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, "creationTimestamp": at(-100)},
            "spec": {"target": target, "type": "Latency", "duration": "60s"}, "status": status}


def event(name: str, kind: str, about: str, reason: str, second: int, type_: str = "Normal") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": "1"},
            "involvedObject": {"kind": kind, "name": about, "namespace": "ns"},
            "type": type_, "reason": reason, "message": f"{reason} message", "count": 2, "lastTimestamp": at(second - 60)}


def store_with(*objects: tuple[str, dict[str, Any]]) -> Store:
    store = Store()
    for kind, obj in objects:
        store.apply(kind, "ADDED", obj, now=NOW)
    return store


def test_agent_summary_numbers_and_defaults() -> None:
    store = store_with((AGENT, agent(
        "a", phase="Degraded", restartCount=2,
        metrics={"latencyP95Ms": 1200, "latencyP50Ms": 80, "errorRate": 0.06, "requestRate": 3.5, "requests": 210},
        telemetry={"lastReportTime": at(-10), "reporters": 1})), (AGENT, agent("bare")))
    a, bare = agents_overview(store, NOW)
    assert (a["phase"], a["latencyP95Ms"], a["errorRate"], a["requestRate"], a["restartCount"]) == ("Degraded", 1200, 0.06, 3.5, 2)
    assert a["secondsSinceReport"] == 10.0 and a["requests"] == 210 and a["runtime"] == "None"
    assert [p["latencyP95Ms"] for p in a["latencyHistory"]] == [1200]
    assert (bare["phase"], bare["latencyP95Ms"], bare["restartCount"], bare["lastReportTime"]) == ("Unknown", None, 0, None)


def test_active_faults_follow_the_operator_and_the_faults_own_phase() -> None:
    store = store_with(
        (AGENT, agent("a", labels={"tier": "front"}, activeFaults=[
            {"name": "listed", "type": "Error", "expiresAt": at(50), "applied": True},
            {"name": "ended", "type": "Latency", "expiresAt": at(1), "applied": True}])),
        (FAULT, fault("listed", target={"agent": "a"}, phase="Active", targets=["a"], expiresAt=at(50))),
        (FAULT, fault("ended", target={"agent": "a"}, phase="Expired", targets=["a"])),
        (FAULT, fault("racing", target={"agent": "a"}, phase="Active", targets=["a"], expiresAt=at(40))),
        (FAULT, fault("just-applied", target={"agent": "a"})),
        (FAULT, fault("by-label", target={"selector": {"matchLabels": {"tier": "front"}}})),
        (FAULT, fault("other-label", target={"selector": {"matchLabels": {"tier": "back"}}})),
        (FAULT, fault("other-agent", target={"agent": "b"})),
    )
    (a,) = agents_overview(store, NOW)
    shown = {f["name"]: (f["type"], f["state"]) for f in a["activeFaults"]}
    assert shown == {"listed": ("Error", "applied"), "racing": ("Latency", "assigned"),
                     "just-applied": ("Latency", "pending"), "by-label": ("Latency", "pending")}
    assert next(f for f in a["activeFaults"] if f["name"] == "listed")["secondsLeft"] == 50.0


def test_faults_list_active_first_with_time_left_and_targets() -> None:
    store = store_with(
        (FAULT, fault("old", target={"agent": "a"}, phase="Expired", endedAt=at(5))),
        (FAULT, fault("later", target={"agent": "a"}, phase="Active", expiresAt=at(59), startedAt=at(0))),
        (FAULT, fault("sooner", target={"selector": {"matchLabels": {"t": "x"}, "matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a", "b"]}, {"key": "canary", "operator": "DoesNotExist"}]}},
            phase="Active", expiresAt=at(30), targets=["a", "b"])),
        (FAULT, fault("new", target={"agent": "a"})),
    )
    faults = faults_list(store, NOW)
    assert [f["name"] for f in faults] == ["sooner", "later", "new", "old"]
    assert [f["secondsLeft"] for f in faults] == [30.0, 59.0, None, None]
    assert faults[0]["target"] == "t=x,zone in (a,b),!canary" and faults[0]["targets"] == ["a", "b"]
    assert faults[2]["phase"] == "Pending"  # not processed yet


def test_label_selectors() -> None:
    """The UI uses the operator's one selector (agentops.label_selector), so both agree on every case."""
    labels = {"tier": "front", "zone": "a"}

    def matches(raw: dict[str, Any]) -> bool:
        return LabelSelector.from_spec(raw).matches(labels)

    assert matches({"matchLabels": {"tier": "front"}})
    assert not matches({"matchLabels": {"tier": "back"}})
    assert matches({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]})
    assert not matches({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]})
    assert matches({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]})
    assert not matches({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]})
    # Kubernetes semantics: an empty selector selects everything (the Fault CRD refuses one).
    assert matches({})
    assert LabelSelector.from_spec({"matchExpressions": [{"key": "k", "operator": "NotIn", "values": ["v"]}]}).text() == "k notin (v)"


def test_agent_detail_timeline_events_and_faults() -> None:
    store = store_with(
        (AGENT, agent("a", phase="Unhealthy", conditions=[
            {"type": "Ready", "status": "False", "reason": "ErrorRateHigh", "message": "m", "lastTransitionTime": at(3)}])),
        (FAULT, fault("f", target={"agent": "a"}, phase="Expired", targets=["a"])),
        (FAULT, fault("unrelated", target={"agent": "z"}, phase="Active", targets=["z"])),
        (EVENT, event("e1", "Fault", "f", "FaultActivated", 1)),
        (EVENT, event("e2", "Agent", "a", "AgentUnhealthy", 3, "Warning")),
        (EVENT, event("e3", "Agent", "a", "RestartRequested", 4)),
        (EVENT, event("e4", "Agent", "a", "AgentHealthy", 9)),
        (EVENT, event("e5", "Fault", "unrelated", "FaultActivated", 2)),
    )
    detail = agent_detail(store, "ns", "a", NOW)
    assert detail is not None
    assert [(e["stage"], e["reason"]) for e in detail["timeline"]] == [
        ("fault", "FaultActivated"), ("detected", "AgentUnhealthy"), ("action", "RestartRequested"), ("verified", "AgentHealthy")]
    assert [e["name"] for e in detail["events"]] == ["e4", "e3", "e2", "e1"]  # newest first, the fault's included
    assert detail["events"][0]["count"] == 2 and detail["events"][-1]["involvedKind"] == "Fault"
    assert [f["name"] for f in detail["faults"]] == ["f"]
    assert detail["agent"]["conditions"][0]["reason"] == "ErrorRateHigh"
    assert detail["incidents"] == []
    assert agent_detail(store, "ns", "nobody", NOW) is None
    assert len(events_list(store, NOW)) == 5


def test_a_first_healthy_verdict_verifies_nothing() -> None:
    store = store_with(
        (AGENT, agent("a")),
        (EVENT, event("e1", "Agent", "a", "AgentHealthy", 1)),
        (EVENT, event("e2", "Agent", "a", "AgentDegraded", 2, "Warning")),
        # Same second as e2: the resourceVersion keeps the operator's order.
        (EVENT, {**event("e3", "Agent", "a", "AgentHealthy", 2),
                 "metadata": {"name": "a-e3", "namespace": "ns", "resourceVersion": "7"}}),
        (EVENT, {**event("e4", "Agent", "a", "AgentUnhealthy", 2, "Warning"),
                 "metadata": {"name": "z-e4", "namespace": "ns", "resourceVersion": "9"}}),
    )
    detail = agent_detail(store, "ns", "a", NOW)
    assert detail is not None
    assert [(e["stage"], e["reason"]) for e in detail["timeline"]] == [
        ("event", "AgentHealthy"), ("detected", "AgentDegraded"), ("verified", "AgentHealthy"), ("detected", "AgentUnhealthy")]


def test_incidents_are_passed_through_in_time_order() -> None:
    store = store_with((AGENT, agent("a", incidents=[
        {"type": "Restart", "detectedAt": at(20), "outcome": "Verified"},
        {"type": "Restart", "detectedAt": at(5), "verifiedAt": at(9), "extra": {"n": 1}},
    ])))
    detail = agent_detail(store, "ns", "a", NOW)
    assert detail is not None
    assert [i["detectedAt"] for i in detail["incidents"]] == [at(5), at(20)]
    assert detail["incidents"][0]["extra"] == {"n": 1}  # type: ignore[typeddict-item]  # a key outside Incident, passed through as stored: what this test checks


def test_a_fault_listed_by_the_agent_but_gone_from_the_store_still_shows() -> None:
    store = store_with((AGENT, agent("a", activeFaults=[{"name": "deleted", "type": "Crash", "expiresAt": at(30)}])))
    detail = agent_detail(store, "ns", "a", NOW)
    assert detail is not None
    assert [(f["name"], f["phase"], f["type"]) for f in detail["faults"]] == [("deleted", "Active", "Crash")]


def test_stages_by_reason() -> None:
    assert stage_of(FAULT, "Anything") == "fault"
    assert stage_of(AGENT, "AgentDegraded") == "detected"
    assert stage_of(AGENT, "RestartFailed") == "action"
    assert stage_of(AGENT, "HealingEscalated") == "escalated"
    assert stage_of(AGENT, "Stalled") == "escalated"
    assert stage_of(AGENT, "RecoveryVerified") == "verified"
    # The healing loop's own reasons.
    assert stage_of(AGENT, "RestartStarted") == "action"
    assert stage_of(AGENT, "RestartNotVerified") == "action"
    assert stage_of(AGENT, "AgentHealed") == "verified"
    assert stage_of(AGENT, "SomethingNew") == "event"
