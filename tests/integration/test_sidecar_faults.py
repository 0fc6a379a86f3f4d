"""Faults from `kubectl apply` to traffic: the real operator, a real sidecar, a stand-in agent.

The stand-in agent (upstream_agent.py) exposes the proxy's mechanics directly; the
sample agents go through the same path in test_original_workflow.py.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from operator_harness import Kube, OperatorProcess, agent_manifest, fault_manifest, free_port, wait_for
from sidecar_harness import SidecarProcess
from upstream_agent import UpstreamAgent

UPSTREAM_SCRIPT = str(Path(__file__).with_name("upstream_agent.py"))


@pytest.fixture
def upstream() -> Iterator[UpstreamAgent]:
    with UpstreamAgent(free_port()) as agent:
        yield agent


def _sidecar(operator: OperatorProcess, tmp_path: Path, port: int, command: list[str] | None = None) -> SidecarProcess:
    return SidecarProcess(agent="web", namespace=operator.namespace, operator_url=operator.url, token=operator.token, ca_file=operator.ca_file,
                          upstream_port=port, log_path=tmp_path / "sidecar.log", command=command or [])


@pytest.fixture
def sidecar(operator: OperatorProcess, kube: Kube, upstream: UpstreamAgent, tmp_path: Path) -> Iterator[SidecarProcess]:
    kube.apply(agent_manifest("web"))
    sc = _sidecar(operator, tmp_path, upstream.port)
    sc.start()
    try:
        yield sc
    finally:
        sc.stop()


def _timed_get(url: str) -> tuple[int, float, bytes]:
    started = time.monotonic()
    r = requests.get(url, timeout=20)
    return r.status_code, time.monotonic() - started, r.content


def test_each_fault_type_reaches_traffic_and_leaves_with_its_resource(sidecar: SidecarProcess, kube: Kube) -> None:
    kube.apply(fault_manifest("slow", agent="web", params={"delayMs": 400}))
    wait_for(lambda: sidecar.enforced() == ["slow"], timeout=10, what="latency fault enforced")
    status, elapsed, _ = _timed_get(f"{sidecar.url}/echo")
    assert status == 200 and elapsed >= 0.4
    # The operator hears back that the sidecar enforces it.
    wait_for(lambda: kube.condition("agent", "web", "FaultActive").get("reason") == "FaultsApplied", timeout=15, what="FaultsApplied")
    kube.delete("fault", "slow")

    kube.apply(fault_manifest("teapot", agent="web", type_="Error", params={"statusCode": 429, "body": "slow down"}))
    wait_for(lambda: sidecar.enforced() == ["teapot"], timeout=10, what="error fault enforced")
    status, elapsed, body = _timed_get(f"{sidecar.url}/echo")
    assert (status, body) == (429, b"slow down") and elapsed < 0.4  # the latency fault is gone
    kube.delete("fault", "teapot")

    kube.apply(fault_manifest("down", agent="web", type_="Crash"))
    wait_for(lambda: sidecar.enforced() == ["down"], timeout=10, what="crash fault enforced")
    status, _, body = _timed_get(f"{sidecar.url}/echo")
    assert status == 503 and json.loads(body)["fault"] == "down"
    # A crashed agent fails its health probes too, whatever the agent itself says.
    wait_for(lambda: requests.get(f"{sidecar.admin_url}/readyz", timeout=2).status_code == 503, timeout=5, what="readyz 503")
    assert "crash fault down" in sidecar.state()["probe"]["lastError"]
    kube.delete("fault", "down")
    wait_for(lambda: sidecar.enforced() == [], timeout=10, what="no fault enforced")
    assert _timed_get(f"{sidecar.url}/echo")[0] == 200
    wait_for(lambda: requests.get(f"{sidecar.admin_url}/readyz", timeout=2).status_code == 200, timeout=5, what="readyz 200")
    metrics = sidecar.metrics_text()
    for kind in ("Latency", "Error", "Crash"):
        assert f'agentops_sidecar_faults_injected_total{{type="{kind}"}}' in metrics


def test_percentage_hits_a_share_of_requests(sidecar: SidecarProcess, kube: Kube) -> None:
    manifest = json.loads(fault_manifest("half", agent="web", type_="Error", params={"statusCode": 500}))
    manifest["spec"]["match"] = {"percentage": 50}
    kube.apply(json.dumps(manifest))
    wait_for(lambda: sidecar.enforced() == ["half"], timeout=10, what="fault enforced")
    codes = [requests.get(f"{sidecar.url}/echo", timeout=5).status_code for _ in range(300)]
    # Binomial(300, 0.5): outside 100..200 has probability below 1e-8.
    assert 100 <= codes.count(500) <= 200 and codes.count(500) + codes.count(200) == 300


def test_withdrawn_latency_fault_releases_waiting_requests(sidecar: SidecarProcess, kube: Kube) -> None:
    kube.apply(fault_manifest("long", agent="web", params={"delayMs": 20000}))
    wait_for(lambda: sidecar.enforced() == ["long"], timeout=10, what="fault enforced")
    import threading

    result: list[tuple[int, float, bytes]] = []
    waiter = threading.Thread(target=lambda: result.append(_timed_get(f"{sidecar.url}/echo")))
    waiter.start()
    time.sleep(0.5)  # let the request enter its injected delay
    kube.delete("fault", "long")
    waiter.join(15)
    assert result and result[0][0] == 200 and result[0][1] < 10, result


def test_supervisor_restarts_the_agent_and_a_restart_cures_a_crash(operator: OperatorProcess, kube: Kube, tmp_path: Path) -> None:
    kube.apply(agent_manifest("web", runtime="Process"))  # restarts go through the supervising sidecar
    port = free_port()
    sc = _sidecar(operator, tmp_path, port, command=[sys.executable, UPSTREAM_SCRIPT, str(port)])
    sc.start()
    try:
        first = wait_for(lambda: (s := sc.state())["probe"]["ok"] and s, timeout=20, what="supervised agent up")
        # The agent dies: the supervisor starts a new instance.
        os.kill(first["supervisedPid"], signal.SIGKILL)
        second = wait_for(lambda: (s := sc.state())["probe"]["ok"] and s["supervisedPid"] not in (None, first["supervisedPid"]) and s,
                          timeout=20, what="agent restarted after it died")
        assert second["instance"]["id"] != first["instance"]["id"] and second["instance"]["restarts"] == 1

        kube.apply(fault_manifest("down", agent="web", type_="Crash"))
        wait_for(lambda: sc.enforced() == ["down"], timeout=10, what="crash fault enforced")
        assert requests.get(f"{sc.url}/echo", timeout=5).status_code == 503
        # The operator asks for a restart (the restart annotation): exactly one restart,
        # and the crash fault ends for the new instance: the sidecar drops it on its own
        # when the instance changes, and the operator stops assigning it to this agent.
        kube.cluster.kubectl("annotate", "-n", kube.namespace, "agent", "web", "agentops.dev/restart=first")
        third = wait_for(lambda: (s := sc.state())["supervisedPid"] not in (None, second["supervisedPid"]) and s["probe"]["ok"] and s,
                         timeout=20, what="agent restarted on request")
        assert third["enforced"] == []
        assert requests.get(f"{sc.url}/echo", timeout=5).status_code == 200
        wait_for(lambda: sc.state()["assigned"] == [], timeout=10, what="the cured crash no longer assigned")
        assert kube.status("fault", "down")["phase"] == "Active" and kube.status("fault", "down")["curedTargets"] == ["web"]
        # Reports name the new instance; the operator shows it.
        wait_for(lambda: third["instance"]["id"] in kube.status("agent", "web").get("telemetry", {}).get("instances", []),
                 timeout=15, what="new instance in Agent status")
        time.sleep(2)  # level-based: the same annotation value must not restart it again
        assert sc.state()["supervisedPid"] == third["supervisedPid"]
        assert 'agentops_sidecar_agent_restarts_total{reason="requested"} 1.0' in sc.metrics_text()
        assert 'agentops_sidecar_agent_restarts_total{reason="exited"} 1.0' in sc.metrics_text()
    finally:
        sc.stop()
    # The supervised agent went with its sidecar.
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
