"""The UI's ResilienceCheck pages over HTTP: the real UI process, with its own read-only
credentials (ui_harness), on the real API server with the real CRD.

No operator runs in these tests: each test writes the check's status itself, through
the status subresource as the operator would, so the pages are held to a status known in
advance (verdicts, fault windows, a run still open). The operator's runner that writes
such a status for real is tested in test_resilience_checks.py.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

import requests
from operator_harness import Kube, agent_manifest, wait_for
from ui_harness import UIProcess

if TYPE_CHECKING:  # conftest is not imported at run time: fixtures arrive by name
    from conftest import Cluster

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
STARTED = "2024-05-01T12:00:00Z"


def check_manifest(name: str, agent: str) -> str:
    return json.dumps({
        "apiVersion": "agentops.dev/v1alpha1", "kind": "ResilienceCheck", "metadata": {"name": name},
        "spec": {"agent": agent, "passingScore": 80, "experiments": [
            {"name": "slow", "weight": 1, "fault": {"type": "Latency", "duration": "60s", "latency": {"delayMs": 800}},
             "expect": {"detectedWithin": "30s", "maxLatencyP95Ms": 2000}},
            {"name": "crash", "weight": 2, "fault": {"type": "Crash", "duration": "30s"},
             "expect": {"recoveryDeadline": "1m"}},
        ]},
    })


def series(points: int) -> list[dict[str, Any]]:
    """Every 10 s: latency up while `slow` is on (20-80 s), errors while `crash` is on (100 s on)."""
    out = []
    for i in range(points):
        t = i * 10
        p95 = 900.0 if 20 <= t < 80 else 60.0
        err = 0.4 if t >= 100 else 0.0
        out.append({"offsetSeconds": t, "requests": 50, "errorRate": err, "latencyP95Ms": p95,
                    "phase": "Unhealthy" if err else ("Degraded" if p95 > 500 else "Healthy")})
    return out


def slow_result() -> dict[str, Any]:
    return {"name": "slow", "faultType": "Latency", "weight": 1, "state": "Done", "verdict": "Resilient", "findings": [],
            "fault": "web-slow", "faultStartedAt": "2024-05-01T12:00:20Z", "faultEndedAt": "2024-05-01T12:01:20Z",
            "detectionSeconds": 8.0, "recoverySeconds": 65.0, "restarts": 0,
            "during": {"seconds": 60, "requests": 300, "errors": 0, "errorRate": 0.0, "latencyP95Ms": 900.0}}


def status_running() -> dict[str, Any]:
    """Run 1 under way: `slow` judged Resilient, `crash` still injecting (its window open)."""
    crash = {"name": "crash", "faultType": "Crash", "weight": 2, "state": "Observing",
             "faultStartedAt": "2024-05-01T12:01:40Z", "restarts": 1, "incident": "inc-1", "incidentState": "Open"}
    return {"phase": "Running", "progress": "1/2", "observedGeneration": 1, "runs": [{
        "id": 1, "trigger": "Created", "phase": "Running", "generation": 1, "startedAt": STARTED,
        "baseline": {"seconds": 30, "requests": 150, "errors": 0, "errorRate": 0.0, "latencyP95Ms": 55.0},
        "experiments": [slow_result(), crash], "series": series(13)}]}


def status_completed() -> dict[str, Any]:
    """Run 1 judged: `crash` Vulnerable (error budget blown), score 33, not passed."""
    crash = {"name": "crash", "faultType": "Crash", "weight": 2, "state": "Done", "verdict": "Vulnerable",
             "findings": ["error rate 40.0 % over the fault's window, over the budget 5.0 %"],
             "faultStartedAt": "2024-05-01T12:01:40Z", "faultEndedAt": "2024-05-01T12:02:10Z",
             "detectionSeconds": 6.0, "recoverySeconds": 50.0, "restarts": 1, "incident": "inc-1", "incidentState": "Healed",
             "during": {"seconds": 30, "requests": 150, "errors": 60, "errorRate": 0.4, "latencyP95Ms": 70.0}}
    running = status_running()["runs"][0]
    run = {**running, "phase": "Completed", "finishedAt": "2024-05-01T12:03:00Z", "score": 33, "passed": False,
           "experiments": [slow_result(), crash], "series": series(18)}
    return {"phase": "Completed", "progress": "2/2", "score": 33, "summary": "1 Resilient, 1 Vulnerable",
            "observedGeneration": 1, "runs": [run],
            "conditions": [{"type": "Passed", "status": "False", "reason": "VulnerableExperiment",
                            "message": "crash (weight 2) is Vulnerable", "lastTransitionTime": "2024-05-01T12:03:00Z"}]}


def write_status(cluster: Cluster, kube: Kube, name: str, status: dict[str, Any]) -> None:
    """As the operator does: through the status subresource (a merge patch replaces runs whole)."""
    cluster.kubectl("patch", "-n", kube.namespace, "resiliencecheck", name, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": status}))


def get(ui: UIProcess, path: str, **kwargs: Any) -> requests.Response:
    return requests.get(ui.url + path, timeout=5, **kwargs)


def test_check_pages_show_the_run_as_written_and_announce_changes(cluster: Cluster, kube: Kube, ui: UIProcess) -> None:
    ns = kube.namespace
    kube.apply(agent_manifest("web"))
    kube.apply(check_manifest("web-check", "web"))
    listed = wait_for(lambda: [c for c in get(ui, "/api/checks").json() if c["name"] == "web-check"], what="the check in /api/checks")
    assert listed[0]["phase"] == "Pending" and listed[0]["agent"] == "web" and listed[0]["passed"] is None
    assert "No run yet" in get(ui, f"/checks/{ns}/web-check").text

    write_status(cluster, kube, "web-check", status_running())
    wait_for(lambda: (get(ui, f"/api/checks/{ns}/web-check").json().get("run") or {}).get("id") == 1, what="run 1 in the UI")
    html = get(ui, f"/checks/{ns}/web-check").text
    assert f'<a href="/agents/{ns}/web" class="check-agent">web</a>' in html
    assert re.search(r'<tr data-experiment="slow" data-verdict="Resilient">.*?verdict-Resilient.*?8\.0 s.*?expected ≤ 30\.0 s', html)
    assert re.search(r'<tr data-experiment="crash" data-verdict="">.*?pending.*?inc-1', html)
    svg = re.search(r"<svg [^>]*class=\"run-chart\".*?</svg>", html, re.S)
    assert svg is not None and "style=" not in svg.group(0)
    bands = re.findall(r'<g class="fault-band ([^"]*)" data-experiment="(\w+)" data-x0="([\d.]+)" data-x1="([\d.]+)"', svg.group(0))
    assert [(b[0], b[1]) for b in bands] == [("band-Resilient", "slow"), ("band-open", "crash")]
    assert float(bands[0][2]) < float(bands[0][3]) <= float(bands[1][2]) < float(bands[1][3])
    assert f'href="/checks/{ns}/web-check"' in get(ui, "/").text  # the agent's card links its check
    assert f'href="/checks/{ns}/web-check"' in get(ui, f"/agents/{ns}/web").text

    # A status change reaches /live as a ResilienceCheck change; the page then shows the verdict.
    with requests.get(ui.url + "/live", stream=True, timeout=10) as stream:
        lines = stream.iter_lines(decode_unicode=True)
        assert next(lines).startswith("retry:")
        written = time.monotonic()
        write_status(cluster, kube, "web-check", status_completed())
        for line in lines:
            if line.startswith("data:") and json.loads(line[5:]) == {"kind": "ResilienceCheck", "namespace": ns,
                                                                       "name": "web-check", "type": "MODIFIED"}:
                break
            assert time.monotonic() - written < 10, "no change event within 10 s"
    partial = get(ui, f"/checks/{ns}/web-check", headers={"X-Partial": "1"}).text
    assert "<html" not in partial and '<tr data-experiment="crash" data-verdict="Vulnerable">' in partial
    assert 'class="run-score"' in partial and ">33<" in partial and "Not passed" in partial
    row = re.search(rf'<tr data-check="{ns}/web-check" data-phase="Completed">.*?</tr>', get(ui, "/checks").text)
    assert row is not None and ">2/2<" in row.group(0) and ">33<" in row.group(0)
    assert get(ui, f"/checks/{ns}/web-check?run=1").status_code == 200
    assert get(ui, f"/checks/{ns}/web-check?run=5").status_code == 404
    assert get(ui, f"/checks/{ns}/nobody").status_code == 404

    # Read-only on the new routes too.
    for route in ("/checks", f"/checks/{ns}/web-check", "/api/checks", f"/api/checks/{ns}/web-check"):
        for method in WRITE_METHODS:
            r = requests.request(method, ui.url + route, json={"spec": {}}, timeout=5)
            assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD", (method, route)
    assert kube.status("resiliencecheck", "web-check")["score"] == 33  # nothing changed
