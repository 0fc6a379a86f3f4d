"""The operator heals Cloud Run agents: real operator, real control plane, the real
`google-cloud-run` client (REST) against a local stand-in of the Admin API v2.

Credentials are Application Default Credentials, resolved by google-auth as in
production: a service-account key file (GOOGLE_APPLICATION_CREDENTIALS, a key made
for the test). google-auth signs a self-signed JWT for the Cloud Run audience with
it, and the test checks that signature on what the stand-in received. The
answers the stand-in gives (ready, 403, 404, failed revision) must come out as clear
Agent status; with no credentials at all the reason says so.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cloudrun_standin import CloudRunStandIn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from operator_harness import Kube, OperatorProcess, TelemetryFeed, wait_for

pytestmark = pytest.mark.controlplane

PROJECT, REGION = "agents-prod", "europe-west1"
HEALING = {"unhealthyFor": "1s", "verifyTimeout": "10s", "budget": {"maxRestarts": 1, "window": "10m"},
           "backoff": {"initial": "1s", "max": "1s"}}


def cloudrun_agent(name: str, service: str) -> str:
    return json.dumps({
        "apiVersion": "agentops.dev/v1alpha1", "kind": "Agent", "metadata": {"name": name},
        "spec": {"runtime": {"type": "CloudRun", "cloudRun": {"project": PROJECT, "region": REGION, "service": service}},
                 "health": {"heartbeatTimeout": "30s", "window": "10s", "minSamples": 5}, "healing": HEALING},
    })


@pytest.fixture
def standin() -> Iterator[CloudRunStandIn]:
    with CloudRunStandIn(polls_until_done=2) as api:
        yield api


SERVICE_ACCOUNT = "agentops-operator@agents-prod.iam.gserviceaccount.com"


def adc_file(tmp_path: Path, key: rsa.RSAPrivateKey) -> Path:
    """A service-account key file, as `gcloud iam service-accounts keys create` writes it."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    path = tmp_path / "adc.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": PROJECT, "private_key_id": "test-key", "private_key": pem,
        "client_email": SERVICE_ACCOUNT, "client_id": "1", "token_uri": "https://oauth2.invalid/token",
    }))
    return path


def no_metadata_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """google-auth must not find credentials anywhere else on this machine."""
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # google-auth compares with "true"
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:1")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud ADC file either


@pytest.mark.timeout(120)
def test_cloud_run_agents_are_restarted_and_refusals_become_clear_status(
        standin: CloudRunStandIn, start_operator: Callable[..., OperatorProcess], kube: Kube, namespace: str,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_metadata_server(monkeypatch, tmp_path)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc_file(tmp_path, key)))
    chat = standin.add_service(PROJECT, REGION, "chat")
    standin.add_service(PROJECT, REGION, "denied", scenario="forbidden")
    broken = standin.add_service(PROJECT, REGION, "broken", scenario="revision-fails")
    operator = start_operator("--status-heartbeat", "2s", "--cloudrun-endpoint", standin.endpoint,
                              "--cloudrun-operation-timeout", "10s")
    for name in ("chat", "denied", "missing", "broken"):
        kube.apply(cloudrun_agent(name, service=name))
    with TelemetryFeed(operator, namespace) as telemetry:
        for name in ("chat", "denied", "missing", "broken"):
            telemetry.set(name, sick=True, instance="rev-1-instance")

        # chat: a new revision through PATCH, the operation polled, then verified.
        wait_for(lambda: healing_state(kube, "chat") == "Verifying", timeout=30, what="chat restarted")
        patches = standin.calls("PATCH", "/services/chat")
        assert len(patches) == 1
        claims = verified_jwt(patches[0].authorization or "", key)
        assert claims["iss"] == SERVICE_ACCOUNT and claims["aud"].startswith("https://run.googleapis.com")
        sent = patches[0].body or {}
        token = kube.status("agent", "chat")["healing"]["restartToken"]
        assert sent["template"]["annotations"]["agentops.dev/restart-token"] == token
        assert sent["template"]["annotations"]["team"] == "agents"  # the rest of the template as it was
        assert sent["template"]["containers"][0]["image"] == "agents/chat:1.0"
        assert standin.calls("GET", "/operations/"), "the operation was never polled"
        assert "/revisions/chat-00002-" in standin.service(chat)["latestReadyRevision"]  # a second revision, ready
        telemetry.set("chat", sick=False, instance="rev-2-instance")
        wait_for(lambda: kube.status("agent", "chat")["incidents"][-1]["state"] == "Healed", timeout=20, what="chat healed")

        # 403, 404: not retryable, escalated at once with the reason and the service named.
        for name, reason in (("denied", "CloudRunPermissionDenied"), ("missing", "CloudRunServiceNotFound")):
            wait_for(lambda: kube.condition("agent", name, "Stalled").get("status") == "True", timeout=30, what=f"{name} Stalled")
            stalled = kube.condition("agent", name, "Stalled")
            assert stalled["reason"] == reason, stalled
            assert f"services/{name}" in stalled["message"], stalled
        assert "roles/run.developer" in kube.condition("agent", "denied", "Stalled")["message"]

        # A revision that never becomes ready: traffic goes back to the last ready one.
        wait_for(lambda: kube.condition("agent", "broken", "Stalled").get("status") == "True", timeout=40, what="broken Stalled")
        action = kube.status("agent", "broken")["incidents"][-1]["actions"][-1]
        assert action["result"] == "CloudRunRevisionFailed", action
        assert "broken-00001" in action["message"]
        traffic = standin.service(broken)["traffic"]
        assert [t.get("revision", "").rsplit("/", 1)[-1] for t in traffic] == ["broken-00001-abc"], traffic
        assert "RestartFailed" in kube.event_reasons("broken")
        assert operator.metric("agentops_restarts_total", runtime="CloudRun", result="Verified") == 1


@pytest.mark.timeout(60)
def test_missing_credentials_are_named_in_the_status(
        standin: CloudRunStandIn, start_operator: Callable[..., OperatorProcess], kube: Kube, namespace: str,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_metadata_server(monkeypatch, tmp_path)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    standin.add_service(PROJECT, REGION, "chat")
    operator = start_operator("--status-heartbeat", "2s", "--cloudrun-endpoint", standin.endpoint)
    kube.apply(cloudrun_agent("chat", service="chat"))
    with TelemetryFeed(operator, namespace) as telemetry:
        telemetry.set("chat", sick=True, instance="rev-1-instance")
        wait_for(lambda: kube.condition("agent", "chat", "Stalled").get("status") == "True", timeout=30, what="Stalled")
    stalled = kube.condition("agent", "chat", "Stalled")
    assert stalled["reason"] == "CloudRunCredentialsMissing", stalled
    assert "Application Default Credentials" in stalled["message"]
    assert standin.calls("PATCH") == []


def verified_jwt(authorization: str, key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """The claims of a `Bearer <JWT>` header, after checking its RS256 signature."""
    assert authorization.startswith("Bearer "), authorization
    header, payload, signature = authorization.removeprefix("Bearer ").split(".")

    def unb64(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    key.public_key().verify(unb64(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return dict(json.loads(unb64(payload)))


def healing_state(kube: Kube, agent: str) -> Any:
    return (kube.status("agent", agent).get("healing") or {}).get("state")
