"""The Argo CD health checks (manifests/argocd/*.lua) and kstatus' rules on Agents and
Faults whose status the real operator wrote.

The unit tests run the scripts over stored objects; here the objects come from a real
operator on the real API server (`kubectl get -o json`), driven into each state the
way the other integration tests do it: telemetry posted as a sidecar would, a
Deployment-runtime agent whose Deployment is missing (Stalled), one whose restart is
being verified (Reconciling), faults that expire, wait for a target, fail, trip a stop
condition or meet the namespace halt switch, and a spec changed while the operator is
down (observedGeneration behind).

kstatus (sigs.k8s.io/cli-utils pkg/kstatus, what Flux and `kpt live status` use) has
no per-kind rules for custom resources: deletion → Terminating, observedGeneration ≠
generation → InProgress, Reconciling=True → InProgress, Stalled=True → Failed, else
Current. That is small enough to port (`kstatus` below) and check alongside.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from argocd_lua import health
from operator_harness import Kube, OperatorProcess, TelemetryFeed, agent_manifest, fault_manifest, report, wait_for
from test_healing_on_cluster import FAST, deployment_manifest, healing_agent

pytestmark = pytest.mark.controlplane


def kstatus(obj: dict[str, Any]) -> str:
    """kstatus' verdict on a custom resource (pkg/kstatus/status: checkGenericProperties)."""
    meta, status = obj["metadata"], obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating"
    if "observedGeneration" in status and status["observedGeneration"] != meta.get("generation"):
        return "InProgress"
    for c in status.get("conditions") or ():
        if c["type"] == "Reconciling" and c["status"] == "True":
            return "InProgress"
        if c["type"] == "Stalled" and c["status"] == "True":
            return "Failed"
    return "Current"


def verdict(kube: Kube, kind: str, name: str) -> tuple[str, str, str]:
    """(Argo CD status, Argo CD message, kstatus) of one object read with kubectl."""
    obj = kube.get(kind, name)
    argo = health(obj)
    return argo["status"], argo["message"], kstatus(obj)


def check(kube: Kube, kind: str, expected: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str, str]]:
    """Assert each named object's (Argo CD status, kstatus); return the full verdicts."""
    got = {name: verdict(kube, kind, name) for name in expected}
    wrong = {name: got[name] for name, (argo, ks) in expected.items() if got[name][0::2] != (argo, ks)}
    assert not wrong, f"expected (Argo CD, kstatus) {expected}; differing: {json.dumps(wrong, indent=1)}"
    return got


@pytest.fixture
def telemetry(operator: OperatorProcess, namespace: str) -> Iterator[TelemetryFeed]:
    with TelemetryFeed(operator, namespace) as t:
        yield t


def phase(kube: Kube, kind: str, name: str) -> str | None:
    return kube.status(kind, name).get("phase")


def condition_true(kube: Kube, name: str, type_: str) -> bool:
    return kube.condition("agent", name, type_).get("status") == "True"


def test_agents_as_argo_cd_and_kstatus_see_them(kube: Kube, operator: OperatorProcess, telemetry: TelemetryFeed) -> None:
    kube.apply(agent_manifest("fresh"))  # no telemetry ever
    kube.apply(agent_manifest("good"))
    kube.apply(agent_manifest("slow", health={"window": "60s"}))
    kube.apply(agent_manifest("sick"))  # runtime None: observed, never restarted
    kube.apply(healing_agent("ghost", deployment="no-such-deployment"))
    kube.apply(deployment_manifest("mending"))
    kube.apply(healing_agent("mending", healing={**FAST, "verifyTimeout": "60s"}))
    telemetry.set("good", sick=False)
    for name in ("sick", "ghost", "mending"):
        telemetry.set(name, sick=True)

    def slow_degraded() -> bool:
        # 2.5 s requests: p95 past `degraded` (1000 ms), short of `unhealthy` (4000 ms).
        operator.post_telemetry(report("slow", kube.namespace, requests_=50, latency_ms=2500))
        return phase(kube, "agent", "slow") == "Degraded"

    wait_for(slow_degraded, timeout=20, what="slow Degraded")
    wait_for(lambda: phase(kube, "agent", "good") == "Healthy", timeout=20, what="good Healthy")
    wait_for(lambda: phase(kube, "agent", "sick") == "Unhealthy", timeout=20, what="sick Unhealthy")
    wait_for(lambda: condition_true(kube, "ghost", "Stalled"), timeout=20, what="ghost Stalled")
    wait_for(lambda: condition_true(kube, "mending", "Reconciling"), timeout=20, what="mending restarting")
    wait_for(lambda: phase(kube, "agent", "fresh") == "Unknown", what="fresh observed")

    got = check(kube, "agent", {
        "fresh": ("Progressing", "Current"),
        "good": ("Healthy", "Current"),
        "slow": ("Degraded", "Current"),
        "sick": ("Degraded", "Current"),
        "ghost": ("Degraded", "Failed"),
        "mending": ("Progressing", "InProgress"),
    })
    assert got["ghost"][1].startswith("Healing escalated: DeploymentNotFound: ")
    assert got["mending"][1].startswith("Restart in progress: Verifying: ")
    assert got["sick"][1].startswith("Unhealthy: ") and got["slow"][1].startswith("Degraded: ")

    # A spec change the operator has not seen (it is down): not Healthy until it has.
    operator.stop()
    kube.cluster.kubectl("patch", "-n", kube.namespace, "agent", "good", "--type=merge", "-p", '{"spec":{"health":{"minSamples":6}}}')
    assert verdict(kube, "agent", "good") == ("Progressing", "Waiting for the operator to observe generation 2 (observed 1)", "InProgress")


def test_faults_as_argo_cd_and_kstatus_see_them(kube: Kube, operator: OperatorProcess, telemetry: TelemetryFeed, namespace: str) -> None:
    kube.apply(agent_manifest("chat"))
    kube.apply(agent_manifest("sick"))
    telemetry.set("chat", sick=False)
    telemetry.set("sick", sick=True)
    kube.apply(fault_manifest("active", agent="chat", duration="10m"))
    kube.apply(fault_manifest("brief", agent="chat", duration="1s"))
    kube.apply(fault_manifest("waiting", agent="nobody", duration="10m"))
    kube.apply(fault_manifest("orphan", agent="nobody", duration="1s"))
    guarded = json.loads(fault_manifest("guarded", agent="sick", type_="Error", duration="10m"))
    guarded["spec"]["stopConditions"] = [{"unhealthyFor": "1s"}]
    kube.apply(json.dumps(guarded))

    for name, wanted in (("active", "Active"), ("brief", "Expired"), ("waiting", "Pending"), ("orphan", "Failed"), ("guarded", "Aborted")):
        wait_for(lambda: phase(kube, "fault", name) == wanted, timeout=20, what=f"fault {name} {wanted}")
    got = check(kube, "fault", {
        "active": ("Healthy", "Current"),
        "brief": ("Healthy", "Current"),
        # kstatus: Reconciling=True while Pending, Stalled=True once Failed.
        "waiting": ("Progressing", "InProgress"),
        "orphan": ("Degraded", "Failed"),
        "guarded": ("Degraded", "Current"),
    })
    assert "stopConditions[0] unhealthyFor" in got["guarded"][1]

    # The target leaves: Active without a target waits (Progressing) for it to return.
    kube.delete("agent", "chat")
    wait_for(lambda: kube.condition("fault", "active", "Ready").get("reason") == "TargetNotFound", timeout=15, what="target lost")
    assert verdict(kube, "fault", "active") == ("Progressing", "Active without a target: the fault is active but has no target", "Current")

    kube.cluster.kubectl("annotate", "namespace", namespace, "agentops.dev/halt=game day over")
    wait_for(lambda: phase(kube, "fault", "active") == "Halted", timeout=15, what="fault Halted")
    argo, message, _ = verdict(kube, "fault", "active")
    assert argo == "Suspended" and "game day over" in message, message


def test_an_ended_fault_observes_a_new_generation(kube: Kube, operator: OperatorProcess) -> None:
    kube.apply(agent_manifest("chat"))
    kube.apply(fault_manifest("brief", agent="chat", duration="1s"))
    wait_for(lambda: phase(kube, "fault", "brief") == "Expired", timeout=20, what="fault Expired")
    kube.cluster.kubectl("patch", "-n", kube.namespace, "fault", "brief", "--type=merge", "-p", '{"spec":{"latency":{"delayMs":100}}}')
    wait_for(lambda: kube.status("fault", "brief")["observedGeneration"] == 2, timeout=5, what="generation 2 observed")
    assert verdict(kube, "fault", "brief")[0::2] == ("Healthy", "Current")
