"""Prometheus' own linter on what AgentOps exports and on its alerting rules.

* `promtool check metrics` on the operator's and a sidecar's /metrics after real
  traffic: the real operator, a real sidecar supervising the sample chat agent
  (runtime Process), requests through the sidecar, a crash fault that healing cures
  with a restart — so counters, histograms and labelled series all hold samples.
* `promtool check rules` on the rule groups of the monitoring overlay's
  PrometheusRule, and `promtool test rules` on synthetic series: each alert fires when
  it should and not before.
* The overlay renders with kustomize into what the Prometheus Operator and Grafana read.

promtool comes from Debian's `prometheus` package (hack/install-promtool.sh installs it
when run as root); without it these tests fail and say what to install.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import requests
import yaml
from operator_harness import Kube, OperatorProcess, fault_manifest, wait_for
from prometheus_client.parser import text_string_to_metric_families
from sidecar_harness import SidecarProcess, Traffic
from test_original_workflow import REQUESTS
# `chat`: the real operator and a real sidecar supervising the sample chat agent.
from test_self_healing_workflow import QUICK, chat  # noqa: F401

from agentops_operator.injection import InjectionConfig, decide

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "manifests" / "overlays" / "monitoring"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = subprocess.run(["bash", str(REPO / "hack" / "install-promtool.sh")], capture_output=True, text=True, timeout=600)
    if found.returncode != 0:
        pytest.fail(f"promtool is needed (Debian package 'prometheus'; `bash hack/install-promtool.sh` as root installs it):\n"
                    f"{found.stderr}", pytrace=False)
    return found.stdout.strip().splitlines()[-1]


def run_promtool(promtool: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], input=input, capture_output=True, text=True, timeout=60)


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) → value for one /metrics body."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in found.items() if n == name and set(labels.items()) <= set(ls))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("chat", [QUICK], indirect=True)
def test_operator_and_sidecar_metrics_pass_promtool_with_real_traffic(
        chat: tuple[OperatorProcess, SidecarProcess], kube: Kube, tmp_path: Path, promtool: str) -> None:
    operator, sidecar = chat
    with Traffic(sidecar.url, *REQUESTS["chat"]):
        wait_for(lambda: kube.status("agent", "chat").get("phase") == "Healthy", timeout=40, what="chat Healthy")
        kube.apply(fault_manifest("crash-chat", agent="chat", type_="Crash", duration="10m"))
        # Healing restarts the agent through its sidecar and verifies the new instance.
        wait_for(lambda: operator.metric("agentops_restarts_total", result="Verified") >= 1, timeout=90,
                 what="a verified restart")
    bodies = {"operator": operator.get("/metrics", timeout=5).text, "sidecar": sidecar.metrics_text()}

    for who, body in bodies.items():
        (tmp_path / f"{who}.prom").write_text(body)
        checked = run_promtool(promtool, "check", "metrics", input=body)
        problems = (checked.stdout + checked.stderr).strip()
        assert checked.returncode == 0 and not problems, f"promtool check metrics on the {who}'s /metrics:\n{problems}"

    # Each kind of series carries samples, so the lint saw the real thing.
    op, sc = samples(bodies["operator"]), samples(bodies["sidecar"])
    assert value(op, "agentops_telemetry_reports_total", result="accepted") > 0
    assert value(op, "agentops_restarts_total", runtime="Process", result="Started") >= 1
    assert value(op, "agentops_incidents_total", state="Healed") >= 1
    assert value(op, "agentops_reconcile_pass_duration_seconds_count") > 0
    assert value(op, "agentops_agents", phase="Healthy") + value(op, "agentops_agents", phase="Unhealthy") == 1
    assert value(op, "agentops_faults", phase="Active") == 1
    assert value(sc, "agentops_sidecar_requests_total", code="2xx") > 0
    assert value(sc, "agentops_sidecar_request_duration_seconds_count") > 0
    assert value(sc, "agentops_sidecar_faults_injected_total", type="Crash") > 0
    assert value(sc, "agentops_sidecar_agent_restarts_total", reason="requested") >= 1
    assert value(sc, "agentops_sidecar_telemetry_reports_total", result="accepted") > 0
    assert value(sc, "agentops_sidecar_fault_overdue_seconds", deadline="expiry") < 1.0

    # No label value names an object: series stay bounded at 10,000 agents and faults.
    names = {"chat", "crash-chat", kube.namespace}
    leaked = {(n, ls) for found in (op, sc) for (n, ls) in found if names & {v for _, v in ls}}
    assert not leaked, leaked


def rule_groups() -> dict[str, Any]:
    """The `spec` of the overlay's PrometheusRule: a Prometheus rule file."""
    rule = yaml.safe_load((OVERLAY / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    return dict(rule["spec"])


def test_alerting_rules_pass_promtool(promtool: str, tmp_path: Path) -> None:
    rules = tmp_path / "agentops.rules.yaml"
    rules.write_text(yaml.safe_dump(rule_groups()))
    checked = run_promtool(promtool, "check", "rules", "--lint=all", "--lint-fatal", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout
    for group in rule_groups()["groups"]:
        for rule in group["rules"]:
            assert rule["for"] and rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


OPERATOR = 'namespace="agentops-system", job="agentops-operator"'
SIDECAR = 'namespace="team-a", pod="chat-7d9f", agent="chat"'


def fired(alert: str, at: str, **labels: str) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": labels}] if labels else []}


# Synthetic series and when each alert must (not) fire. Annotations are stripped from
# the rules for this (promtool compares them verbatim); `check rules` above parses their
# templates.
ALERT_TESTS = [{
    "interval": "1m",
    "input_series": [
        {"series": f'agentops_agents{{phase="Unhealthy", {OPERATOR}}}', "values": "1x40"},
        {"series": f'agentops_healing_escalations_total{{reason="RestartBudgetExhausted", {OPERATOR}}}', "values": "0 0 0 1x40"},
        {"series": f'agentops_agents_healing{{state="Stalled", {OPERATOR}}}', "values": "0 0 0 1x40"},
        {"series": f'agentops_sidecar_fault_overdue_seconds{{deadline="expiry", {SIDECAR}}}', "values": "0 0 0 60+60x10"},
        {"series": f'agentops_sidecar_fault_overdue_seconds{{deadline="lease", {SIDECAR}}}', "values": "0x13"},
        # chat's calls: 60 a minute; from minute 5 on, 40 of them fail (67 %). Its tokens:
        # 20,000 a minute until minute 5, then 2M a minute (a loop).
        {"series": f'agentops_model_calls_total{{gen_ai_provider_name="openai", {SIDECAR}}}', "values": "0+60x60"},
        {"series": f'agentops_model_errors_total{{gen_ai_provider_name="openai", error_type="rate_limit", {SIDECAR}}}',
         "values": "0x5 40+40x55"},
        {"series": f'gen_ai_client_token_usage_sum{{gen_ai_provider_name="openai", gen_ai_token_type="input", {SIDECAR}}}',
         "values": "0+20000x5 2100000+2000000x55"},
    ],
    "alert_rule_test": [
        fired("AgentOpsAgentsUnhealthy", "9m"),
        fired("AgentOpsAgentsUnhealthy", "11m", severity="warning", namespace="agentops-system", job="agentops-operator"),
        fired("AgentOpsHealingEscalated", "3m"),
        fired("AgentOpsHealingEscalated", "5m", severity="warning", namespace="agentops-system", job="agentops-operator",
              reason="RestartBudgetExhausted"),
        fired("AgentOpsHealingEscalated", "25m"),  # the increase has left the 15m window
        fired("AgentOpsAgentsStalled", "20m"),
        fired("AgentOpsAgentsStalled", "34m", severity="critical", namespace="agentops-system", job="agentops-operator"),
        fired("AgentOpsFaultEnforcedPastDeadline", "3m"),
        fired("AgentOpsFaultEnforcedPastDeadline", "5m", severity="critical", namespace="team-a", pod="chat-7d9f",
              agent="chat", deadline="expiry"),
        fired("AgentOpsModelErrorRateHigh", "14m"),  # over half for 10m only from ~minute 13, then `for: 10m`
        fired("AgentOpsModelErrorRateHigh", "30m", severity="warning", namespace="team-a", agent="chat"),
        fired("AgentOpsTokenBurn", "4m"),
        fired("AgentOpsTokenBurn", "30m", severity="critical", namespace="team-a", agent="chat"),
    ],
}]


def test_alerts_fire_when_they_should(promtool: str, tmp_path: Path) -> None:
    groups = rule_groups()
    for group in groups["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m",
                                                         "tests": ALERT_TESTS}))
    tested = run_promtool(promtool, "test", "rules", str(tmp_path / "tests.yaml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_monitoring_overlay_renders(cluster: Any) -> None:
    """With kubectl's own kustomize, without a warning, on top of the base."""
    rendered = cluster.kubectl("kustomize", str(OVERLAY))
    assert not rendered.stderr.strip(), rendered.stderr
    docs = list(yaml.safe_load_all(rendered.stdout))
    assert ("Deployment", "agentops-operator") in {(d["kind"], d["metadata"]["name"]) for d in docs}  # the base
    ours = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["metadata"].get("namespace") == "agentops-system"}
    assert {("ServiceMonitor", "agentops-operator"), ("PodMonitor", "agentops-sidecars"), ("PrometheusRule", "agentops"),
            ("ConfigMap", "agentops-grafana-dashboard")} <= set(ours)
    dashboard = ours[("ConfigMap", "agentops-grafana-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["agentops.json"])["uid"] == "agentops-overview"
    assert ours[("ServiceMonitor", "agentops-operator")]["spec"]["endpoints"] == [{
        "port": "api", "path": "/metrics", "interval": "30s", "scheme": "https",
        "tlsConfig": {"serverName": "agentops-operator.agentops-system.svc",
                      "ca": {"secret": {"name": "agentops-operator-tls", "key": "ca.crt"}}}}]
    assert ours[("PodMonitor", "agentops-sidecars")]["spec"]["podMetricsEndpoints"][0]["port"] == "admin"
    # The monitors select what the other manifests deploy: the operator's Service by its
    # labels and port name, the sample agents' pods by label and the sidecar's port name.
    service = next(d for d in docs if (d["kind"], d["metadata"]["name"]) == ("Service", "agentops-operator"))
    monitor = ours[("ServiceMonitor", "agentops-operator")]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert "api" in {p["name"] for p in service["spec"]["ports"]}
    samples_ = yaml.safe_load_all(cluster.kubectl("kustomize", str(REPO / "manifests" / "samples" / "cluster")).stdout)
    agents = [d["spec"]["template"] for d in samples_ if d["kind"] == "Deployment"
              and "agentops.dev/agent" in d["spec"]["template"]["metadata"]["labels"]]
    # The sidecar - and its port `admin` - comes into those pods by injection.
    config = InjectionConfig(image="agentops:dev")
    injected = [jsonpatch.apply_patch(t, decide(t, "agents-demo", config).patch or []) for t in agents]
    assert injected and all("admin" in {p["name"] for c in t["spec"]["initContainers"] for p in c.get("ports", ())}
                            and t["metadata"]["labels"]["agentops.dev/agent"] for t in injected)
