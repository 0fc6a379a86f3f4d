"""Health of an agent from a window of telemetry: pure functions, no I/O, no clock.

Rules, worst first (an agent is as sick as its worst symptom):

* no report ever → Unknown (NoTelemetry); last report older than heartbeatTimeout →
  Unknown (TelemetryStale); every instance still in its startup grace → Unknown
  (AgentStarting). Silence is not evidence of sickness: the sidecar, not
  the agent, may be what stopped.
* every reporting instance has failed `probeFailureThreshold` probes in a row →
  Unhealthy (ProbeFailing); only some of them → Degraded (ProbeFailingPartially).
* with at least `minSamples` requests in the window: error rate (5xx, timeouts,
  connection failures; not 4xx) or p95 latency at or over the `unhealthy` threshold →
  Unhealthy; over `degraded` → Degraded. Fewer requests than that say too little to
  judge, so latency and errors are then not held against the agent.
* the agent's own model calls (`model_health`): model error rate, time to first
  token and the token/cost runaway guards, each with its own reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from agentops.api_types import AgentMetrics, AgentModelMetrics, AgentPhase, ConditionStatus, ModelProvider
from agentops_operator import model_health
from agentops_operator.histograms import quantile
from agentops_operator.resources import HealthThresholds

UNKNOWN: AgentPhase = "Unknown"
HEALTHY: AgentPhase = "Healthy"
DEGRADED: AgentPhase = "Degraded"
UNHEALTHY: AgentPhase = "Unhealthy"
_SEVERITY = {HEALTHY: 0, UNKNOWN: 1, DEGRADED: 2, UNHEALTHY: 3}


@dataclass(frozen=True)
class WindowSummary:
    """Telemetry of one agent over its window, merged across reports and replicas."""

    requests: int
    server_errors: int  # 5xx, timeouts, connection failures
    latency_buckets: Mapping[float, int]  # upper bound ms → count
    covered_seconds: float  # sum of the window lengths the reports cover, per reporter max
    last_report_age_s: float
    reporters: int
    instances: tuple[str, ...]
    # consecutive probe failures of each reporter's latest report
    consecutive_probe_failures: tuple[int, ...]
    probes_ok: int
    probes_failed: int
    applied_fault_uids: frozenset[str] = field(default_factory=frozenset)
    restarts: int = 0
    starting_reporters: int = 0  # instances that have not passed a probe yet (startup grace)
    # The agent's model calls through its gateways, by (provider, model).
    model: Mapping[tuple[ModelProvider, str], model_health.ModelSeries] = field(default_factory=dict)


@dataclass(frozen=True)
class Assessment:
    phase: AgentPhase
    reason: str
    message: str
    telemetry_fresh: ConditionStatus
    telemetry_reason: str
    metrics: AgentMetrics = field(default_factory=lambda: AgentMetrics())
    model: AgentModelMetrics | None = None  # status.model; None: no model call in the window


def _round(value: float, digits: int) -> float:
    return float(round(value, digits))


def assess(summary: WindowSummary | None, th: HealthThresholds) -> Assessment:
    if summary is None:
        return Assessment(UNKNOWN, "NoTelemetry", "no telemetry received from a sidecar yet", "Unknown", "NoTelemetry")
    if summary.last_report_age_s > th.heartbeat_timeout_s:
        return Assessment(
            UNKNOWN,
            "TelemetryStale",
            f"no telemetry for {summary.last_report_age_s:.0f}s (heartbeatTimeout {th.heartbeat_timeout_s:g}s)",
            "False",
            "TelemetryStale",
        )

    if summary.reporters and summary.starting_reporters == summary.reporters:
        # Every instance is still starting: not sick, not healthy yet — nothing to judge.
        return Assessment(UNKNOWN, "AgentStarting", "the agent has not passed a health probe yet (within its startup grace)",
                          "True", "ReportsArriving")
    p50 = quantile(summary.latency_buckets, 0.50)
    p95 = quantile(summary.latency_buckets, 0.95)
    error_rate = summary.server_errors / summary.requests if summary.requests else 0.0
    rate = summary.requests / summary.covered_seconds if summary.covered_seconds > 0 else 0.0
    probes_total = summary.probes_ok + summary.probes_failed
    metrics = AgentMetrics(requests=summary.requests, requestRate=_round(rate, 2), errorRate=_round(error_rate, 4),
                           windowSeconds=_round(summary.covered_seconds, 1))
    if p50 is not None and p95 is not None:
        metrics["latencyP50Ms"] = _round(p50, 1)
        metrics["latencyP95Ms"] = _round(p95, 1)
    if probes_total:
        metrics["probeSuccessRatio"] = _round(summary.probes_ok / probes_total, 4)

    model = model_health.metrics(summary.model, summary.covered_seconds, th)
    findings: list[tuple[AgentPhase, str, str]] = []  # (phase, reason, message)
    failing = [n for n in summary.consecutive_probe_failures if n >= th.probe_failure_threshold]
    if failing and len(failing) == len(summary.consecutive_probe_failures):
        findings.append((UNHEALTHY, "ProbeFailing", f"health probe failed {min(failing)} times in a row on every instance"))
    elif failing:
        findings.append((DEGRADED, "ProbeFailingPartially", f"health probe failing on {len(failing)} of {len(summary.consecutive_probe_failures)} instances"))

    if summary.requests >= th.min_samples:
        if error_rate >= th.error_rate_unhealthy:
            findings.append((UNHEALTHY, "ErrorRateHigh", f"error rate {error_rate:.1%} ≥ {th.error_rate_unhealthy:.1%}"))
        elif error_rate >= th.error_rate_degraded:
            findings.append((DEGRADED, "ErrorRateElevated", f"error rate {error_rate:.1%} ≥ {th.error_rate_degraded:.1%}"))
        if p95 is not None and p95 >= th.latency_p95_unhealthy_ms:
            findings.append((UNHEALTHY, "LatencyHigh", f"p95 latency {p95:.0f}ms ≥ {th.latency_p95_unhealthy_ms:g}ms"))
        elif p95 is not None and p95 >= th.latency_p95_degraded_ms:
            findings.append((DEGRADED, "LatencyElevated", f"p95 latency {p95:.0f}ms ≥ {th.latency_p95_degraded_ms:g}ms"))
    findings += model_health.findings(model, th)

    if not findings:
        note = "" if summary.requests >= th.min_samples else f" (only {summary.requests} requests in the window, fewer than minSamples {th.min_samples}: latency and errors not judged)"
        return Assessment(HEALTHY, "WithinThresholds", "all health signals within thresholds" + note, "True", "ReportsArriving",
                          metrics, model)

    # Worst phase wins; its first finding names the reason, all findings the message.
    findings.sort(key=lambda f: -_SEVERITY[f[0]])
    phase, reason, _ = findings[0]
    return Assessment(phase, reason, "; ".join(f[2] for f in findings), "True", "ReportsArriving", metrics, model)
