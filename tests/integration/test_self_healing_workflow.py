"""The original "Test Self-Healing" workflow, automatic and end to end with real processes.

Real control plane, real operator, a real sidecar supervising the real sample chat
agent (runtime Process, as in the local demo), real traffic through the sidecar:

* a crash fault → Unhealthy → the operator restarts the agent through its sidecar →
  the new instance is not crashed (a restart cures a crash) → Healthy, and the
  incident is in the Agent's status from observed to verified;
* an error fault models a sick dependency: restarts do not cure it, so healing spends
  its budget and escalates (Stalled) instead of looping.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_harness import Kube, OperatorProcess, fault_manifest, free_port, wait_for
from sidecar_harness import SidecarProcess, Traffic
from test_original_workflow import REQUESTS

pytestmark = pytest.mark.controlplane


def process_agent(name: str, healing: dict[str, Any]) -> str:
    return json.dumps({
        "apiVersion": "agentops.dev/v1alpha1", "kind": "Agent", "metadata": {"name": name},
        "spec": {"runtime": {"type": "Process"},
                 "health": {"heartbeatTimeout": "15s", "window": "10s", "minSamples": 5, "probeFailureThreshold": 3},
                 "healing": healing},
    })


@pytest.fixture
def chat(start_operator: Callable[..., OperatorProcess], kube: Kube, tmp_path: Path,
         request: pytest.FixtureRequest) -> Iterator[tuple[OperatorProcess, SidecarProcess]]:
    operator = start_operator("--status-heartbeat", "2s")
    kube.apply(process_agent("chat", request.param))
    port = free_port()
    rig = SidecarProcess(agent="chat", namespace=kube.namespace, operator_url=operator.url, token=operator.token, ca_file=operator.ca_file,
                         upstream_port=port, log_path=tmp_path / "chat-sidecar.log",
                         command=[sys.executable, "-m", "agentops", "agent", "chat", "--host", "127.0.0.1", "--port", str(port)])
    rig.start()
    try:
        yield operator, rig
    finally:
        rig.stop()


QUICK = {"unhealthyFor": "1s", "verifyTimeout": "20s", "budget": {"maxRestarts": 3, "window": "10m"},
         "backoff": {"initial": "2s", "max": "10s"}}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("chat", [QUICK], indirect=True)
def test_crash_fault_is_healed_by_a_restart(chat: tuple[OperatorProcess, SidecarProcess], kube: Kube) -> None:
    operator, sidecar = chat
    with Traffic(sidecar.url, *REQUESTS["chat"]) as traffic:
        wait_for(lambda: kube.status("agent", "chat").get("phase") == "Healthy", timeout=40, what="chat Healthy")
        before = sidecar.state()
        kube.apply(fault_manifest("crash-chat", agent="chat", type_="Crash", duration="10m"))
        wait_for(lambda: kube.status("agent", "chat").get("phase") == "Unhealthy", timeout=30, what="chat Unhealthy")
        # Healing: the sidecar restarts the agent process on the operator's request.
        wait_for(lambda: sidecar.state()["supervisedPid"] not in (None, before["supervisedPid"]), timeout=30, what="agent restarted")
        wait_for(lambda: kube.status("agent", "chat").get("phase") == "Healthy", timeout=40, what="chat Healthy after the restart")
        wait_for(lambda: kube.status("agent", "chat")["incidents"][-1]["state"] == "Healed", timeout=20, what="incident Healed")
        served_after = len(traffic.statuses)
        wait_for(lambda: len(traffic.statuses) > served_after + 5, timeout=20, what="traffic after healing")
        assert set(traffic.statuses[-5:]) == {200}

    status = kube.status("agent", "chat")
    assert status["restartCount"] == 1
    assert status["healing"]["state"] == "Idle"
    incident = status["incidents"][-1]
    # Under steady traffic the error rate may cross its threshold before the third failed probe.
    assert incident["trigger"] == "Unhealthy" and incident["reason"] in ("ProbeFailing", "ErrorRateHigh")
    assert "crash-chat" in incident["faults"]
    assert [a["result"] for a in incident["actions"]] == ["Verified"]
    assert incident["observedAt"] <= incident["detectedAt"] <= incident["actions"][0]["startedAt"] <= incident["endedAt"]
    assert {"AgentUnhealthy", "RestartStarted", "AgentHealed", "AgentHealthy"} <= kube.event_reasons("chat")
    # The crash is cured for this agent; the Fault itself runs on until it expires.
    assert kube.status("fault", "crash-chat")["phase"] == "Active"
    assert operator.assignments("chat")["faults"] == []
    assert operator.metric("agentops_restarts_total", runtime="Process", result="Verified") == 1
    assert operator.metric("agentops_incidents_total", state="Healed") == 1


@pytest.mark.timeout(180)
@pytest.mark.parametrize("chat", [{**QUICK, "verifyTimeout": "5s", "budget": {"maxRestarts": 2, "window": "10m"}}], indirect=True)
def test_error_fault_is_not_cured_so_healing_escalates(chat: tuple[OperatorProcess, SidecarProcess], kube: Kube) -> None:
    operator, sidecar = chat
    with Traffic(sidecar.url, *REQUESTS["chat"]):
        wait_for(lambda: kube.status("agent", "chat").get("phase") == "Healthy", timeout=40, what="chat Healthy")
        first_pid = sidecar.state()["supervisedPid"]
        kube.apply(fault_manifest("dependency-down", agent="chat", type_="Error", params={"statusCode": 503}, duration="10m"))
        wait_for(lambda: kube.condition("agent", "chat", "Stalled").get("status") == "True", timeout=90, what="healing escalated")

    stalled = kube.condition("agent", "chat", "Stalled")
    assert stalled["reason"] == "RestartBudgetExhausted"
    status = kube.status("agent", "chat")
    assert status["restartCount"] == 2 and status["phase"] == "Unhealthy"
    incident = status["incidents"][-1]
    assert incident["state"] == "Escalated" and len(incident["actions"]) == 2
    assert all(a["result"] == "NotVerified" for a in incident["actions"])
    assert sidecar.state()["supervisedPid"] != first_pid  # it did restart — and it did not help
    assert sidecar.enforced() == ["dependency-down"]  # the error fault is still enforced
    assert "HealingEscalated" in kube.event_reasons("chat")
