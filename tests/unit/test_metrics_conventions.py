"""The metrics the operator and the sidecar export follow the Prometheus naming
conventions, the sidecar's safety gauge reads what it should, and the monitoring
overlay (alerts, dashboard) uses only series that exist.

promtool's own lint of live /metrics bodies is in tests/integration/test_metrics_promtool.py;
this covers what promtool does not check: label names (never an object's identity),
base units in names, and the names the manifests refer to.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from prometheus_client.core import Metric

from agentops_operator.firestore_mirror import _Metrics as FirestoreMetrics
from agentops_operator.metrics import OperatorMetrics
from agentops_sidecar.faults import FaultTable
from agentops_sidecar.metrics import SidecarCollector
from agentops_sidecar.model_signals import ModelCollector, ModelTotals
from agentops_sidecar.proxy import Recorder

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "manifests" / "overlays" / "monitoring"
# Labels that would name an object (unbounded at 10,000 agents) or that Prometheus
# attaches to every series of a target itself (an exporter must not set them).
FORBIDDEN_LABELS = {"agent", "fault", "name", "uid", "namespace", "pod", "instance", "job"}
NOT_BASE_UNITS = re.compile(r"_(ms|millis|milliseconds|microseconds|minutes|hours|days|percent|kilobytes|megabytes)(_|$)")


def _sidecar_collector(table: FaultTable, now: float) -> SidecarCollector:
    link = SimpleNamespace(reports={"accepted": 3, "rejected": 0, "failed": 0, "dropped": 0}, assignment_updates=1)
    prober = SimpleNamespace(totals={"ok": 5, "failed": 0}, last_ok=True)
    return SidecarCollector(Recorder(now), table, link, prober, None, lambda: now)  # type: ignore[arg-type]


def _families() -> dict[str, list[Metric]]:
    metrics = OperatorMetrics()
    FirestoreMetrics(metrics.registry)  # on the operator's /metrics when the mirror is on
    # The gateway's own agentops_* series; its gen_ai_* ones follow OpenTelemetry's names
    # and are checked in test_sidecar_model_signals.
    gateway = [f for f in ModelCollector(ModelTotals()).collect() if f.name.startswith("agentops_")]
    return {"operator": list(metrics.registry.collect()),
            "sidecar": list(_sidecar_collector(FaultTable(), now=100.0).collect()),
            "gateway": gateway}


FAMILIES = [(who, f) for who, families in _families().items() for f in families]


@pytest.mark.parametrize("family", [f for _, f in FAMILIES], ids=[f"{who}:{f.name}" for who, f in FAMILIES])
def test_each_metric_follows_the_naming_conventions(family: Metric) -> None:
    exposed = family.name + ("_total" if family.type == "counter" else "")
    assert re.fullmatch(r"agentops_[a-z0-9_]+", exposed), exposed
    assert family.documentation.strip().endswith("."), f"{exposed}: HELP should be a sentence"
    assert not NOT_BASE_UNITS.search(exposed), f"{exposed}: use base units (seconds, bytes, ratios)"
    if family.type != "counter":
        assert not re.search(r"_(total|count|sum|bucket)$", exposed), f"{exposed}: a suffix reserved for counters/histograms"
    if family.type == "histogram":
        assert exposed.endswith("_seconds"), f"{exposed}: histograms here measure time, in seconds"
    labels = {k for s in family.samples for k in s.labels} - {"le"}
    assert not labels & FORBIDDEN_LABELS, f"{exposed} carries {labels & FORBIDDEN_LABELS}"


def _assignment(expires_at: str, server_time: str = "2030-01-01T00:00:00Z") -> dict[str, Any]:
    fault = {"uid": "u-1", "name": "slow", "type": "Latency", "expiresAt": expires_at, "percentage": 100, "latency": {"delayMs": 100}}
    return {"version": 1, "serverTime": server_time, "leaseSeconds": 30, "faults": [fault]}


def _overdue(table: FaultTable, now: float) -> dict[str, float]:
    family = next(f for f in _sidecar_collector(table, now).collect() if f.name == "agentops_sidecar_fault_overdue_seconds")
    return {s.labels["deadline"]: s.value for s in family.samples}


def test_overdue_gauge_is_zero_while_the_table_keeps_its_deadlines() -> None:
    table = FaultTable()
    table.replace(_assignment("2030-01-01T00:00:10Z"), now=100.0)  # expires at 110, lease ends at 130
    assert _overdue(table, 105.0) == {"expiry": 0.0, "lease": 0.0}
    table.refresh(112.0)
    assert table.effective == () and _overdue(table, 112.0) == {"expiry": 0.0, "lease": 0.0}


def test_overdue_gauge_shows_a_fault_enforced_past_its_expiry_or_the_lease() -> None:
    """No refresh ran (a stuck deadline task): the scrape sees how late the enforced set is."""
    table = FaultTable()
    table.replace(_assignment("2030-01-01T00:10:00Z"), now=100.0)  # expires at 700, lease ends at 130
    assert table.effective
    assert _overdue(table, 145.0) == {"expiry": 0.0, "lease": 15.0}
    assert _overdue(table, 712.5) == {"expiry": 12.5, "lease": 582.5}


def _exported_sample_names() -> set[str]:
    names = set()
    for _, family in FAMILIES:
        base = family.name
        names |= {base + "_total"} if family.type == "counter" else {base}
        if family.type == "histogram":
            names |= {base + "_bucket", base + "_count", base + "_sum"}
    return names


def _dashboard() -> dict[str, Any]:
    return dict(json.loads((OVERLAY / "dashboard.json").read_text()))


def _expressions() -> dict[str, str]:
    """Every PromQL expression of the overlay: alert name or panel title → expression."""
    exprs = {}
    for group in yaml.safe_load((OVERLAY / "prometheusrule.yaml").read_text())["spec"]["groups"]:
        for rule in group["rules"]:
            exprs[rule["alert"]] = rule["expr"]
    for panel in _dashboard()["panels"]:
        for target in panel.get("targets", ()):
            exprs[f"{panel['title']} ({target['refId']})"] = target["expr"]
    return exprs


def test_alerts_and_dashboard_use_only_exported_series() -> None:
    exported = _exported_sample_names()
    unknown = {where: name for where, expr in _expressions().items() for name in re.findall(r"agentops_[a-z0-9_]+", expr)
               if name not in exported}
    assert not unknown, unknown


def test_dashboard_covers_agents_healing_faults_telemetry_and_sidecars() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"]
    used = " ".join(_expressions().values())
    for series in ("agentops_agents", "agentops_restarts_total", "agentops_healing_escalations_total",
                   "agentops_telemetry_reports_total", "agentops_faults", "agentops_sidecar_requests_total",
                   "agentops_sidecar_request_duration_seconds_bucket"):
        assert re.search(rf"\b{series}\b", used), f"no panel shows {series}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"} and panel["targets"], panel["title"]


def test_overlay_uses_no_deprecated_kustomize_fields() -> None:
    kustomization = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    deprecated = {"bases", "commonLabels", "patchesStrategicMerge", "patchesJson6902", "vars", "imageTags"}
    assert not deprecated & set(kustomization)
    assert kustomization["resources"][0] == "../../base"
    for path in kustomization["resources"][1:]:
        assert (OVERLAY / path).is_file(), path
