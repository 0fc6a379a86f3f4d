"""Telemetry posted to the real operator moves an Agent's phase and conditions on the
real API server as its thresholds say — and does not cost an API write per report."""

from __future__ import annotations

from typing import Any

from operator_harness import Kube, OperatorProcess, agent_manifest, fault_manifest, report, wait_for


def _phase(kube: Kube, name: str) -> str | None:
    return kube.status("agent", name).get("phase")


def _post(operator: OperatorProcess, ns: str, agent: str = "chat", **kwargs: Any) -> None:
    """Post one report (`kwargs` are report()'s); like a sidecar, retry while the operator
    has not yet seen the Agent that `kubectl apply` just created (404), fail on anything else."""
    def accepted() -> bool:
        r = operator.post_telemetry(report(agent, ns, **kwargs))
        assert r.status_code in (202, 404), r.text
        return r.status_code == 202
    wait_for(accepted, what=f"telemetry for {agent} accepted")


def test_new_agent_starts_with_unknown_conditions(operator: OperatorProcess, kube: Kube) -> None:
    kube.apply(agent_manifest("chat"))
    status = wait_for(lambda: (s := kube.status("agent", "chat")).get("conditions") and s, what="status initialised")
    assert status["phase"] == "Unknown"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "Unknown"
    assert conditions["Ready"]["reason"] == "NoTelemetry"
    assert conditions["TelemetryFresh"]["status"] == "Unknown"
    assert conditions["FaultActive"]["status"] == "False"
    assert status["observedGeneration"] == 1


def test_healthy_telemetry_makes_the_agent_ready_for_kubectl_wait(operator: OperatorProcess, kube: Kube) -> None:
    kube.apply(agent_manifest("chat"))
    wait_for(lambda: _phase(kube, "chat") == "Unknown", what="initial status")
    _post(operator, kube.namespace, requests_=20, latency_ms=20)
    done = kube.cluster.kubectl("wait", "-n", kube.namespace, "--for=condition=Ready", "agent/chat", "--timeout=30s", timeout=40)
    assert "condition met" in done.stdout
    status = kube.status("agent", "chat")
    assert status["phase"] == "Healthy"
    assert status["metrics"]["requests"] == 20
    assert 10 <= status["metrics"]["latencyP95Ms"] <= 25
    assert status["telemetry"]["reporters"] == 1
    assert status["telemetry"]["instances"] == ["chat-instance-1"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["TelemetryFresh"]["status"] == "True"


def test_latency_over_thresholds_degrades_then_makes_unhealthy(operator: OperatorProcess, kube: Kube) -> None:
    kube.apply(agent_manifest("chat", health={"latencyP95Ms": {"degraded": 1000, "unhealthy": 4000}}))
    _post(operator, kube.namespace, requests_=20, latency_ms=20)
    wait_for(lambda: _phase(kube, "chat") == "Healthy", what="Healthy")

    # 2.5 s requests (a latency fault's worth): p95 over 2000 ms, Degraded.
    _post(operator, kube.namespace, requests_=200, latency_ms=2500)
    wait_for(lambda: _phase(kube, "chat") == "Degraded", what="Degraded")
    status = kube.status("agent", "chat")
    assert status["metrics"]["latencyP95Ms"] > 2000
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "LatencyElevated")

    _post(operator, kube.namespace, requests_=2000, latency_ms=4500)
    wait_for(lambda: _phase(kube, "chat") == "Unhealthy", what="Unhealthy")
    assert "AgentUnhealthy" in wait_for(lambda: kube.event_reasons("chat") >= {"AgentDegraded", "AgentUnhealthy"} and kube.event_reasons("chat"), what="events")


def test_error_rate_and_failing_probes_make_it_unhealthy(operator: OperatorProcess, kube: Kube) -> None:
    kube.apply(agent_manifest("chat"))
    _post(operator, kube.namespace, requests_=20, errors=10)  # 50% 5xx
    wait_for(lambda: _phase(kube, "chat") == "Unhealthy", what="Unhealthy from errors")
    assert kube.condition("agent", "chat", "Ready")["reason"] == "ErrorRateHigh"
    assert kube.status("agent", "chat")["metrics"]["errorRate"] == 0.5

    # The same agent on a fresh operator-side window: probes failing, no traffic at all.
    kube.apply(agent_manifest("quiet"))
    _post(operator, kube.namespace, "quiet", requests_=0, probe_failures=3)
    wait_for(lambda: kube.condition("agent", "quiet", "Ready").get("reason") == "ProbeFailing", what="ProbeFailing")
    assert _phase(kube, "quiet") == "Unhealthy"


def test_silence_past_heartbeat_timeout_turns_unknown(operator: OperatorProcess, kube: Kube) -> None:
    kube.apply(agent_manifest("chat", health={"heartbeatTimeout": "2s"}))
    _post(operator, kube.namespace)
    wait_for(lambda: _phase(kube, "chat") == "Healthy", what="Healthy")
    # No more reports: the operator's own deadline (not a new report) flips it.
    wait_for(lambda: _phase(kube, "chat") == "Unknown", timeout=10, what="Unknown after silence")
    fresh = kube.condition("agent", "chat", "TelemetryFresh")
    assert (fresh["status"], fresh["reason"]) == ("False", "TelemetryStale")


def test_status_is_not_written_once_per_report(operator: OperatorProcess, kube: Kube) -> None:
    kube.apply(agent_manifest("chat"))
    _post(operator, kube.namespace)
    wait_for(lambda: _phase(kube, "chat") == "Healthy", what="Healthy")
    wait_for(lambda: operator.metric("agentops_kubernetes_writes_in_flight") == 0, what="writes settled")
    before = operator.metric("agentops_kubernetes_writes_total", kind="status")
    for _ in range(40):
        _post(operator, kube.namespace)
    accepted = operator.metric("agentops_telemetry_reports_total", result="accepted")
    assert accepted >= 41
    after = operator.metric("agentops_kubernetes_writes_total", kind="status")
    # 40 reports with nothing meaningful changing: at most the 2 s metrics heartbeat.
    assert after - before <= 2, f"{after - before} status writes for 40 unchanged reports"


def test_applied_faults_reported_by_the_sidecar_show_on_the_agent(operator: OperatorProcess, kube: Kube) -> None:
    kube.apply(agent_manifest("chat"))
    kube.apply(fault_manifest("slow", agent="chat"))
    (fault,) = wait_for(lambda: operator.assignments("chat")["faults"], what="assignment")
    wait_for(lambda: kube.condition("agent", "chat", "FaultActive").get("reason") == "FaultsAssigned", what="FaultsAssigned")
    _post(operator, kube.namespace, applied=[fault["uid"]])
    wait_for(lambda: kube.condition("agent", "chat", "FaultActive").get("reason") == "FaultsApplied", what="FaultsApplied")
    status = kube.status("agent", "chat")
    assert status["activeFaults"] == [{"name": "slow", "type": "Latency", "expiresAt": fault["expiresAt"], "applied": True}]
    assert status["activeFaultCount"] == 1
