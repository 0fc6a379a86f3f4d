"""The test control plane is a real Kubernetes API server: version, RBAC, storage, CEL."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # conftest is not imported at run time: fixtures arrive by name
    from conftest import Cluster


def test_server_version_is_1_34(cluster: Cluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["major"] == "1"
    assert version["serverVersion"]["minor"].rstrip("+") == "34"


def test_admin_can_do_everything(cluster: Cluster) -> None:
    assert cluster.kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"


def test_rbac_is_enforced(cluster: Cluster) -> None:
    # can-i exits 1 when the answer is "no", hence check=False.
    proc = cluster.kubectl(
        "auth", "can-i", "create", "pods", "--as=system:serviceaccount:default:nobody", check=False
    )
    assert proc.stdout.strip() == "no", proc.stderr


def test_configmap_round_trip(cluster: Cluster, namespace: str) -> None:
    manifest = textwrap.dedent(f"""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: greeting
          namespace: {namespace}
        data:
          hello: world
        """)
    cluster.kubectl("apply", "-f", "-", input=manifest)
    got = json.loads(cluster.kubectl("get", "configmap", "greeting", "-n", namespace, "-o", "json").stdout)
    assert got["data"] == {"hello": "world"}

    cluster.kubectl("patch", "configmap", "greeting", "-n", namespace, "--type=merge", "-p", '{"data":{"hello":"there"}}')
    value = cluster.kubectl("get", "configmap", "greeting", "-n", namespace, "-o", "jsonpath={.data.hello}").stdout
    assert value == "there"

    cluster.kubectl("delete", "configmap", "greeting", "-n", namespace)
    gone = cluster.kubectl("get", "configmap", "greeting", "-n", namespace, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_crd_cel_validation_rejects_bad_object(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    # A unique group keeps reruns against an existing cluster independent of each other.
    group = f"e{uuid.uuid4().hex[:8]}.envtest.agentops.dev"
    (tmp_path / "crd.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata:
          name: ranges.{group}
        spec:
          group: {group}
          scope: Namespaced
          names: {{plural: ranges, singular: range, kind: Range}}
          versions:
            - name: v1
              served: true
              storage: true
              schema:
                openAPIV3Schema:
                  type: object
                  properties:
                    spec:
                      type: object
                      properties:
                        min: {{type: integer}}
                        max: {{type: integer}}
                      x-kubernetes-validations:
                        - rule: "self.min <= self.max"
                          message: "min must not exceed max"
        """))
    applied = cluster.apply_crds(tmp_path)
    try:
        assert applied == [f"customresourcedefinition.apiextensions.k8s.io/ranges.{group}"]

        def obj(name: str, lo: int, hi: int) -> str:
            return (f"apiVersion: {group}/v1\nkind: Range\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
                    f"spec: {{min: {lo}, max: {hi}}}\n")

        cluster.kubectl("apply", "-f", "-", input=obj("good", 1, 2))
        bad = cluster.kubectl("apply", "-f", "-", input=obj("bad", 3, 2), check=False)
        assert bad.returncode != 0
        assert "min must not exceed max" in bad.stderr
    finally:
        cluster.kubectl("delete", "crd", f"ranges.{group}", "--wait=false", "--ignore-not-found", check=False)
