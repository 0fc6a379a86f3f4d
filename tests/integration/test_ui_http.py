"""The UI over HTTP against the real control plane, with its own read-only credentials.

The UI runs as a subprocess (`python -m agentops ui`) whose kubeconfig holds only a
token of the `agentops-ui` ServiceAccount from manifests/base/ui-rbac.yaml (see
ui_harness.readonly_kubeconfig), so every test here also proves the UI needs nothing
beyond get/list/watch on agents, faults, resiliencechecks and events.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
import yaml
from operator_harness import Kube, OperatorProcess, agent_manifest, fault_manifest, report, wait_for
from ui_harness import UI_RBAC, UI_SERVICE_ACCOUNT, UIProcess, readonly_kubeconfig

from agentops.processes import terminate

if TYPE_CHECKING:  # conftest is not imported at run time: fixtures arrive by name
    from conftest import Cluster

HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;"
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def get(ui: UIProcess, path: str, **kwargs: Any) -> requests.Response:
    return requests.get(ui.url + path, timeout=5, **kwargs)


def api(ui: UIProcess, path: str) -> Any:
    r = get(ui, path)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def test_pages_and_json_show_agents_faults_and_events(operator: OperatorProcess, kube: Kube, ui: UIProcess) -> None:
    ns = kube.namespace
    kube.apply(agent_manifest("alpha", labels={"tier": "front"}))
    kube.apply(agent_manifest("beta"))
    wait_for(lambda: operator.post_telemetry(report("alpha", ns, latency_ms=40)).status_code == 202, what="report accepted")
    kube.apply(fault_manifest("slow", agent="alpha", duration="120s"))

    def alpha() -> dict[str, Any] | None:
        found = [a for a in api(ui, "/api/agents") if a["name"] == "alpha"]
        return found[0] if found and found[0]["phase"] == "Healthy" and found[0]["activeFaults"] else None

    a = wait_for(alpha, timeout=20, what="alpha Healthy with its fault in /api/agents")
    assert a["namespace"] == ns and a["labels"] == {"tier": "front"}
    assert [f["name"] for f in a["activeFaults"]] == ["slow"] and a["latencyP95Ms"] is not None
    assert a["lastReportTime"] and a["restartCount"] == 0

    html = get(ui, "/").text
    card = re.search(rf'<article class="agent-card" data-agent="{ns}/alpha" data-phase="Healthy">.*?</article>', html)
    assert card is not None, html
    assert '<span class="phase-badge phase-Healthy">Healthy</span>' in card.group(0)
    assert 'data-fault="slow"' in card.group(0) and "slow (Latency)" in card.group(0)
    assert f'<a href="/agents/{ns}/alpha">' in card.group(0) and '<svg class="latency-chart"' in card.group(0)
    assert f'data-agent="{ns}/beta" data-phase="Unknown"' in html

    faults = wait_for(lambda: [f for f in api(ui, "/api/faults") if f["phase"] == "Active"], what="fault Active")
    assert [(f["name"], f["target"], f["type"], f["targets"]) for f in faults] == [("slow", "alpha", "Latency", ["alpha"])]
    assert 0 < faults[0]["secondsLeft"] <= 120
    row = re.search(rf'<tr data-fault="{ns}/slow" data-phase="Active">.*?</tr>', get(ui, "/faults").text)
    assert row is not None and " left</time>" in row.group(0)

    # The operator's Events reach the agent page (its own and its fault's) and /api/events.
    wait_for(lambda: any(e["reason"] == "FaultActivated" for e in api(ui, "/api/events")), what="FaultActivated in /api/events")
    page = get(ui, f"/agents/{ns}/alpha").text
    for marker in ('<table id="conditions">', '<section id="incidents">', '<section id="events">', '<section id="faults">'):
        assert marker in page, marker
    assert "FaultActivated" in page and "TelemetryFresh" in page
    detail = api(ui, f"/api/agents/{ns}/alpha")
    assert detail["agent"]["phase"] == "Healthy" and [f["name"] for f in detail["faults"]] == ["slow"]
    assert detail["latencyHistory"] and any(e["reason"] == "FaultActivated" for e in detail["events"])
    assert get(ui, f"/agents/{ns}/nobody").status_code == 404
    assert get(ui, f"/api/agents/{ns}/nobody").status_code == 404


def test_the_ui_account_can_read_and_nothing_else(cluster: Cluster, crds: Any, tmp_path: Path) -> None:
    readonly_kubeconfig(cluster, tmp_path / "ui.kubeconfig")  # applies the RBAC

    def can(*args: str) -> bool:
        out = cluster.kubectl("auth", "can-i", *args, f"--as={UI_SERVICE_ACCOUNT}", check=False)
        return out.stdout.strip() == "yes"

    for verb in ("get", "list", "watch"):
        for resource in ("agents.agentops.dev", "faults.agentops.dev", "resiliencechecks.agentops.dev", "events"):
            assert can(verb, resource, "-A"), (verb, resource)
    for args in (("create", "faults.agentops.dev"), ("delete", "agents.agentops.dev"), ("patch", "agents.agentops.dev/status"),
                 ("create", "resiliencechecks.agentops.dev"), ("patch", "resiliencechecks.agentops.dev/status"),
                 ("update", "resiliencechecks.agentops.dev"),
                 ("update", "faults.agentops.dev"), ("create", "events"), ("list", "secrets"), ("get", "secrets"),
                 ("watch", "secrets"), ("list", "pods"), ("list", "configmaps"), ("list", "namespaces"), ("create", "serviceaccounts/token")):
        assert not can(*args, "-A"), args
    # And the manifest itself: no wildcard, nothing beyond read verbs.
    docs = list(yaml.safe_load_all(UI_RBAC.read_text()))
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    for rule in role["rules"]:
        assert set(rule["verbs"]) == {"get", "list", "watch"}
        assert "*" not in rule["resources"] + rule["apiGroups"] and "secrets" not in rule["resources"]


def test_every_route_refuses_every_write_method(kube: Kube, ui: UIProcess) -> None:
    ns = kube.namespace
    kube.apply(agent_manifest("alpha"))
    kube.apply(fault_manifest("f1", agent="alpha"))
    wait_for(lambda: [a for a in api(ui, "/api/agents") if a["name"] == "alpha"], what="alpha in the UI")
    routes = ["/", "/faults", f"/agents/{ns}/alpha", f"/agents/{ns}/nobody", "/api/agents", f"/api/agents/{ns}/alpha",
              "/api/faults", "/api/events", "/live", "/healthz", "/readyz", "/static/live.js", "/no-such-page", "/api",
              "/checks", f"/checks/{ns}/nobody", "/api/checks", f"/api/checks/{ns}/nobody"]
    for route in routes:
        for method in WRITE_METHODS:
            r = requests.request(method, ui.url + route, json={"spec": {}}, timeout=5)
            assert r.status_code == 405, (method, route, r.status_code)
            assert r.headers["Allow"] == "GET, HEAD", (method, route)
        assert requests.head(ui.url + route, timeout=5).status_code in (200, 404), route
    assert kube.get("fault", "f1")["metadata"]["name"] == "f1"  # nothing changed


def test_html_from_the_cluster_renders_as_text(cluster: Cluster, kube: Kube, ui: UIProcess) -> None:
    ns = kube.namespace
    body = json.loads(agent_manifest("alpha"))
    body["metadata"]["annotations"] = {"note": HOSTILE}
    kube.apply(json.dumps(body))
    kube.apply(fault_manifest("f1", agent="alpha"))
    # No operator runs in this test, so a status written as admin stays as written.
    condition = {"type": "Ready", "status": "False", "reason": "Injected", "message": HOSTILE,
                 "lastTransitionTime": "2024-01-01T00:00:00Z"}
    cluster.kubectl("patch", "-n", ns, "agent", "alpha", "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"phase": "Unhealthy", "conditions": [condition]}}))
    cluster.kubectl("patch", "-n", ns, "fault", "f1", "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"phase": "Failed", "message": HOSTILE}}))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    kube.apply(json.dumps({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "hostile"},
        "involvedObject": {"apiVersion": "agentops.dev/v1alpha1", "kind": "Agent", "name": "alpha", "namespace": ns},
        "reason": "Injected", "message": HOSTILE, "type": "Warning", "count": 1,
        "firstTimestamp": now, "lastTimestamp": now, "source": {"component": "test"},
    }))
    wait_for(lambda: any(e["message"] == HOSTILE for e in api(ui, "/api/events")), what="the Event in the UI")
    wait_for(lambda: any(f["message"] == HOSTILE for f in api(ui, "/api/faults")), what="the fault message in the UI")
    pages = {path: get(ui, path).text for path in ("/", f"/agents/{ns}/alpha", "/faults")}
    for path, html in pages.items():
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert len(re.findall(r"<script\b", html)) == 1, path  # the page's own script only
    assert ESCAPED in pages["/"]  # the annotation
    agent_page = pages[f"/agents/{ns}/alpha"]
    assert agent_page.count(ESCAPED) >= 3  # annotation, condition message, Event message (table and timeline)
    assert ESCAPED in pages["/faults"]
    assert "<" not in get(ui, "/api/events").text  # the JSON mirror spells it \\u003c


def test_live_stream_announces_a_new_fault_and_the_ui_stops_cleanly(kube: Kube, ui: UIProcess) -> None:
    kube.apply(agent_manifest("alpha"))
    wait_for(lambda: [a for a in api(ui, "/api/agents") if a["name"] == "alpha"], what="alpha in the UI")
    with requests.get(ui.url + "/live", stream=True, timeout=10) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        lines = stream.iter_lines(decode_unicode=True)
        assert next(lines).startswith("retry:")
        applied = time.monotonic()
        kube.apply(fault_manifest("new-fault", agent="alpha"))
        for line in lines:
            if line.startswith("data:") and json.loads(line[5:]) == {"kind": "Fault", "namespace": kube.namespace,
                                                                       "name": "new-fault", "type": "ADDED"}:
                break
            assert time.monotonic() - applied < 5, "no change event within 5 s"
    partial = get(ui, "/", headers={"X-Partial": "1"}).text
    assert "<html" not in partial and 'data-fault="new-fault"' in partial  # shown at once, as pending
    # SIGTERM: a clean exit, promptly, even with watches open.
    assert ui.proc is not None
    started = time.monotonic()
    assert terminate(ui.proc, grace_s=10) == 0
    ui.proc = None
    assert time.monotonic() - started < 5
    assert "listening on http://127.0.0.1:" in ui.log_path.read_text()
