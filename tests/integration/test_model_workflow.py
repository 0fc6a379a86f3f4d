"""A fault on an agent's model calls, end to end, with every part real but the provider.

The real operator on a real control plane; the real sample chat agent (its Gemini REST
client, a key, `GOOGLE_GEMINI_BASE_URL` pointing at its sidecar's model gateway),
supervised by a real sidecar whose gateway forwards to the local Gemini stand-in;
callers' traffic through the sidecar's proxy:

1. the Agent is Healthy and `status.model` shows the gateway's measurements (calls,
   tokens, providers, cost from the Agent's price table); the key reached Gemini;
2. a `ModelRateLimit` fault on the agent's Gemini calls → the gateway answers as Gemini
   does (nothing reaches the provider) → the Agent is Unhealthy with reason
   ModelErrors, the incident names the model errors, healing follows its policy
   (a restart, not verified — the fault persists — then escalation);
3. the fault deleted → Healthy again;
4. a fault with a `tokensPerMinuteAbove` stop condition is aborted when the agent's
   calls start burning tokens.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from model_standins import Answer, StandIns
from operator_harness import Kube, OperatorProcess, wait_for
from sidecar_harness import SidecarProcess, Traffic, gemini_chat

KEY = "AIzaE2E-stand-in-key_0123456789"
MODEL = "gemini-2.0-flash"
PRICE_IN, PRICE_OUT = 0.10, 0.40  # US dollars per million tokens, as in the cluster samples


def chat_agent() -> str:
    return json.dumps({
        "apiVersion": "agentops.dev/v1alpha1", "kind": "Agent", "metadata": {"name": "chat"},
        "spec": {
            "runtime": {"type": "Process"},
            "models": {"providers": ["Gemini"], "prices": [
                {"model": MODEL, "inputPerMillionTokens": PRICE_IN, "outputPerMillionTokens": PRICE_OUT}]},
            "health": {"heartbeatTimeout": "30s", "window": "5s", "minSamples": 3, "model": {"minCalls": 3}},
            "healing": {"unhealthyFor": "1s", "verifyTimeout": "5s", "budget": {"maxRestarts": 1, "window": "10m"},
                        "backoff": {"initial": "1s", "max": "2s"}},
        },
    })


def model_fault(name: str, type_: str, model: dict[str, Any], *, stop: list[dict[str, Any]] | None = None) -> str:
    spec: dict[str, Any] = {"target": {"agent": "chat"}, "type": type_, "model": model, "duration": "5m"}
    if type_ == "Latency":
        del spec["model"]
        spec["latency"] = {"delayMs": 1}
    if stop:
        spec["stopConditions"] = stop
    return json.dumps({"apiVersion": "agentops.dev/v1alpha1", "kind": "Fault", "metadata": {"name": name}, "spec": spec})


@pytest.fixture
def providers() -> Iterator[StandIns]:
    with StandIns(keys={"gemini": KEY}) as p:
        p.answer("gemini", Answer(text="I survive most of them.", input_tokens=40, output_tokens=10))
        yield p


@pytest.fixture
def model_operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    return start_operator("--status-heartbeat", "1s")


@pytest.fixture
def chat(model_operator: OperatorProcess, kube: Kube, providers: StandIns, tmp_path: Path) -> Iterator[SidecarProcess]:
    kube.apply(chat_agent())
    sidecar = gemini_chat(namespace=kube.namespace, operator_url=model_operator.url, token=model_operator.token, ca_file=model_operator.ca_file,
                          gemini_origin=providers.origin, key=KEY, model=MODEL, log_path=tmp_path / "chat-sidecar.log")
    sidecar.start()
    try:
        yield sidecar
    finally:
        sidecar.stop()


def status(kube: Kube) -> dict[str, Any]:
    return kube.status("agent", "chat")


@pytest.mark.timeout(240)
def test_model_faults_end_to_end(chat: SidecarProcess, kube: Kube, providers: StandIns, tmp_path: Path) -> None:
    # Callers start once the supervised agent answers its probe: requests refused before
    # it first listened are real 502s that would make this about something else.
    wait_for(lambda: requests.get(f"{chat.admin_url}/readyz", timeout=2).status_code == 200, timeout=30, what="agent ready")
    with Traffic(chat.url, "/v1/chat", {"message": "Which faults do you survive?"}, threads=2, pause=0.1) as callers:
        # 1. Healthy, with the gateway's measurements in status.model.
        wait_for(lambda: status(kube).get("phase") == "Healthy" and (status(kube).get("model") or {}).get("calls", 0) >= 3,
                 timeout=60, what="chat Healthy with model calls in status.model")
        model = status(kube)["model"]
        assert model["providers"] == ["Gemini"] and model["errorRate"] == 0.0
        assert model["inputTokens"] >= 3 * 40 and model["outputTokens"] >= 3 * 10
        assert model["costPerHourUsd"] > 0 and model["tokensPerMinute"] > 0
        seen = providers.requests("gemini")
        assert seen and all(r.header("x-goog-api-key") == KEY for r in seen)
        assert seen[0].path.startswith(f"/v1beta/models/{MODEL}:generateContent")
        assert set(callers.statuses) == {200}

        # 2. Gemini's own 429 on every model call → Unhealthy for ModelErrors → healing.
        assert not status(kube).get("incidents"), [(e["reason"], e["message"]) for e in kube.events("chat")]
        kube.apply(model_fault("gemini-429", "ModelRateLimit", {"providers": ["Gemini"], "retryAfter": "2s"}))
        wait_for(lambda: chat.enforced() == ["gemini-429"], timeout=15, what="rate-limit fault enforced")
        reached = len(providers.requests("gemini"))
        wait_for(lambda: kube.condition("agent", "chat", "Ready").get("reason") == "ModelErrors", timeout=40,
                 what="chat Unhealthy for ModelErrors")
        assert status(kube)["phase"] == "Unhealthy"
        assert "rate_limit" in kube.condition("agent", "chat", "Ready")["message"]
        assert (status(kube).get("model") or {}).get("errors", {}).get("rate_limit", 0) > 0
        # The agent's callers see the agent's own answer to a rate-limited model: 429.
        wait_for(lambda: 429 in callers.statuses[-20:], timeout=10, what="callers see the agent's 429")
        # Healing follows the policy: one restart (the fault outlives it: not verified), then escalation.
        wait_for(lambda: kube.condition("agent", "chat", "Stalled").get("status") == "True", timeout=60,
                 what="healing escalated (the restart did not cure a rate limit)")
        incident = status(kube)["incidents"][-1]
        assert incident["reason"] == "ModelErrors" and incident["state"] == "Escalated"
        assert incident["faults"] == ["gemini-429"]
        assert [a["result"] for a in incident["actions"]] == ["NotVerified"]
        assert status(kube)["restartCount"] == 1
        # The gateway answered for Gemini: no model call reached the provider meanwhile.
        assert len(providers.requests("gemini")) == reached

        # 3. The fault deleted → Gemini answers again → Healthy, escalation lifted.
        kube.delete("fault", "gemini-429")
        wait_for(lambda: status(kube).get("phase") == "Healthy", timeout=60, what="chat Healthy again")
        wait_for(lambda: kube.condition("agent", "chat", "Stalled").get("status") == "False", timeout=20, what="Stalled lifted")

        # 4. A fault guarded by token burn is aborted once the agent's calls burn tokens.
        kube.apply(model_fault("guarded", "Latency", {}, stop=[{"tokensPerMinuteAbove": 200000}]))
        wait_for(lambda: kube.status("fault", "guarded").get("phase") == "Active", timeout=15, what="guarded fault Active")
        providers.answer("gemini", input_tokens=60000, output_tokens=5000)
        wait_for(lambda: kube.status("fault", "guarded").get("phase") == "Aborted", timeout=40, what="guarded fault Aborted")
        message = kube.status("fault", "guarded")["message"]
        assert "tokensPerMinuteAbove 200000 tripped on agent chat" in message
    log = (tmp_path / "chat-sidecar.log").read_text()
    assert KEY not in log, "the API key must never appear in the sidecar's log"
