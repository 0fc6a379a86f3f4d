"""Which pods should carry the injected sidecar and do not (sidecar_scan.missing_sidecars), without I/O."""

from __future__ import annotations

from typing import Any

from agentops_operator.injection import SIDECAR_NAME
from agentops_operator.resources import Key
from agentops_operator.sidecar_scan import missing_sidecars, opted_in

ON = {"agentops.dev/inject": "enabled"}
LABELS = {"demo": {**ON, "kubernetes.io/metadata.name": "demo"}, "plain": {"kubernetes.io/metadata.name": "plain"}}
CHAT, SUMMARY, OTHER = Key("demo", "chat"), Key("demo", "summary"), Key("plain", "chat")


def pod(name: str, namespace: str = "demo", *, agent: str = "chat", sidecar: bool = False, labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None, phase: str = "Running", deleting: bool = False) -> dict[str, Any]:
    """A pod of Deployment `agent` as listed: named, owned by its ReplicaSet."""
    metadata: dict[str, Any] = {
        "name": name, "namespace": namespace, "labels": {"pod-template-hash": "5f6d", **(labels or {})},
        "annotations": annotations or {},
        "ownerReferences": [{"kind": "ReplicaSet", "name": f"{agent}-5f6d", "controller": True}],
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    init = [{"name": SIDECAR_NAME, "restartPolicy": "Always"}] if sidecar else []
    return {"metadata": metadata, "spec": {"initContainers": init, "containers": [{"name": "agent"}]}, "status": {"phase": phase}}


def test_bare_pods_of_a_labelled_namespace_are_listed_under_their_agent() -> None:
    pods = [pod("chat-b", sidecar=False), pod("chat-a", sidecar=False), pod("chat-c", sidecar=True)]
    assert missing_sidecars(pods, LABELS, [CHAT]) == {CHAT: ["chat-a", "chat-b"]}


def test_every_agent_of_a_labelled_namespace_is_concerned_even_without_pods() -> None:
    """[] clears SidecarMissing; an agent of an unlabelled namespace is not concerned at all."""
    assert missing_sidecars([pod("chat-a", sidecar=True)], LABELS, [CHAT, SUMMARY, OTHER]) == {CHAT: [], SUMMARY: []}


def test_a_pod_label_opts_in_outside_a_labelled_namespace() -> None:
    pods = [pod("chat-a", "plain", labels=ON), pod("chat-b", "plain"), pod("chat-c", "plain", labels=ON, sidecar=True)]
    assert missing_sidecars(pods, LABELS, [OTHER]) == {OTHER: ["chat-a"]}  # chat-b is out of scope


def test_opted_out_terminating_and_finished_pods_are_not_missing_anything() -> None:
    pods = [pod("a", annotations={"agentops.dev/inject": "disabled"}), pod("b", labels={"agentops.dev/inject": "disabled"}),
            pod("c", deleting=True), pod("d", phase="Succeeded"), pod("e", phase="Failed"), pod("f", phase="Pending")]
    assert missing_sidecars(pods, LABELS, [CHAT]) == {CHAT: ["f"]}


def test_only_the_given_agents_and_their_own_namespace() -> None:
    pods = [pod("x", agent="unknown"), pod("y", "plain", labels=ON), pod("z", agent="summary")]
    assert missing_sidecars(pods, LABELS, [CHAT, SUMMARY]) == {CHAT: [], SUMMARY: ["z"]}


def test_the_agent_name_comes_from_the_label_then_the_owner() -> None:
    named = pod("w", agent="web", labels={"agentops.dev/agent": "chat"})
    orphan = {"metadata": {"name": "debug", "namespace": "demo"}, "spec": {"containers": [{"name": "sh"}]}}
    assert missing_sidecars([named, orphan], LABELS, [CHAT]) == {CHAT: ["w"]}


def test_a_namespace_whose_labels_are_unknown_counts_as_unlabelled() -> None:
    assert missing_sidecars([pod("a", "gone")], {}, [Key("gone", "chat")]) == {}
    assert opted_in(pod("a", "gone", labels=ON), {})
