"""Pods that should carry the injected sidecar and do not: what the Agent's SidecarMissing reports.

The injection webhook fails open, so a pod created while the operator was down (or whose
injection was refused, or that predates the namespace's label) runs bare: no telemetry,
no faults, and nobody would notice. A periodic scan finds such pods and the reconciler
puts them on their Agent (condition SidecarMissing and a Warning Event).

`missing_sidecars` is pure: it applies the webhook's scope (the namespace's or the pod's
label `agentops.dev/inject=enabled`, less opted-out pods) and `injection`'s own answers
for the agent's name and whether the sidecar is there, so the scan cannot disagree with
the webhook. `scan` is the I/O: every pod of the watched namespaces (paged) and their
namespaces' labels. RBAC: list pods; get namespaces (list, cluster-wide).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from agentops_operator import injection
from agentops_operator.kube_client import KubeClient, KubeError
from agentops_operator.resources import Key

ENABLED = "enabled"
# Pods a scan reads per request: a page of 500 pods is a few MiB at most, and 10,000 pods
# take 20 requests.
PAGE_SIZE = 500
# Finished pods never get a sidecar again: the API server leaves them out of the list.
LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"

Pod = Mapping[str, Any]


def _labels(obj: Pod) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def opted_in(pod: Pod, namespace_labels: Mapping[str, str]) -> bool:
    """In the webhook's scope: the namespace or the pod says enabled, and the pod did not opt out."""
    enabled = ENABLED in (namespace_labels.get(injection.INJECT_KEY), _labels(pod).get(injection.INJECT_KEY))
    return enabled and not injection.opted_out(pod)


def _live(pod: Pod) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def missing_sidecars(pods: Sequence[Pod], namespace_labels: Mapping[str, Mapping[str, str]],
                     agents: Collection[Key]) -> dict[Key, list[str]]:
    """Each Agent of `agents` that injection concerns → its live pods without the sidecar (sorted names).

    An Agent is concerned when its namespace is labelled for injection or one of its pods is;
    a concerned Agent with no bare pod maps to [] (its SidecarMissing clears). Agents not
    concerned are left out, and so are pods whose Agent is not in `agents`.
    """
    wanted = set(agents)
    found: dict[Key, list[str]] = {key: [] for key in wanted
                                   if namespace_labels.get(key.namespace, {}).get(injection.INJECT_KEY) == ENABLED}
    for pod in pods:
        meta = pod.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        if not opted_in(pod, namespace_labels.get(namespace, {})):
            continue
        name = injection.agent_name(pod)
        key = Key(namespace, name) if name else None
        if key not in wanted:
            continue
        assert key is not None
        bare = found.setdefault(key, [])
        if _live(pod) and not injection.has_sidecar(pod):
            bare.append(str(meta.get("name")))
    return {key: sorted(names) for key, names in found.items()}


async def scan(kube: KubeClient, namespaces: Collection[str] | None) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """Every live pod of `namespaces` (None: of the cluster) and each of those namespaces' labels.

    A namespace that does not exist (any more) has no pods and no labels.
    """
    if namespaces is None:
        pods = await kube.run(_list_pods, kube, None)
        listed = await kube.run(functools.partial(kube.call, "GET", version="v1", url="namespaces"))
        labels = {ns["metadata"]["name"]: dict(ns["metadata"].get("labels") or {}) for ns in listed.get("items", [])}
        return pods, labels
    pods, labels = [], {}
    for namespace in dict.fromkeys(namespaces):
        try:
            found = await kube.run(functools.partial(kube.call, "GET", version="v1", url=f"namespaces/{namespace}"))
        except KubeError as exc:
            if exc.status == 404:
                continue
            raise
        labels[namespace] = dict(found["metadata"].get("labels") or {})
        pods += await kube.run(_list_pods, kube, namespace)
    return pods, labels


def _list_pods(kube: KubeClient, namespace: str | None) -> list[dict[str, Any]]:
    """Blocking: the live pods of one namespace, or of all (paged)."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": PAGE_SIZE, "fieldSelector": LIVE_PODS}
    while True:
        kwargs: dict[str, Any] = {"version": "v1", "url": "pods", "params": dict(params)}
        if namespace is not None:
            kwargs["namespace"] = namespace
        page = kube.call("GET", **kwargs)
        items += page.get("items", [])
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return items
        params["continue"] = token
