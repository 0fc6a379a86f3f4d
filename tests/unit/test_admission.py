"""The sidecar-injection webhook (POST /mutate-pods) through the operator's real aiohttp app.

AdmissionReviews as the API server sends them go in over HTTP (aiohttp's TestServer), the
answer's JSONPatch is applied with `jsonpatch` to check the pod the API server would store.
The route sits in the same app as the sidecar API, so these tests also show that it does
not ask for the bearer token that /v1/* does. Settings → InjectionConfig at the end.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import jsonpatch
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agentops.errors import ConfigError
from agentops_operator.admission import MAX_REVIEW_BYTES, PATH, admission_handler, injection_config, parse_review
from agentops_operator.authentication import Authenticator
from agentops_operator.http_api import SidecarPort, build_app
from agentops_operator.injection import SIDECAR_NAME, InjectionConfig
from agentops_operator.metrics import OperatorMetrics
from agentops_operator.settings import OperatorSettings, add_arguments, from_args

CONFIG = InjectionConfig(image="agentops:1.2.3", operator_url="https://agentops-operator.agentops-system.svc:8080")
NS = "agents-demo"
Client = TestClient[web.Request, web.Application]


def deployment_pod(**metadata: Any) -> dict[str, Any]:
    """The pod a ReplicaSet controller creates for Deployment `chat`: no name yet, an owner, a named port."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "chat-7d9c5b6f48-", "namespace": NS,
                     "labels": {"app": "chat", "pod-template-hash": "7d9c5b6f48"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "chat-7d9c5b6f48",
                                          "uid": "0b4f6c1e-2c39-4a57-9a43-0f6c1d6c2f11", "controller": True,
                                          "blockOwnerDeletion": True}],
                     **metadata},
        "spec": {"containers": [{"name": "agent", "image": "chat:1", "ports": [{"name": "http", "containerPort": 8000}],
                                 "resources": {}, "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
                 "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                 "serviceAccountName": "default", "securityContext": {}, "schedulerName": "default-scheduler"},
        "status": {},
    }


def review(pod: dict[str, Any] | None, *, uid: str = "705ab4f5-6393-11e8-b7cc-42010a800002", operation: str = "CREATE",
           resource: str = "pods", sub_resource: str | None = None, dry_run: bool = False) -> dict[str, Any]:
    """An AdmissionReview request as kube-apiserver 1.34 posts it."""
    request: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": resource},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": resource},
        "namespace": NS,
        "operation": operation,
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                     "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]},
        "object": pod,
        "oldObject": None,
        "dryRun": dry_run,
        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


@pytest.fixture
def metrics() -> OperatorMetrics:
    return OperatorMetrics()


@pytest.fixture
async def client(metrics: OperatorMetrics) -> AsyncIterator[Client]:
    # The sidecar API around it is real; its operator is never called on these routes.
    app = build_app(cast(SidecarPort, object()), metrics, auth=Authenticator(kubernetes=None, static_token="s3cret"),
                    lease_s=30, admission=admission_handler(CONFIG, metrics))
    async with TestClient(TestServer(app)) as c:
        yield c


async def answer(client: Client, body: Any) -> dict[str, Any]:
    resp = await client.post(PATH, json=body)
    assert resp.status == 200, await resp.text()
    answered: dict[str, Any] = await resp.json()
    assert (answered["apiVersion"], answered["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
    response: dict[str, Any] = answered["response"]
    assert response["allowed"] is True  # fail-open: never a refusal
    return response


def patched(pod: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(pod), ops)
    return result


def counted(metrics: OperatorMetrics, result: str) -> float:
    value = metrics.registry.get_sample_value("agentops_admission_reviews_total", {"result": result})
    return value or 0.0


async def test_a_deployments_pod_gets_the_native_sidecar_without_a_bearer_token(client: Client,
                                                                               metrics: OperatorMetrics) -> None:
    pod = deployment_pod()
    response = await answer(client, review(pod))
    assert response["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002"
    result = patched(pod, response)
    sidecar = result["spec"]["initContainers"][0]
    assert (sidecar["name"], sidecar["restartPolicy"], sidecar["image"]) == (SIDECAR_NAME, "Always", "agentops:1.2.3")
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env["AGENTOPS_AGENT"] == "chat"  # the Deployment's name: the ReplicaSet's less the pod-template-hash
    assert env["AGENTOPS_OPERATOR_URL"] == "https://agentops-operator.agentops-system.svc:8080"
    assert env["AGENTOPS_UPSTREAM"] == "http://127.0.0.1:8000"
    assert result["spec"]["containers"][0]["ports"] == [{"name": "agent-http", "containerPort": 8000}]
    assert "warnings" not in response
    assert counted(metrics, "injected") == 1
    assert metrics.registry.get_sample_value("agentops_admission_review_duration_seconds_count") == 1
    # The same app still guards the sidecar API.
    assert (await client.get(f"/v1/assignments/{NS}/chat")).status == 401


async def test_the_answer_applied_again_changes_nothing(client: Client) -> None:
    """reinvocationPolicy IfNeeded: the API server may ask again with the pod as patched."""
    pod = patched(deployment_pod(), await answer(client, review(deployment_pod())))
    response = await answer(client, review(pod))
    assert "patch" not in response and "patchType" not in response


@pytest.mark.parametrize("where", ["annotation", "label"])
async def test_an_opted_out_pod_is_admitted_unchanged(client: Client, metrics: OperatorMetrics, where: str) -> None:
    pod = deployment_pod(**({"annotations": {"agentops.dev/inject": "disabled"}} if where == "annotation" else
                            {"labels": {"app": "chat", "pod-template-hash": "7d9c5b6f48", "agentops.dev/inject": "disabled"}}))
    response = await answer(client, review(pod))
    assert set(response) == {"uid", "allowed"}
    assert counted(metrics, "skipped") == 1


async def test_a_pod_that_cannot_be_injected_is_admitted_with_a_warning(client: Client) -> None:
    pod = deployment_pod(annotations={"agentops.dev/agent-port": "eighty"})
    response = await answer(client, review(pod))
    assert "patch" not in response
    assert any("agentops.dev/agent-port" in w for w in response["warnings"]), response


async def test_a_bare_pod_without_an_agent_name_is_admitted_with_a_warning(client: Client) -> None:
    pod = deployment_pod()
    pod["metadata"] = {"name": "debug", "namespace": NS}
    response = await answer(client, review(pod))
    assert "patch" not in response and "agentops.dev/agent" in response["warnings"][0]


@pytest.mark.parametrize("changes", [{"operation": "UPDATE"}, {"resource": "pods", "sub_resource": "ephemeralcontainers"},
                                     {"resource": "services"}])
async def test_anything_but_a_pod_create_passes_untouched(client: Client, changes: dict[str, Any]) -> None:
    response = await answer(client, review(deployment_pod(), **changes))
    assert set(response) == {"uid", "allowed"}


async def test_a_dry_run_gets_the_same_patch(client: Client) -> None:
    pod = deployment_pod()
    assert patched(pod, await answer(client, review(pod, dry_run=True)))["spec"]["initContainers"][0]["name"] == SIDECAR_NAME


@pytest.mark.parametrize("body, says", [
    (b"{not json", "not an admission.k8s.io/v1 AdmissionReview"),
    (json.dumps([1, 2]).encode(), "JSON object"),
    (json.dumps({**review(deployment_pod()), "apiVersion": "admission.k8s.io/v1beta1"}).encode(), "apiVersion/kind"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), "request must be an object"),
    (json.dumps(review(deployment_pod(), uid="")).encode(), "request.uid"),
    (json.dumps(review(None)).encode(), "request.object"),
])
async def test_a_malformed_review_is_a_400_with_a_json_error(client: Client, metrics: OperatorMetrics, body: bytes,
                                                             says: str) -> None:
    resp = await client.post(PATH, data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert says in (await resp.json())["error"]
    assert counted(metrics, "invalid") == 1


async def test_a_pod_bigger_than_the_api_body_limit_is_still_reviewed(client: Client) -> None:
    """The sidecar API refuses bodies over 256 KiB; a pod with a large spec must still get its sidecar."""
    pod = deployment_pod(annotations={"big": "x" * 600_000})
    assert "initContainers" in patched(pod, await answer(client, review(pod)))["spec"]
    resp = await client.post(PATH, data=b"{" + b" " * MAX_REVIEW_BYTES + b"}", headers={"Content-Type": "application/json"})
    assert resp.status == 413


async def test_without_injection_there_is_no_route(metrics: OperatorMetrics) -> None:
    app = build_app(cast(SidecarPort, object()), metrics, auth=Authenticator(kubernetes=None), lease_s=30)
    async with TestClient(TestServer(app)) as c:
        assert (await c.post(PATH, json=review(deployment_pod()))).status == 404


def test_parse_review_reads_the_request() -> None:
    parsed = parse_review(review(deployment_pod(), dry_run=True))
    assert (parsed.uid, parsed.namespace, parsed.operation, parsed.dry_run) == (
        "705ab4f5-6393-11e8-b7cc-42010a800002", NS, "CREATE", True)
    assert parsed.pod is not None and parsed.pod["metadata"]["generateName"] == "chat-7d9c5b6f48-"


# ------------------------------------------------------------ settings → what sidecars get


def settings(*argv: str) -> OperatorSettings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return from_args(parser.parse_args(["-n", "demo", *argv]))


def test_injected_sidecars_get_the_operators_image_and_service(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AGENTOPS_SIDECAR_IMAGE", "AGENTOPS_OPERATOR_IMAGE", "AGENTOPS_SIDECAR_OPERATOR_URL",
                 "AGENTOPS_WEBHOOK_CONFIGURATION", "AGENTOPS_CONTROL_NAMESPACE", "POD_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    default = settings()
    assert default.webhook_configuration == "agentops-sidecar-injector"
    config = injection_config(default)
    assert (config.image, config.operator_url, config.audience, config.ca_configmap) == (
        "agentops:dev", "https://agentops-operator.agentops-system.svc:8080", "agentops", "agentops-ca")
    monkeypatch.setenv("AGENTOPS_OPERATOR_IMAGE", "registry.example/agentops:1.4.0")
    assert injection_config(settings()).image == "registry.example/agentops:1.4.0"
    monkeypatch.setenv("AGENTOPS_SIDECAR_IMAGE", "registry.example/sidecar:1.4.0")
    assert injection_config(settings()).image == "registry.example/sidecar:1.4.0"
    assert injection_config(settings("--sidecar-image", "mine:1")).image == "mine:1"
    tuned = settings("--control-namespace", "ops", "--http-port", "9443", "--token-audience", "team-a",
                     "--ca-configmap", "off")
    config = injection_config(tuned)
    assert (config.operator_url, config.audience, config.ca_configmap) == (
        "https://agentops-operator.ops.svc:9443", "team-a", "agentops-ca")
    assert injection_config(settings("--tls", "off")).operator_url.startswith("http://")
    assert injection_config(settings("--sidecar-operator-url", "https://op.example:443")).operator_url == "https://op.example:443"
    assert settings("--webhook-configuration", "off").webhook_configuration is None


def test_bad_injection_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="--sidecar-operator-url"):
        settings("--sidecar-operator-url", "agentops-operator:8080")
    with pytest.raises(ConfigError, match="--sidecar-image"):
        settings("--sidecar-image", " ")
