"""Test harness: kustomizations rendered by the real kubectl, and objects applied for real.

`render` runs `kubectl kustomize` (the kustomize built into kubectl, as users run it)
and keeps its stderr, where kustomize prints deprecation warnings. `AppliedObjects`
applies objects for the length of a test module and, afterwards, deletes only those
that did not exist before: on an existing cluster (AGENTOPS_TEST_EXISTING_CLUSTER=1)
an installed AgentOps is left exactly as it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]

# On the bare control plane a deleted namespace stays Terminating for good (no
# namespace controller), and the UI tests (ui_harness) put their ServiceAccount in
# agentops-system: never delete it, whoever created it.
SHARED_NAMESPACES = frozenset({"agentops-system"})


@dataclass(frozen=True)
class Rendering:
    path: str  # relative to the repository, as users type it
    objects: list[dict[str, Any]]
    stderr: str

    def of_kind(self, *kinds: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] in kinds]

    def find(self, kind: str, name: str) -> dict[str, Any]:
        (found,) = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        return found

    def pod_specs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(workload name, pod spec) of every Deployment."""
        for workload in self.of_kind("Deployment"):
            yield workload["metadata"]["name"], workload["spec"]["template"]["spec"]


def render(cluster: Any, path: str) -> Rendering:
    proc = cluster.kubectl("kustomize", str(REPO_ROOT / path))
    return Rendering(path, [o for o in yaml.safe_load_all(proc.stdout) if o], proc.stderr)


def manifest(objects: Iterable[dict[str, Any]]) -> str:
    return "\n---\n".join(yaml.safe_dump(o) for o in objects)


@dataclass
class AppliedObjects:
    """Objects applied for real; `delete_created` removes those this run created."""

    cluster: Any
    created: list[dict[str, Any]] = field(default_factory=list)

    def apply(self, objects: list[dict[str, Any]]) -> None:
        existing = set(self.cluster.kubectl("get", "-f", "-", "--ignore-not-found", "-o", "name", input=manifest(objects)).stdout.split())
        applied = self.cluster.kubectl("apply", "-f", "-", "-o", "name", input=manifest(objects)).stdout.split()
        # `-o name` lists the objects in the order given, so the names pair with them.
        self.created += [o for o, name in zip(objects, applied) if name not in existing]

    def delete_created(self) -> None:
        doomed = [o for o in self.created if not (o["kind"] == "Namespace" and o["metadata"]["name"] in SHARED_NAMESPACES)]
        self.created = []
        if doomed:
            self.cluster.kubectl("delete", "-f", "-", "--ignore-not-found", "--wait=false", input=manifest(doomed), check=False)


def labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


def as_json(obj: dict[str, Any], **changes: Any) -> str:
    """`obj` with its metadata changed (e.g. namespace=...), as kubectl input."""
    return json.dumps({**obj, "metadata": {**obj["metadata"], **changes}})
