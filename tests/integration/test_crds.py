"""The Agent and Fault CRDs on a real kube-apiserver: install, explain, defaults, columns, validation.

The schema is the first line of defence (a bad Fault never reaches the operator), so the
rejections are checked through `kubectl apply` exactly as a user meets them: non-zero
exit and an error that names the offending field.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from agentops_operator.resources import HealingPolicy, HealthThresholds, RuntimeSpec

if TYPE_CHECKING:  # conftest is not imported at run time: fixtures arrive by name
    from conftest import Cluster

Manifest = dict[str, Any]

API_VERSION = "agentops.dev/v1alpha1"


def agent(name: str = "chat", **spec: Any) -> Manifest:
    return {"apiVersion": API_VERSION, "kind": "Agent", "metadata": {"name": name}, "spec": spec}


def model_fault(name: str = "limited-chat", **spec: Any) -> Manifest:
    """A fault on the agent's model calls: a rate limit on its OpenAI chat calls."""
    m = fault(name, type="ModelRateLimit", model={"providers": ["OpenAI"], "operations": ["chat"], "retryAfter": "2s"})
    del m["spec"]["latency"]
    m["spec"].update(spec)
    return m


def fault(name: str = "slow-chat", **spec: Any) -> Manifest:
    body: Manifest = {
        "target": {"agent": "chat"},
        "type": "Latency",
        "latency": {"delayMs": 500},
        "duration": "5m",
    }
    body.update(spec)
    return {"apiVersion": API_VERSION, "kind": "Fault", "metadata": {"name": name}, "spec": body}


def apply(
    cluster: Cluster, namespace: str, manifest: Manifest, check: bool = True
) -> subprocess.CompletedProcess[str]:
    # JSON is valid YAML, and unlike a YAML dump it cannot silently retype "True" or "1h".
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest), check=check)


def get_json(cluster: Cluster, namespace: str, resource: str) -> Manifest:
    result: Manifest = json.loads(cluster.kubectl("get", "-n", namespace, resource, "-o", "json").stdout)
    return result


# --- installation and documentation ---------------------------------------------------


def explain(cluster: Cluster, *args: str, deadline: float = 30) -> str:
    """`kubectl explain` output with its line wrapping undone, so phrases can be searched.

    The API server publishes a new CRD's OpenAPI document a moment after the CRD is
    Established, and explain reads that document, so it is polled until it appears.
    """
    give_up = time.monotonic() + deadline
    while True:
        proc = cluster.kubectl("explain", *args, check=time.monotonic() > give_up)
        if proc.returncode == 0:
            return " ".join(proc.stdout.split())
        time.sleep(0.2)


def test_crds_are_established(cluster: Cluster, crds: list[str]) -> None:
    assert "customresourcedefinition.apiextensions.k8s.io/agents.agentops.dev" in crds
    assert "customresourcedefinition.apiextensions.k8s.io/faults.agentops.dev" in crds
    for name in ("agents.agentops.dev", "faults.agentops.dev"):
        crd = json.loads(cluster.kubectl("get", "crd", name, "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", conditions
        assert conditions.get("NamesAccepted") == "True", conditions
        # A non-structural schema would be flagged here (and would disable defaulting/pruning).
        assert "NonStructuralSchema" not in conditions, conditions
        assert set(crd["spec"]["names"]["categories"]) == {"agentops"}
        (version,) = crd["spec"]["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
        assert version["subresources"] == {"status": {}}
    # The API server reports schema problems it tolerates (e.g. unknown formats) as warnings.
    crd_dir = Path(__file__).resolve().parents[2] / "crds"
    proc = cluster.kubectl("replace", "--dry-run=server", "-f", str(crd_dir))
    assert "warning" not in proc.stderr.lower(), proc.stderr


def test_explain_fault_spec_reads_as_a_manual(cluster: Cluster, crds: list[str]) -> None:
    out = explain(cluster, "fault.spec", "--recursive")
    assert "target, type and" in out and "immutable" in out
    for field in ("target", "selector", "matchExpressions", "latency", "delayMs", "jitterMs",
                  "statusCode", "percentage", "duration"):
        assert field in out, field
    duration = explain(cluster, "fault.spec.duration")
    assert "24h" in duration and "no fault outlives its duration" in duration
    percentage = explain(cluster, "fault.spec.match.percentage")
    assert "Default 100" in percentage


def test_explain_agent_health_reads_as_a_manual(cluster: Cluster, crds: list[str]) -> None:
    out = explain(cluster, "agent.spec.health")
    assert "Default 30s" in out  # heartbeatTimeout
    assert "between 5s and 1h" in out  # window
    assert "milliseconds" in out  # latencyP95Ms
    assert "minSamples" in out and "Default 10" in out
    runtime_type = explain(cluster, "agent.spec.runtime.type")
    assert "ENUM: Kubernetes CloudRun Process None" in runtime_type
    assert "rolling restart of that Deployment" in runtime_type


def test_every_schema_field_has_a_description(cluster: Cluster, crds: list[str]) -> None:
    missing: list[str] = []

    def walk(node: Manifest, path: str) -> None:
        if path != ".metadata" and not node.get("description"):
            missing.append(path or "<root>")
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}{{}}")

    for name in ("agents.agentops.dev", "faults.agentops.dev"):
        crd = json.loads(cluster.kubectl("get", "crd", name, "-o", "json").stdout)
        walk(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], "")
    assert missing == []


# --- valid objects and defaults -------------------------------------------------------


def test_agent_defaults_are_applied(cluster: Cluster, crds: list[str], namespace: str) -> None:
    apply(cluster, namespace, agent("chat"))
    spec = get_json(cluster, namespace, "agent/chat")["spec"]
    # Every field is filled in by the API server ...
    assert set(spec["runtime"]) == {"type"}
    assert set(spec["health"]) == {"heartbeatTimeout", "window", "minSamples", "probeFailureThreshold", "latencyP95Ms", "errorRate",
                                   "model"}
    assert set(spec["health"]["latencyP95Ms"]) == set(spec["health"]["errorRate"]) == {"degraded", "unhealthy"}
    # The runaway guards are off unless set: no default fills them in.
    assert set(spec["health"]["model"]) == {"minCalls", "errorRate", "timeToFirstTokenP95Ms"}
    assert set(spec["healing"]) == {"enabled", "unhealthyFor", "verifyTimeout", "budget", "backoff", "onTokenBurn"}
    # ... with the values the operator assumes for a spec without them (the code states each default once).
    assert HealthThresholds.from_spec(spec) == HealthThresholds()
    assert HealingPolicy.from_spec(spec) == HealingPolicy()
    assert RuntimeSpec.from_spec(spec) == RuntimeSpec()


def test_agent_partial_thresholds_keep_nested_defaults(cluster: Cluster, crds: list[str], namespace: str) -> None:
    apply(cluster, namespace, agent(
        "chat",
        runtime={"type": "Kubernetes", "deployment": {"name": "chat"}},
        health={"window": "2m", "latencyP95Ms": {"unhealthy": 8000}, "errorRate": {"degraded": 0.1}},
    ))
    spec = get_json(cluster, namespace, "agent/chat")["spec"]
    assert spec["runtime"] == {"type": "Kubernetes", "deployment": {"name": "chat"}}
    assert spec["health"]["window"] == "2m"
    assert set(spec["health"]["latencyP95Ms"]) == set(spec["health"]["errorRate"]) == {"degraded", "unhealthy"}
    # The siblings of what was given keep their defaults.
    assert HealthThresholds.from_spec(spec) == dataclasses.replace(
        HealthThresholds(), window_s=120.0, latency_p95_unhealthy_ms=8000.0, error_rate_degraded=0.1)


def test_cloud_run_agent_is_accepted(cluster: Cluster, crds: list[str], namespace: str) -> None:
    apply(cluster, namespace, agent(
        "summary",
        runtime={"type": "CloudRun",
                 "cloudRun": {"project": "my-project", "region": "europe-west1", "service": "summary"}},
    ))
    spec = get_json(cluster, namespace, "agent/summary")["spec"]
    assert spec["runtime"]["cloudRun"]["region"] == "europe-west1"


def test_fault_with_named_target_gets_defaults(cluster: Cluster, crds: list[str], namespace: str) -> None:
    apply(cluster, namespace, fault("slow-chat"))
    spec = get_json(cluster, namespace, "fault/slow-chat")["spec"]
    assert spec["target"] == {"agent": "chat"}
    assert spec["match"] == {"percentage": 100}
    assert spec["latency"] == {"delayMs": 500, "jitterMs": 0}
    assert spec["duration"] == "5m"


def test_fault_with_selector_target_gets_defaults(cluster: Cluster, crds: list[str], namespace: str) -> None:
    manifest = fault(
        "broken-tier",
        target={"selector": {
            "matchLabels": {"tier": "frontend"},
            "matchExpressions": [
                {"key": "team", "operator": "In", "values": ["a", "b"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        }},
        type="Error",
        error={},
        match={"percentage": 12.5},
        duration="1h30m",
    )
    del manifest["spec"]["latency"]  # an Error fault must not carry latency parameters
    apply(cluster, namespace, manifest)
    spec = get_json(cluster, namespace, "fault/broken-tier")["spec"]
    assert spec["target"]["selector"]["matchLabels"] == {"tier": "frontend"}
    assert spec["error"] == {"statusCode": 503, "body": ""}
    assert spec["match"] == {"percentage": 12.5}
    assert "latency" not in spec


def test_model_faults_are_accepted_and_keep_their_block(cluster: Cluster, crds: list[str], namespace: str) -> None:
    apply(cluster, namespace, model_fault(stopConditions=[{"tokensPerMinuteAbove": 50000}, {"modelErrorRateAbove": 0.9}]))
    apply(cluster, namespace, model_fault("cut-stream", type="ModelStreamCut", model={"afterChunks": 3, "firstAttempts": 1}))
    apply(cluster, namespace, model_fault("slow-first", type="ModelSlowFirstToken", model={"delay": "3s", "models": ["gpt-4o-mini"]}))
    spec = get_json(cluster, namespace, "fault/limited-chat")["spec"]
    assert spec["model"] == {"providers": ["OpenAI"], "operations": ["chat"], "retryAfter": "2s"}  # no defaults added
    assert spec["match"] == {"percentage": 100}
    assert get_json(cluster, namespace, "fault/cut-stream")["spec"]["model"] == {"afterChunks": 3, "firstAttempts": 1}
    apply(cluster, namespace, agent("priced", models={"providers": ["OpenAI", "Gemini"], "prices": [
        {"model": "gpt-4o-mini", "inputPerMillionTokens": 0.15, "outputPerMillionTokens": 0.6}]},
        health={"model": {"tokensPerMinute": {"unhealthy": 100000}}}))
    health = get_json(cluster, namespace, "agent/priced")["spec"]["health"]["model"]
    th = HealthThresholds.from_spec(get_json(cluster, namespace, "agent/priced")["spec"])
    assert health["minCalls"] == th.model_min_calls and th.tokens_per_minute_unhealthy == 100000
    assert th.price("gpt-4o-mini") == (0.15, 0.6)


def test_the_readmes_model_fault_is_accepted(cluster: Cluster, crds: list[str], namespace: str) -> None:
    """The README's example of a Model fault applies as written."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", readme, re.S)]
    faults = [b for b in blocks if isinstance(b, dict) and b.get("kind") == "Fault"]
    assert [f["spec"]["type"] for f in faults] == ["ModelRateLimit"]
    apply(cluster, namespace, faults[0])
    assert get_json(cluster, namespace, f"fault/{faults[0]['metadata']['name']}")["spec"]["model"] == faults[0]["spec"]["model"]
    # The healing block it shows as "the defaults" is what the API server fills in.
    healing = next(b for b in blocks if isinstance(b, dict) and "healing" in b.get("spec", {}))["spec"]["healing"]
    apply(cluster, namespace, agent("readme-defaults"))
    assert get_json(cluster, namespace, "agent/readme-defaults")["spec"]["healing"] == healing


def test_crash_fault_defaults(cluster: Cluster, crds: list[str], namespace: str) -> None:
    manifest = fault("crash-chat", type="Crash", crash={})
    del manifest["spec"]["latency"]
    apply(cluster, namespace, manifest)
    spec = get_json(cluster, namespace, "fault/crash-chat")["spec"]
    assert spec["crash"] == {"statusCode": 503}


# --- kubectl get -----------------------------------------------------------------------


def _header(output: str) -> list[str]:
    return output.splitlines()[0].split()


def test_printer_columns(cluster: Cluster, crds: list[str], namespace: str) -> None:
    apply(cluster, namespace, agent("chat"))
    apply(cluster, namespace, fault("slow-chat"))

    agents = cluster.kubectl("get", "agents", "-n", namespace).stdout
    assert _header(agents) == ["NAME", "PHASE", "READY", "P95(MS)", "ERRORRATE", "FAULTS", "RESTARTS", "AGE"]
    wide = cluster.kubectl("get", "agents", "-n", namespace, "-o", "wide").stdout
    assert _header(wide) == ["NAME", "PHASE", "READY", "P95(MS)", "ERRORRATE", "MODELERR", "TOK/MIN", "FAULTS", "RESTARTS",
                             "AGE"]
    faults = cluster.kubectl("get", "faults", "-n", namespace).stdout
    assert _header(faults) == ["NAME", "TYPE", "TARGET", "PHASE", "EXPIRES", "AGE"]

    both = cluster.kubectl("get", "agents,faults", "-n", namespace).stdout
    category = cluster.kubectl("get", "agentops", "-n", namespace).stdout
    short = cluster.kubectl("get", "ag,flt", "-n", namespace).stdout
    for out in (both, category, short):
        assert "agent.agentops.dev/chat" in out and "fault.agentops.dev/slow-chat" in out, out
        for header in ("PHASE", "READY", "P95(MS)", "ERRORRATE", "FAULTS", "RESTARTS", "TYPE", "TARGET",
                       "EXPIRES", "AGE"):
            assert header in out, (header, out)


def test_operator_status_is_accepted_and_shown(cluster: Cluster, crds: list[str], namespace: str) -> None:
    """The status the operator writes fits the schema and fills the columns."""
    apply(cluster, namespace, agent("chat"))
    apply(cluster, namespace, fault("slow-chat"))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    expires = (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    agent_status = {"status": {
        "phase": "Degraded",
        "observedGeneration": 1,
        "conditions": [
            {"type": "Ready", "status": "True", "observedGeneration": 1, "lastTransitionTime": stamp,
             "reason": "ThresholdExceeded", "message": "p95 1250ms >= 1000ms"},
            {"type": "TelemetryFresh", "status": "True", "observedGeneration": 1, "lastTransitionTime": stamp,
             "reason": "ReportsArriving", "message": ""},
            {"type": "FaultActive", "status": "True", "observedGeneration": 1, "lastTransitionTime": stamp,
             "reason": "FaultApplied", "message": "slow-chat"},
        ],
        "metrics": {"latencyP50Ms": 600.5, "latencyP95Ms": 1250.5, "errorRate": 0.02, "requestRate": 3.5,
                    "requests": 210, "windowSeconds": 60, "probeSuccessRatio": 1},
        "model": {"calls": 40, "errorRate": 0.25, "errors": {"rate_limit": 8, "stream_interrupted": 2}, "retries": 6,
                  "streamsInterrupted": 2, "latencyP95Ms": 2100.5, "timeToFirstTokenP95Ms": 420.0, "inputTokens": 9000,
                  "outputTokens": 1500, "tokensPerMinute": 10500, "costPerHourUsd": 0.19, "providers": ["OpenAI"],
                  "windowSeconds": 60},
        "telemetry": {"lastReportTime": stamp, "reporters": 1, "instances": ["chat-7d9f-abc"]},
        "activeFaults": [{"name": "slow-chat", "type": "Latency", "expiresAt": expires, "applied": True}],
        "activeFaultCount": 1,
        "restartCount": 2,
    }}
    cluster.kubectl("patch", "agent", "chat", "-n", namespace, "--subresource=status", "--type=merge",
                    "-p", json.dumps(agent_status))
    fault_status = {"status": {
        "phase": "Active", "observedGeneration": 1,
        "conditions": [{"type": "Active", "status": "True", "lastTransitionTime": stamp,
                        "reason": "Enforcing", "message": ""}],
        "startedAt": stamp, "expiresAt": expires, "targets": ["chat"], "targetSummary": "chat", "message": "",
    }}
    cluster.kubectl("patch", "fault", "slow-chat", "-n", namespace, "--subresource=status", "--type=merge",
                    "-p", json.dumps(fault_status))

    row = cluster.kubectl("get", "agent", "chat", "-n", namespace, "--no-headers").stdout.split()
    assert row[:7] == ["chat", "Degraded", "True", "1250.5", "0.02", "1", "2"]
    row = cluster.kubectl("get", "agent", "chat", "-n", namespace, "--no-headers", "-o", "wide").stdout.split()
    assert row[:9] == ["chat", "Degraded", "True", "1250.5", "0.02", "0.25", "10500", "1", "2"]
    row = cluster.kubectl("get", "fault", "slow-chat", "-n", namespace, "--no-headers").stdout.split()
    # Expires is a string column: a date column would print a future time as <invalid>.
    assert row[:5] == ["slow-chat", "Latency", "chat", "Active", expires]
    assert get_json(cluster, namespace, "agent/chat")["status"] == agent_status["status"]


def test_condition_reason_must_be_camel_case(cluster: Cluster, crds: list[str], namespace: str) -> None:
    apply(cluster, namespace, agent("chat"))
    bad = {"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z",
                                      "reason": "not camel case", "message": ""}]}}
    proc = cluster.kubectl("patch", "agent", "chat", "-n", namespace, "--subresource=status", "--type=merge",
                           "-p", json.dumps(bad), check=False)
    assert proc.returncode != 0
    assert "status.conditions[0].reason" in proc.stderr, proc.stderr


# --- rejected manifests ----------------------------------------------------------------


def _without(*path: str) -> Callable[[Manifest], None]:
    def edit(m: Manifest) -> None:
        node = m
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return edit


def _set(value: Any, *path: str) -> Callable[[Manifest], None]:
    def edit(m: Manifest) -> None:
        node = m
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return edit


def _both(*edits: Callable[[Manifest], None]) -> Callable[[Manifest], None]:
    def edit(m: Manifest) -> None:
        for e in edits:
            e(m)
    return edit


INVALID = [
    # (id, base manifest, edit, substring of stderr naming the field)
    ("fault-missing-duration", fault, _without("spec", "duration"), "spec.duration: Required value"),
    ("fault-duration-48h", fault, _set("48h", "spec", "duration"), "spec.duration must be between 1s and 24h"),
    ("fault-duration-zero", fault, _set("0s", "spec", "duration"), "spec.duration must be between 1s and 24h"),
    ("fault-duration-abc", fault, _set("abc", "spec", "duration"), "spec.duration in body should match"),
    ("fault-percentage-150", fault, _set({"percentage": 150}, "spec", "match"), "spec.match.percentage"),
    ("fault-percentage-negative", fault, _set({"percentage": -1}, "spec", "match"), "spec.match.percentage"),
    ("fault-agent-and-selector", fault,
     _set({"agent": "chat", "selector": {"matchLabels": {"app": "chat"}}}, "spec", "target"),
     "exactly one of spec.target.agent or spec.target.selector"),
    ("fault-no-target", fault, _set({}, "spec", "target"),
     "exactly one of spec.target.agent or spec.target.selector"),
    ("fault-empty-selector", fault, _set({"selector": {}}, "spec", "target"),
     "spec.target.selector must set matchLabels or matchExpressions"),
    ("fault-in-without-values", fault,
     _set({"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}, "spec", "target"),
     "matchExpressions[].values must be non-empty"),
    ("fault-exists-with-values", fault,
     _set({"selector": {"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]}},
          "spec", "target"),
     "matchExpressions[].values must be empty"),
    ("fault-latency-without-params", fault, _without("spec", "latency"),
     "spec.latency is required when spec.type is Latency"),
    ("fault-error-with-latency", fault, _both(_set("Error", "spec", "type"), _set({}, "spec", "error")),
     "spec.latency is only allowed when spec.type is Latency"),
    ("fault-error-without-params", fault, _both(_set("Error", "spec", "type"), _without("spec", "latency")),
     "spec.error is required when spec.type is Error"),
    ("fault-crash-params-on-latency", fault, _set({}, "spec", "crash"),
     "spec.crash is only allowed when spec.type is Crash"),
    ("fault-unknown-type", fault, _set("Explode", "spec", "type"), 'spec.type: Unsupported value: "Explode"'),
    ("fault-delay-zero", fault, _set({"delayMs": 0}, "spec", "latency"), "spec.latency.delayMs"),
    ("fault-error-status-200", fault,
     _both(_set("Error", "spec", "type"), _without("spec", "latency"), _set({"statusCode": 200}, "spec", "error")),
     "spec.error.statusCode"),
    ("model-fault-without-model", model_fault, _without("spec", "model"),
     "spec.model is required when spec.type is a Model type"),
    ("model-block-on-latency", fault, _set({}, "spec", "model"),
     "spec.model is only allowed when spec.type is a Model type"),
    ("model-retry-after-on-server-error", model_fault, _set("ModelServerError", "spec", "type"),
     "spec.model.retryAfter is only allowed when spec.type is ModelRateLimit or ModelOverloaded"),
    ("model-slow-stream-without-delay", model_fault,
     _both(_set("ModelSlowStream", "spec", "type"), _set({}, "spec", "model")),
     "spec.model.delay is required when spec.type is ModelSlowFirstToken or ModelSlowStream"),
    ("model-delay-on-rate-limit", model_fault, _set("1s", "spec", "model", "delay"),
     "spec.model.delay is only allowed when spec.type is ModelTimeout"),
    ("model-after-chunks-on-timeout", model_fault,
     _both(_set("ModelTimeout", "spec", "type"), _set({"afterChunks": 2}, "spec", "model")),
     "spec.model.afterChunks is only allowed when spec.type is ModelStreamStall or ModelStreamCut"),
    ("model-unknown-provider", model_fault, _set(["Mistral"], "spec", "model", "providers"),
     'spec.model.providers[0]: Unsupported value: "Mistral"'),
    ("model-first-attempts-zero", model_fault, _set(0, "spec", "model", "firstAttempts"),
     "spec.model.firstAttempts"),
    ("model-retry-after-2h", model_fault, _set("2h", "spec", "model", "retryAfter"),
     "spec.model.retryAfter must be between 1ms and 1h"),
    ("model-two-guards", model_fault,
     _set([{"modelErrorRateAbove": 0.5, "tokensPerMinuteAbove": 1000}], "spec", "stopConditions"),
     "each spec.stopConditions entry must set exactly one of"),
    ("agent-model-error-rate-inverted", agent,
     _set({"model": {"errorRate": {"degraded": 0.9, "unhealthy": 0.2}}}, "spec", "health"),
     "spec.health.model.errorRate.degraded must be less than or equal to spec.health.model.errorRate.unhealthy"),
    ("agent-token-burn-inverted", agent,
     _set({"model": {"tokensPerMinute": {"degraded": 9000, "unhealthy": 100}}}, "spec", "health"),
     "spec.health.model.tokensPerMinute.degraded must be less than or equal to"),
    ("agent-price-without-output", agent,
     _set({"prices": [{"model": "gpt-4o-mini", "inputPerMillionTokens": 0.15}]}, "spec", "models"),
     "spec.models.prices[0].outputPerMillionTokens: Required value"),
    ("agent-kubernetes-without-deployment", agent, _set({"type": "Kubernetes"}, "spec", "runtime"),
     "spec.runtime.deployment is required when spec.runtime.type is Kubernetes"),
    ("agent-deployment-on-process", agent,
     _set({"type": "Process", "deployment": {"name": "chat"}}, "spec", "runtime"),
     "spec.runtime.deployment is only allowed when spec.runtime.type is Kubernetes"),
    ("agent-cloudrun-without-service", agent, _set({"type": "CloudRun"}, "spec", "runtime"),
     "spec.runtime.cloudRun is required when spec.runtime.type is CloudRun"),
    ("agent-error-rate-inverted", agent,
     _set({"errorRate": {"degraded": 0.5, "unhealthy": 0.2}}, "spec", "health"),
     "spec.health.errorRate.degraded must be less than or equal to spec.health.errorRate.unhealthy"),
    ("agent-latency-inverted", agent,
     _set({"latencyP95Ms": {"degraded": 5000}}, "spec", "health"),
     "spec.health.latencyP95Ms.degraded must be less than or equal to spec.health.latencyP95Ms.unhealthy"),
    ("agent-window-1s", agent, _set({"window": "1s"}, "spec", "health"),
     "spec.health.window must be between 5s and 1h"),
    ("agent-heartbeat-2h", agent, _set({"heartbeatTimeout": "2h"}, "spec", "health"),
     "spec.health.heartbeatTimeout must be between 1s and 1h"),
    ("agent-unknown-runtime", agent, _set({"type": "Docker"}, "spec", "runtime"),
     'spec.runtime.type: Unsupported value: "Docker"'),
]


@pytest.mark.parametrize(
    ("base", "edit", "expected"),
    [pytest.param(base, edit, expected, id=case_id) for case_id, base, edit, expected in INVALID],
)
def test_invalid_manifest_is_rejected(
    cluster: Cluster, crds: list[str], namespace: str,
    base: Callable[[], Manifest], edit: Callable[[Manifest], None], expected: str,
) -> None:
    manifest = base()
    edit(manifest)
    proc = apply(cluster, namespace, manifest, check=False)
    assert proc.returncode != 0, proc.stdout
    assert expected in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(_set({"agent": "summary"}, "spec", "target"), "spec.target is immutable", id="target"),
        pytest.param(_both(_set("Error", "spec", "type"), _without("spec", "latency"), _set({}, "spec", "error")),
                     "spec.type is immutable", id="type"),
        pytest.param(_set("10m", "spec", "duration"), "spec.duration is immutable", id="duration"),
    ],
)
def test_fault_identity_is_immutable(
    cluster: Cluster, crds: list[str], namespace: str,
    edit: Callable[[Manifest], None], expected: str,
) -> None:
    original = fault("slow-chat")
    apply(cluster, namespace, original)
    changed = copy.deepcopy(original)
    edit(changed)
    proc = apply(cluster, namespace, changed, check=False)
    assert proc.returncode != 0, proc.stdout
    assert expected in proc.stderr, proc.stderr
    # The stored object is untouched.
    assert get_json(cluster, namespace, "fault/slow-chat")["spec"]["duration"] == "5m"


def test_fault_mutable_fields_can_change(cluster: Cluster, crds: list[str], namespace: str) -> None:
    """Only target, type and duration are frozen; tuning the parameters is allowed."""
    original = fault("slow-chat")
    apply(cluster, namespace, original)
    changed = copy.deepcopy(original)
    changed["spec"]["latency"] = {"delayMs": 900, "jitterMs": 100}
    changed["spec"]["match"] = {"percentage": 50}
    apply(cluster, namespace, changed)
    spec = get_json(cluster, namespace, "fault/slow-chat")["spec"]
    assert spec["latency"] == {"delayMs": 900, "jitterMs": 100}
    assert spec["match"] == {"percentage": 50}
