"""Healing, the halt switch, manual recover and stop conditions on the real control plane.

The operator runs as a process against etcd + kube-apiserver. Telemetry comes from a
thread posting reports to the operator's API exactly as a sidecar would, so each
test says how sick an agent is. The control plane runs no controllers: a restarted
Deployment keeps no pods, which makes every change to its pod template (the restart
itself) countable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from operator_harness import Kube, OperatorProcess, TelemetryFeed, fault_manifest, report, wait_for

pytestmark = pytest.mark.controlplane

FAST = {"unhealthyFor": "1s", "verifyTimeout": "5s", "budget": {"maxRestarts": 2, "window": "10m"},
        "backoff": {"initial": "2s", "max": "4s"}}


def deployment_manifest(name: str) -> str:
    labels = {"app": name}
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "agent", "image": "example.invalid/agent:1"}]}}},
    })


def healing_agent(name: str, *, deployment: str | None = None, healing: dict[str, Any] | None = None,
                  runtime: dict[str, Any] | None = None) -> str:
    return json.dumps({
        "apiVersion": "agentops.dev/v1alpha1", "kind": "Agent", "metadata": {"name": name},
        "spec": {
            "runtime": runtime or {"type": "Kubernetes", "deployment": {"name": deployment or name}},
            "health": {"heartbeatTimeout": "30s", "window": "10s", "minSamples": 5, "probeFailureThreshold": 3},
            "healing": healing or FAST,
        },
    })


@pytest.fixture
def telemetry(operator: OperatorProcess, namespace: str) -> Iterator[TelemetryFeed]:
    with TelemetryFeed(operator, namespace) as t:
        yield t


def restart_token(kube: Kube, deployment: str) -> str | None:
    template = kube.get("deployment", deployment)["spec"]["template"]
    return (template.get("metadata", {}).get("annotations") or {}).get("agentops.dev/restart-token")


class TokenLog:
    """Every distinct restart token seen on a Deployment's pod template, with when."""

    def __init__(self, kube: Kube, deployment: str) -> None:
        self.kube, self.deployment = kube, deployment
        self.seen: list[tuple[float, str]] = []
        self.generations: set[int] = set()

    def poll(self) -> list[str]:
        body = self.kube.get("deployment", self.deployment)
        self.generations.add(int(body["metadata"]["generation"]))
        token = (body["spec"]["template"].get("metadata", {}).get("annotations") or {}).get("agentops.dev/restart-token")
        if token is not None and (not self.seen or self.seen[-1][1] != token):
            self.seen.append((time.monotonic(), token))
        return [t for _, t in self.seen]


def healing(kube: Kube, agent: str) -> dict[str, Any]:
    return dict(kube.status("agent", agent).get("healing") or {})


def test_unhealthy_deployment_gets_one_restart_per_decision_then_escalates(
        kube: Kube, operator: OperatorProcess, telemetry: TelemetryFeed) -> None:
    kube.apply(deployment_manifest("chat"))
    kube.apply(healing_agent("chat"))
    telemetry.set("chat", sick=True)
    log = TokenLog(kube, "chat")
    wait_for(lambda: len(log.poll()) >= 1, timeout=20, what="the first restart")
    assert kube.get("deployment", "chat")["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
    # The same instance keeps reporting sick: the restart is not verified (5 s), a
    # second one follows after the backoff, then the budget (2) is spent.
    wait_for(lambda: kube.condition("agent", "chat", "Stalled").get("status") == "True" and log.poll() is not None,
             timeout=40, what="escalation to Stalled")
    tokens = log.poll()
    assert len(tokens) == 2 and len(set(tokens)) == 2
    assert len(log.generations) <= 3  # the initial generation and one per restart, never more
    assert kube.get("deployment", "chat")["metadata"]["generation"] == 3
    stalled = kube.condition("agent", "chat", "Stalled")
    assert stalled["reason"] == "RestartBudgetExhausted", stalled
    status = kube.status("agent", "chat")
    assert status["restartCount"] == 2
    incident = status["incidents"][-1]
    assert incident["state"] == "Escalated" and incident["trigger"] == "Unhealthy"
    assert [a["result"] for a in incident["actions"]] == ["NotVerified", "NotVerified"]
    assert incident["observedAt"] <= incident["detectedAt"] <= incident["actions"][0]["startedAt"]
    assert {"RestartStarted", "RestartNotVerified", "HealingEscalated"} <= kube.event_reasons("chat")
    assert operator.metric("agentops_healing_escalations_total", reason="RestartBudgetExhausted") == 1
    # Stalled means stalled: no restart follows while it stays sick (an absence, so a wait).
    time.sleep(3)
    assert log.poll() == tokens
    # Healthy again (a new instance): the escalation lifts.
    telemetry.set("chat", sick=False, instance="i-2")
    wait_for(lambda: kube.condition("agent", "chat", "Stalled").get("status") == "False", timeout=20, what="Stalled to clear")
    assert "HealingResumed" in kube.event_reasons("chat")


def test_a_verified_restart_heals_and_a_flapping_agent_keeps_to_budget_and_backoff(
        kube: Kube, operator: OperatorProcess, telemetry: TelemetryFeed) -> None:
    kube.apply(deployment_manifest("flappy"))
    kube.apply(healing_agent("flappy", healing={**FAST, "budget": {"maxRestarts": 3, "window": "10m"}}))
    log = TokenLog(kube, "flappy")
    instance = 1
    telemetry.set("flappy", sick=True, instance=f"i-{instance}")
    for round_ in range(3):
        wait_for(lambda: len(log.poll()) > round_, timeout=30, what=f"restart {round_ + 1}")
        # The restart "works": a new instance reports healthy, is verified, then falls over again.
        instance += 1
        telemetry.set("flappy", sick=False, instance=f"i-{instance}")
        wait_for(lambda: kube.status("agent", "flappy")["incidents"][-1]["state"] == "Healed", timeout=20,
                 what=f"restart {round_ + 1} verified")
        telemetry.set("flappy", sick=True, instance=f"i-{instance}")
    wait_for(lambda: kube.condition("agent", "flappy", "Stalled").get("status") == "True", timeout=30, what="budget spent")
    times = [t for t, _ in log.seen]
    assert len(times) == 3
    # Backoff: 2 s before the second restart, 4 s (the cap) before the third. The
    # operator can only be later than that, never earlier.
    assert times[1] - times[0] >= 2.0 - 0.5 and times[2] - times[1] >= 4.0 - 0.5, times
    status = kube.status("agent", "flappy")
    assert [i["state"] for i in status["incidents"]] == ["Healed", "Healed", "Healed", "Escalated"]
    assert operator.metric("agentops_restarts_total", result="Verified") == 3


@pytest.mark.parametrize("start_args", [("--max-concurrent-restarts", "2")])
def test_cluster_wide_restart_limit_holds_with_many_unhealthy_agents(
        kube: Kube, start_operator: Callable[..., OperatorProcess], namespace: str, start_args: tuple[str, ...]) -> None:
    operator = start_operator("--status-heartbeat", "2s", *start_args)
    names = [f"agent-{i}" for i in range(5)]
    slow_verify = {**FAST, "verifyTimeout": "60s"}
    for n in names:
        kube.apply(deployment_manifest(n))
        kube.apply(healing_agent(n, healing=slow_verify))
    logs = {n: TokenLog(kube, n) for n in names}
    with TelemetryFeed(operator, namespace) as telemetry:
        for n in names:
            telemetry.set(n, sick=True)

        def restarted() -> list[str]:
            return [n for n in names if logs[n].poll()]

        wait_for(lambda: len(restarted()) == 2, timeout=20, what="two restarts")
        wait_for(lambda: sum(healing(kube, n).get("state") == "Queued" for n in names) == 3, timeout=20, what="three queued")
        assert len(restarted()) == 2
        # The gauge is refreshed at most once a second.
        wait_for(lambda: operator.metric("agentops_restart_slots_in_use") == 2, timeout=5, what="slots-in-use gauge at 2")
        # One restart is verified: its slot goes to a queued agent, and only one.
        first = restarted()[0]
        telemetry.set(first, sick=False, instance="i-2")
        wait_for(lambda: len(restarted()) == 3, timeout=20, what="a third restart after a slot freed")
        assert sum(healing(kube, n).get("state") in ("Restarting", "Verifying") for n in names) <= 2
        assert sum(healing(kube, n).get("state") == "Queued" for n in names) == 2


def test_missing_deployment_escalates_with_a_clear_reason(kube: Kube, operator: OperatorProcess, telemetry: TelemetryFeed) -> None:
    kube.apply(healing_agent("ghost", deployment="no-such-deployment"))
    telemetry.set("ghost", sick=True)
    wait_for(lambda: kube.condition("agent", "ghost", "Stalled").get("status") == "True", timeout=20, what="Stalled")
    stalled = kube.condition("agent", "ghost", "Stalled")
    assert stalled["reason"] == "DeploymentNotFound" and "no-such-deployment" in stalled["message"]
    assert "RestartFailed" in kube.event_reasons("ghost")


def test_manual_recover_halts_faults_and_restarts_once(kube: Kube, operator: OperatorProcess, telemetry: TelemetryFeed) -> None:
    kube.apply(deployment_manifest("chat"))
    kube.apply(healing_agent("chat"))
    telemetry.set("chat", sick=False)
    kube.apply(fault_manifest("slow", agent="chat", duration="10m"))
    wait_for(lambda: kube.status("fault", "slow").get("phase") == "Active", what="fault Active")
    kube.cluster.kubectl("annotate", "-n", kube.namespace, "agent", "chat", "agentops.dev/recover=ticket-7")
    wait_for(lambda: kube.status("fault", "slow").get("phase") == "Halted", timeout=15, what="fault Halted")
    assert kube.condition("fault", "slow", "Ready")["reason"] == "ManualRecover"
    log = TokenLog(kube, "chat")
    wait_for(lambda: len(log.poll()) == 1, timeout=15, what="the recover restart")
    assert operator.assignments("chat")["faults"] == []
    incident = kube.status("agent", "chat")["incidents"][-1]
    assert incident["trigger"] == "ManualRecover" and len(incident["actions"]) == 1
    # The same annotation value again is not a new request.
    kube.cluster.kubectl("annotate", "-n", kube.namespace, "agent", "chat", "agentops.dev/recover=ticket-7", "--overwrite")
    telemetry.set("chat", sick=False, instance="i-2")
    wait_for(lambda: kube.status("agent", "chat")["incidents"][-1]["state"] == "Healed", timeout=20, what="recover verified")
    assert len(log.poll()) == 1


def test_namespace_halt_switch(kube: Kube, operator: OperatorProcess, telemetry: TelemetryFeed, namespace: str) -> None:
    kube.apply(healing_agent("chat", runtime={"type": "None"}))
    telemetry.set("chat", sick=False)
    kube.apply(fault_manifest("slow", agent="chat", duration="10m"))
    wait_for(lambda: kube.status("fault", "slow").get("phase") == "Active", what="fault Active")
    version = operator.assignments("chat")["version"]
    kube.cluster.kubectl("annotate", "namespace", namespace, "agentops.dev/halt=incident 42")
    # A sidecar waiting on its long poll hears of it at once.
    answer = operator.assignments("chat", version=version, wait=5)
    assert answer["faults"] == []
    wait_for(lambda: kube.status("fault", "slow").get("phase") == "Halted", what="fault Halted")
    assert kube.condition("fault", "slow", "Ready")["reason"] == "NamespaceHalted"
    assert "FaultHalted" in kube.event_reasons("slow")
    kube.apply(fault_manifest("new", agent="chat", duration="10m"))
    wait_for(lambda: kube.status("fault", "new").get("phase") == "Halted", what="new fault refused")
    assert "incident 42" in kube.status("fault", "new")["message"]
    assert "FaultRefused" in kube.event_reasons("new")
    kube.cluster.kubectl("annotate", "namespace", namespace, "agentops.dev/halt-")
    kube.apply(fault_manifest("after", agent="chat", duration="10m"))
    wait_for(lambda: kube.status("fault", "after").get("phase") == "Active", what="faults allowed again")


def test_cluster_halt_switch(kube: Kube, start_operator: Callable[..., OperatorProcess], namespace: str) -> None:
    control = f"{namespace}-control"
    kube.cluster.kubectl("create", "namespace", control)
    try:
        operator = start_operator("--control-namespace", control)
        kube.apply(healing_agent("chat", runtime={"type": "None"}))
        kube.apply(fault_manifest("slow", agent="chat", duration="10m"))
        wait_for(lambda: kube.status("fault", "slow").get("phase") == "Active", what="fault Active")
        kube.cluster.kubectl("annotate", "namespace", control, "agentops.dev/halt-all=game day over")
        wait_for(lambda: kube.status("fault", "slow").get("phase") == "Halted", what="fault Halted by the cluster switch")
        assert kube.condition("fault", "slow", "Ready")["reason"] == "ClusterHalted"
        assert operator.assignments("chat")["faults"] == []
        kube.cluster.kubectl("annotate", "namespace", control, "agentops.dev/halt-all-")
        kube.apply(fault_manifest("after", agent="chat", duration="10m"))
        wait_for(lambda: kube.status("fault", "after").get("phase") == "Active", what="faults allowed again")
    finally:
        kube.cluster.kubectl("delete", "namespace", control, "--wait=false")


def test_stop_condition_aborts_the_fault(kube: Kube, operator: OperatorProcess, namespace: str) -> None:
    kube.apply(healing_agent("chat", runtime={"type": "None"}))
    body = json.loads(fault_manifest("errs", agent="chat", duration="10m", type_="Error"))
    body["spec"]["stopConditions"] = [{"unhealthyFor": "1h"}, {"errorRateAbove": 0.5}]
    kube.apply(json.dumps(body))
    wait_for(lambda: kube.status("fault", "errs").get("phase") == "Active", what="fault Active")
    assert operator.post_telemetry(report("chat", namespace, requests_=20, errors=4)).status_code == 202
    assert operator.post_telemetry(report("chat", namespace, requests_=20, errors=18)).status_code == 202
    wait_for(lambda: kube.status("fault", "errs").get("phase") == "Aborted", what="fault Aborted")
    status = kube.status("fault", "errs")
    assert "spec.stopConditions[1] errorRateAbove 0.5" in status["message"] and "chat" in status["message"]
    assert kube.condition("fault", "errs", "Ready")["reason"] == "StopConditionTripped"
    assert "FaultAborted" in kube.event_reasons("errs")
    assert operator.assignments("chat")["faults"] == []


def burning_report(agent: str, namespace: str, tokens: int) -> dict[str, Any]:
    """A sidecar's report whose gateway saw the agent spend `tokens` in one second of model calls."""
    body = report(agent, namespace, requests_=10)
    body["model"] = [{"provider": "OpenAI", "model": "gpt-4o-mini", "calls": 10, "retries": 0, "errors": {},
                      "latencyMs": {"buckets": {"500": 10}}, "firstChunkMs": {"buckets": {"100": 10}},
                      "inputTokens": tokens, "outputTokens": tokens // 10, "streams": 0, "streamsInterrupted": 0}]
    return body


def test_token_burn_stop_condition_aborts_the_fault(kube: Kube, operator: OperatorProcess, namespace: str) -> None:
    kube.apply(healing_agent("chat", runtime={"type": "None"}))
    body = json.loads(fault_manifest("slow", agent="chat", duration="10m"))
    body["spec"]["stopConditions"] = [{"tokensPerMinuteAbove": 100000}]
    kube.apply(json.dumps(body))
    wait_for(lambda: kube.status("fault", "slow").get("phase") == "Active", what="fault Active")
    assert operator.post_telemetry(burning_report("chat", namespace, 1000)).status_code == 202
    wait_for(lambda: (kube.status("agent", "chat").get("model") or {}).get("inputTokens") == 1000, what="status.model")
    assert kube.status("fault", "slow")["phase"] == "Active"  # 1,100 tokens in a minute's window: under the guard
    assert operator.post_telemetry(burning_report("chat", namespace, 200000)).status_code == 202
    wait_for(lambda: kube.status("fault", "slow").get("phase") == "Aborted", what="fault Aborted on token burn")
    assert "spec.stopConditions[0] tokensPerMinuteAbove 100000 tripped on agent chat" in kube.status("fault", "slow")["message"]


def test_a_runaway_agent_is_scaled_to_zero_and_escalated(kube: Kube, operator: OperatorProcess, namespace: str) -> None:
    kube.apply(deployment_manifest("chat"))
    agent = json.loads(healing_agent("chat", healing={**FAST, "onTokenBurn": "ScaleToZero"}))
    agent["spec"]["health"]["model"] = {"tokensPerMinute": {"unhealthy": 100000}}
    agent["spec"]["models"] = {"providers": ["OpenAI"],
                               "prices": [{"model": "gpt-4o-mini", "inputPerMillionTokens": 0.15, "outputPerMillionTokens": 0.6}]}
    kube.apply(json.dumps(agent))

    def burn() -> bool:
        operator.post_telemetry(burning_report("chat", namespace, 50000))
        return bool(kube.get("deployment", "chat")["spec"]["replicas"] == 0)

    wait_for(burn, timeout=20, interval=0.3, what="Deployment scaled to zero")
    annotations = kube.get("deployment", "chat")["metadata"]["annotations"]
    assert annotations["agentops.dev/replicas-before-scale-to-zero"] == "1"
    assert restart_token(kube, "chat") is None  # stopped, not restarted
    wait_for(lambda: kube.condition("agent", "chat", "Stalled").get("reason") == "TokenBurn", what="Stalled TokenBurn")
    status = kube.status("agent", "chat")
    assert status["phase"] == "Unhealthy" and status["model"]["costPerHourUsd"] > 0
    incident = status["incidents"][-1]
    assert (incident["reason"], incident["state"]) == ("TokenBurn", "Escalated")
    assert [(a["type"], a["result"]) for a in incident["actions"]] == [("ScaleToZero", "ScaledToZero")]
    assert {"ScaleToZeroStarted", "HealingEscalated"} <= kube.event_reasons("chat")
    assert status.get("restartCount", 0) == 0


def test_a_stop_condition_with_two_guards_is_rejected_by_the_api_server(kube: Kube) -> None:
    body = json.loads(fault_manifest("bad", agent="chat", duration="1m"))
    body["spec"]["stopConditions"] = [{"errorRateAbove": 0.5, "unhealthyFor": "10s"}]
    out = kube.cluster.kubectl("apply", "-n", kube.namespace, "-f", "-", input=json.dumps(body), check=False)
    assert out.returncode != 0
    assert "exactly one of errorRateAbove, latencyP95MsAbove, unhealthyFor, modelErrorRateAbove, tokensPerMinuteAbove" in out.stderr


def test_healing_policy_is_validated_by_the_api_server(kube: Kube) -> None:
    body = json.loads(healing_agent("bad", healing={"backoff": {"initial": "5m", "max": "1m"}}))
    out = kube.cluster.kubectl("apply", "-n", kube.namespace, "-f", "-", input=json.dumps(body), check=False)
    assert out.returncode != 0 and "spec.healing.backoff.initial must be less than or equal to" in out.stderr
    defaulted = json.loads(healing_agent("fine", runtime={"type": "None"}))
    del defaulted["spec"]["healing"]
    kube.apply(json.dumps(defaulted))
    assert kube.get("agent", "fine")["spec"]["healing"] == {
        "enabled": True, "unhealthyFor": "30s", "verifyTimeout": "2m",
        "budget": {"maxRestarts": 3, "window": "1h"}, "backoff": {"initial": "30s", "max": "10m"}, "onTokenBurn": "Restart"}
