"""The UI store: what the watches deliver, bounded history and Events, change reports."""

from __future__ import annotations

from typing import Any

from agentops_ui.store import AGENT, EVENT, FAULT, SOURCE, Change, Store


def agent(name: str, rv: str = "1", p95: float | None = None, ns: str = "ns", **status: Any) -> dict[str, Any]:
    if p95 is not None:
        status["metrics"] = {"latencyP95Ms": p95}
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv}, "status": status}


def event(name: str, about: str, at: str, kind: str = "Agent", rv: str = "1", ns: str = "ns") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv},
            "involvedObject": {"kind": kind, "name": about, "namespace": ns},
            "reason": "R", "message": name, "lastTimestamp": at}


def recording_store(**kwargs: Any) -> tuple[Store, list[Change]]:
    changes: list[Change] = []
    return Store(on_change=changes.append, **kwargs), changes


def test_watch_events_add_modify_and_delete() -> None:
    store, changes = recording_store()
    store.apply(AGENT, "ADDED", agent("a"), now=1)
    store.apply(AGENT, "MODIFIED", agent("a", rv="2", phase="Healthy"), now=2)
    assert store.agents[("ns", "a")]["status"]["phase"] == "Healthy"
    store.apply(AGENT, "DELETED", agent("a", rv="3"), now=3)
    assert store.agents == {}
    assert [(c.kind, c.name, c.type) for c in changes] == [(AGENT, "a", "ADDED"), (AGENT, "a", "MODIFIED"), (AGENT, "a", "DELETED")]


def test_the_same_resource_version_again_is_no_change() -> None:
    store, changes = recording_store()
    store.apply(FAULT, "ADDED", agent("f"), now=1)
    assert store.apply(FAULT, "MODIFIED", agent("f"), now=2) is None
    assert len(changes) == 1
    assert store.apply(FAULT, "DELETED", agent("never-seen"), now=3) is None


def test_a_relist_replaces_one_scope_and_reports_only_differences() -> None:
    store, changes = recording_store()
    store.apply(AGENT, "ADDED", agent("kept"), now=1)
    store.apply(AGENT, "ADDED", agent("gone"), now=1)
    store.apply(AGENT, "ADDED", agent("other-ns", ns="other"), now=1)
    changes.clear()
    result = store.replace(AGENT, "ns", [agent("kept"), agent("new")], now=2)
    assert sorted(store.agents) == [("ns", "kept"), ("ns", "new"), ("other", "other-ns")]
    assert {(c.name, c.type) for c in result} == {("gone", "DELETED"), ("new", "ADDED")}
    assert result == changes
    # All namespaces (None) replaces everything of the kind.
    store.replace(AGENT, None, [agent("kept")], now=3)
    assert list(store.agents) == [("ns", "kept")]


def test_latency_history_one_sample_per_status_update_and_bounded() -> None:
    store = Store(history_size=3)
    store.apply(AGENT, "ADDED", agent("a", p95=10), now=1)
    store.apply(AGENT, "MODIFIED", {**agent("a", rv="2", p95=10), "metadata": {"name": "a", "namespace": "ns", "resourceVersion": "2", "labels": {"x": "y"}}}, now=2)
    assert [(s.time, s.latency_p95_ms) for s in store.history(("ns", "a"))] == [(1, 10)]  # a label is not a measurement
    for i, p95 in enumerate([20, 30, 40, 50], start=3):
        store.apply(AGENT, "MODIFIED", agent("a", rv=str(i), p95=p95), now=i)
    assert [s.latency_p95_ms for s in store.history(("ns", "a"))] == [30, 40, 50]
    store.apply(AGENT, "MODIFIED", agent("a", rv="9", phase="Unknown"), now=9)  # no metrics: no sample
    assert len(store.history(("ns", "a"))) == 3
    store.apply(AGENT, "DELETED", agent("a"), now=10)
    assert store.history(("ns", "a")) == []


def test_events_are_kept_per_object_bounded_oldest_dropped() -> None:
    store = Store(events_per_object=2)
    store.apply(EVENT, "ADDED", event("e2", "a", "2024-01-01T00:00:02Z"), now=1)
    store.apply(EVENT, "ADDED", event("e1", "a", "2024-01-01T00:00:01Z"), now=1)
    store.apply(EVENT, "ADDED", event("e3", "a", "2024-01-01T00:00:03Z"), now=1)
    store.apply(EVENT, "ADDED", event("f1", "f", "2024-01-01T00:00:00Z", kind="Fault"), now=1)
    assert [e["metadata"]["name"] for e in store.events_for(AGENT, "ns", "a")] == ["e2", "e3"]
    assert [e["metadata"]["name"] for e in store.events_for(FAULT, "ns", "f")] == ["f1"]
    assert [e["metadata"]["name"] for e in store.all_events()] == ["f1", "e2", "e3"]
    store.apply(EVENT, "DELETED", event("e2", "a", "2024-01-01T00:00:02Z"), now=2)  # expired on the server
    assert [e["metadata"]["name"] for e in store.events_for(AGENT, "ns", "a")] == ["e3"]


def test_events_about_other_kinds_are_ignored() -> None:
    store, changes = recording_store()
    assert store.apply(EVENT, "ADDED", event("p", "pod-1", "2024-01-01T00:00:00Z", kind="Pod"), now=1) is None
    assert store.all_events() == [] and changes == []


def test_sources_report_sync_and_failures_once_each() -> None:
    store, changes = recording_store()
    store.expect_source(AGENT, "ns", now=0)
    store.expect_source(FAULT, "ns", now=0)
    assert not store.synced
    store.source_synced(AGENT, "ns", now=1)
    store.source_synced(FAULT, "ns", now=1)
    assert store.synced
    store.source_failed(FAULT, "ns", "403 forbidden", now=5)
    store.source_failed(FAULT, "ns", "403 forbidden", now=6)
    assert store.sources[(FAULT, "ns")].since == 5 and store.synced  # still showing the last known state
    store.source_synced(FAULT, "ns", now=7)
    assert store.sources[(FAULT, "ns")].error is None
    assert [(c.kind, c.name, c.type) for c in changes] == [
        (SOURCE, AGENT, "SYNCED"), (SOURCE, FAULT, "SYNCED"), (SOURCE, FAULT, "FAILED"), (SOURCE, FAULT, "SYNCED")]
