"""agentops_operator.health: quantiles and the assessment rules."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import pytest

from agentops.wire import TelemetryReport, validate_report
from agentops_operator.health import (
    Assessment,
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    UNKNOWN,
    WindowSummary,
    assess,
)
from agentops_operator.histograms import quantile
from agentops_operator.resources import HealthThresholds, Key
from agentops_operator.telemetry_store import TelemetryStore

TH = HealthThresholds()  # 30s heartbeat, minSamples 10, probes 3, p95 1000/4000 ms, errors 5%/25%
WALL = datetime(2024, 5, 1, 10, tzinfo=timezone.utc)


def summary(**kw: Any) -> WindowSummary:
    base: dict[str, Any] = dict(
        requests=100, server_errors=0, latency_buckets={100.0: 100}, covered_seconds=50.0,
        last_report_age_s=1.0, reporters=1, instances=("i1",), consecutive_probe_failures=(0,),
        probes_ok=10, probes_failed=0,
    )
    base.update(kw)
    return WindowSummary(**base)


def make_report(*, requests: int = 100, errors: dict[str, int] | None = None, buckets: dict[float, int] | None = None,
                sidecar: str = "sc-1", consecutive: int = 0, window: float = 5.0) -> TelemetryReport:
    buckets = {100.0: requests} if buckets is None else buckets
    return validate_report({
        "agent": {"namespace": "ns", "name": "bot"}, "sidecar": sidecar,
        "instance": {"id": f"{sidecar}-pod", "restarts": 0}, "windowSeconds": window,
        "requests": requests, "errors": errors or {},
        "latencyMs": {"buckets": {("+Inf" if math.isinf(b) else str(b)): n for b, n in buckets.items()}},
        "probes": {"ok": 1, "failed": 0, "consecutiveFailures": consecutive, "lastError": None},
        "appliedFaults": [],
    })


# ---------------------------------------------------------------- quantile


def test_quantile_empty() -> None:
    assert quantile({}, 0.5) is None
    assert quantile({100.0: 0, math.inf: 0}, 0.95) is None


def test_quantile_interpolates_within_bucket() -> None:
    b = {100.0: 10, 200.0: 10}
    assert quantile(b, 0.5) == 100.0
    assert quantile(b, 0.95) == pytest.approx(190.0)
    assert quantile(b, 0.25) == pytest.approx(50.0)  # first bucket interpolates from 0
    assert quantile(b, 1.0) == 200.0


def test_quantile_skips_empty_buckets_but_uses_their_bounds() -> None:
    b = {50.0: 0, 100.0: 10, 400.0: 0, 500.0: 10}
    assert quantile(b, 0.5) == pytest.approx(50.0 + 50.0)  # lower bound of the 100 bucket is 50
    assert quantile(b, 0.75) == pytest.approx(400.0 + 100.0 * 0.5)  # lower bound of 500 is the empty 400


def test_quantile_unsorted_input() -> None:
    assert quantile({200.0: 10, 100.0: 10}, 0.95) == pytest.approx(190.0)


def test_quantile_overflow_bucket_reports_last_finite_bound() -> None:
    b = {100.0: 10, 1000.0: 5, math.inf: 5}
    assert quantile(b, 0.95) == 1000.0
    assert quantile(b, 0.5) == pytest.approx(100.0)
    # An empty finite bucket above the data still counts as the last finite bound.
    assert quantile({100.0: 1, 5000.0: 0, math.inf: 9}, 0.95) == 5000.0


def test_quantile_only_overflow() -> None:
    assert quantile({math.inf: 7}, 0.5) == 0.0


# ---------------------------------------------------------------- assess: Unknown


def test_no_telemetry() -> None:
    a = assess(None, TH)
    assert (a.phase, a.reason, a.telemetry_fresh, a.telemetry_reason) == (UNKNOWN, "NoTelemetry", "Unknown", "NoTelemetry")
    assert a.metrics == {}


def test_telemetry_stale_beats_everything() -> None:
    a = assess(summary(last_report_age_s=30.5, server_errors=100, consecutive_probe_failures=(9,)), TH)
    assert (a.phase, a.reason, a.telemetry_fresh, a.telemetry_reason) == (UNKNOWN, "TelemetryStale", "False", "TelemetryStale")
    assert a.message == "no telemetry for 30s (heartbeatTimeout 30s)"


def test_age_equal_to_timeout_is_still_fresh() -> None:
    assert assess(summary(last_report_age_s=30.0), TH).phase == HEALTHY


# ---------------------------------------------------------------- assess: Healthy


def test_healthy_with_metrics() -> None:
    a = assess(summary(requests=120, server_errors=3, latency_buckets={100.0: 60, 200.0: 60}, covered_seconds=60.0,
                       probes_ok=9, probes_failed=1), TH)
    assert (a.phase, a.reason, a.telemetry_fresh, a.telemetry_reason) == (HEALTHY, "WithinThresholds", "True", "ReportsArriving")
    assert a.message == "all health signals within thresholds"
    assert a.metrics == {
        "requests": 120, "requestRate": 2.0, "errorRate": 0.025, "windowSeconds": 60.0,
        "latencyP50Ms": 100.0, "latencyP95Ms": 190.0, "probeSuccessRatio": 0.9,
    }


def test_metrics_without_latency_or_probes() -> None:
    a = assess(summary(requests=0, latency_buckets={}, covered_seconds=0.0, probes_ok=0, probes_failed=0), TH)
    assert a.metrics == {"requests": 0, "requestRate": 0.0, "errorRate": 0.0, "windowSeconds": 0.0}


def test_below_min_samples_errors_and_latency_not_judged() -> None:
    a = assess(summary(requests=9, server_errors=9, latency_buckets={10_000.0: 9}), TH)
    assert a.phase == HEALTHY
    assert a.reason == "WithinThresholds"
    assert "only 9 requests in the window, fewer than minSamples 10" in a.message
    assert a.metrics["errorRate"] == 1.0
    # At exactly minSamples they are judged.
    assert assess(summary(requests=10, server_errors=10, latency_buckets={100.0: 10}), TH).phase == UNHEALTHY


# ---------------------------------------------------------------- assess: probes


def test_probe_failing_on_every_instance() -> None:
    a = assess(summary(consecutive_probe_failures=(3, 5), reporters=2), TH)
    assert (a.phase, a.reason) == (UNHEALTHY, "ProbeFailing")
    assert a.message == "health probe failed 3 times in a row on every instance"
    assert a.telemetry_fresh == "True"


def test_probe_failing_partially() -> None:
    a = assess(summary(consecutive_probe_failures=(3, 2, 0), reporters=3), TH)
    assert (a.phase, a.reason) == (DEGRADED, "ProbeFailingPartially")
    assert a.message == "health probe failing on 1 of 3 instances"


def test_probe_failures_below_threshold() -> None:
    assert assess(summary(consecutive_probe_failures=(2, 2)), TH).phase == HEALTHY


def test_probe_failing_counts_even_below_min_samples() -> None:
    assert assess(summary(requests=0, latency_buckets={}, consecutive_probe_failures=(3,)), TH).reason == "ProbeFailing"


# ---------------------------------------------------------------- assess: errors and latency


@pytest.mark.parametrize(
    ("errors", "phase", "reason"),
    [
        (4, HEALTHY, "WithinThresholds"),
        (5, DEGRADED, "ErrorRateElevated"),  # at the threshold counts
        (24, DEGRADED, "ErrorRateElevated"),
        (25, UNHEALTHY, "ErrorRateHigh"),
        (100, UNHEALTHY, "ErrorRateHigh"),
    ],
)
def test_error_rate(errors: int, phase: str, reason: str) -> None:
    a = assess(summary(requests=100, server_errors=errors), TH)
    assert (a.phase, a.reason) == (phase, reason)


def test_error_rate_messages() -> None:
    assert assess(summary(server_errors=30), TH).message == "error rate 30.0% ≥ 25.0%"
    assert assess(summary(server_errors=6), TH).message == "error rate 6.0% ≥ 5.0%"


@pytest.mark.parametrize(
    ("buckets", "phase", "reason"),
    [
        ({500.0: 100}, HEALTHY, "WithinThresholds"),
        ({1000.0: 100}, HEALTHY, "WithinThresholds"),  # p95 interpolates to 950
        ({2000.0: 100}, DEGRADED, "LatencyElevated"),  # p95 = 1900
        ({500.0: 90, 2000.0: 10}, DEGRADED, "LatencyElevated"),  # p95 = 500 + 1500 * 0.5 = 1250
        ({500.0: 90, 8000.0: 10}, UNHEALTHY, "LatencyHigh"),  # p95 = 4250
        ({100.0: 50, 4000.0: 0, math.inf: 50}, UNHEALTHY, "LatencyHigh"),  # overflow → 4000
    ],
)
def test_latency(buckets: dict[float, int], phase: str, reason: str) -> None:
    a = assess(summary(requests=100, latency_buckets=buckets), TH)
    assert (a.phase, a.reason) == (phase, reason)


def test_latency_message() -> None:
    a = assess(summary(requests=100, latency_buckets={500.0: 90, 8000.0: 10}), TH)
    assert a.message == "p95 latency 4250ms ≥ 4000ms"


# ---------------------------------------------------------------- worst finding wins


def test_worst_finding_wins_and_all_are_listed() -> None:
    a = assess(summary(requests=100, server_errors=6, latency_buckets={500.0: 90, 8000.0: 10},
                       consecutive_probe_failures=(3, 0), reporters=2), TH)
    assert a.phase == UNHEALTHY
    assert a.reason == "LatencyHigh"
    # Ordered worst first (stable within a phase).
    assert a.message == "p95 latency 4250ms ≥ 4000ms; health probe failing on 1 of 2 instances; error rate 6.0% ≥ 5.0%"


def test_first_unhealthy_finding_names_reason() -> None:
    a = assess(summary(requests=100, server_errors=50, latency_buckets={500.0: 90, 8000.0: 10}, consecutive_probe_failures=(4,)), TH)
    assert (a.phase, a.reason) == (UNHEALTHY, "ProbeFailing")
    assert a.message.count("; ") == 2


def test_degraded_when_only_degraded_findings() -> None:
    a = assess(summary(requests=100, server_errors=10, latency_buckets={500.0: 90, 2000.0: 10}), TH)
    assert (a.phase, a.reason) == (DEGRADED, "ErrorRateElevated")


def test_custom_thresholds() -> None:
    th = HealthThresholds(min_samples=1, error_rate_degraded=0.01, error_rate_unhealthy=0.02, latency_p95_degraded_ms=50,
                          latency_p95_unhealthy_ms=60, probe_failure_threshold=1, heartbeat_timeout_s=5)
    assert assess(summary(requests=100, server_errors=1, latency_buckets={10.0: 100}), th).reason == "ErrorRateElevated"
    assert assess(summary(requests=100, server_errors=2, latency_buckets={10.0: 100}), th).reason == "ErrorRateHigh"
    assert assess(summary(requests=1, latency_buckets={100.0: 1}), th).reason == "LatencyHigh"
    assert assess(summary(consecutive_probe_failures=(1,), latency_buckets={10.0: 100}), th).reason == "ProbeFailing"
    assert assess(summary(last_report_age_s=5.1), th).reason == "TelemetryStale"


# ---------------------------------------------------------------- through the telemetry store


def _assess_reports(*reports: TelemetryReport) -> Assessment:
    store = TelemetryStore()
    key = Key("ns", "bot")
    for i, r in enumerate(reports):
        store.add(key, r, received=100.0 + i, wall=WALL)
    return assess(store.summary(key, now=100.0 + len(reports), window_s=60.0), TH)


def test_4xx_do_not_count_as_errors() -> None:
    a = _assess_reports(make_report(requests=100, errors={"http4xx": 90}))
    assert (a.phase, a.metrics["errorRate"]) == (HEALTHY, 0.0)


def test_server_error_classes_count() -> None:
    a = _assess_reports(make_report(requests=100, errors={"http5xx": 10, "timeout": 10, "connection": 10, "http4xx": 50}))
    assert (a.phase, a.reason, a.metrics["errorRate"]) == (UNHEALTHY, "ErrorRateHigh", 0.3)


def test_errors_summed_across_reports_and_sidecars() -> None:
    a = _assess_reports(
        make_report(requests=50, errors={"http5xx": 2}, sidecar="a"),
        make_report(requests=50, errors={"timeout": 2}, sidecar="b"),
    )
    assert (a.phase, a.reason, a.metrics["errorRate"], a.metrics["requests"]) == (HEALTHY, "WithinThresholds", 0.04, 100)
    a = _assess_reports(
        make_report(requests=50, errors={"http5xx": 3}, sidecar="a"),
        make_report(requests=50, errors={"timeout": 3}, sidecar="b"),
    )
    assert (a.phase, a.reason) == (DEGRADED, "ErrorRateElevated")


def test_probe_failing_partially_through_store() -> None:
    a = _assess_reports(make_report(sidecar="a", consecutive=3), make_report(sidecar="b", consecutive=0))
    assert (a.phase, a.reason) == (DEGRADED, "ProbeFailingPartially")
    a = _assess_reports(make_report(sidecar="a", consecutive=3), make_report(sidecar="b", consecutive=7))
    assert (a.phase, a.reason) == (UNHEALTHY, "ProbeFailing")


def test_latency_merged_across_reports() -> None:
    a = _assess_reports(
        make_report(requests=90, buckets={500.0: 90}, sidecar="a"),
        make_report(requests=10, buckets={8000.0: 10}, sidecar="b"),
    )
    assert (a.phase, a.reason, a.metrics["latencyP95Ms"]) == (UNHEALTHY, "LatencyHigh", 4250.0)


def test_an_agent_whose_instances_are_all_starting_is_unknown_not_healthy() -> None:
    starting = WindowSummary(requests=0, server_errors=0, latency_buckets={}, covered_seconds=5, last_report_age_s=1,
                             reporters=1, instances=("i",), consecutive_probe_failures=(0,), probes_ok=0, probes_failed=3,
                             starting_reporters=1)
    verdict = assess(starting, HealthThresholds())
    assert (verdict.phase, verdict.reason, verdict.telemetry_fresh) == ("Unknown", "AgentStarting", "True")
