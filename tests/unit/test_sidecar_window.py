"""Telemetry windows: what a report says, and that undelivered windows merge within bounds."""

from __future__ import annotations

from agentops.wire import LATENCY_BUCKETS_MS, validate_report
from agentops_sidecar.window import Totals, Window, error_class


def _report(window: Window, now: float) -> dict[str, object]:
    return dict(window.report(namespace="ns", agent="chat", sidecar="pod-1", instance={"id": "pod-1", "restarts": 0},
                              now=now, consecutive_failures=0, last_error=None))


def test_a_window_is_a_valid_report() -> None:
    w = Window(started=10.0)
    for ms in (0.5, 1.0, 1.05, 20.0, 20.0, 2500.0, 10**7):
        w.record(ms, None)
    w.record(3.0, error_class(503))
    w.record(3.0, error_class(404))
    w.record(3.0, "timeout")
    w.probes_ok, w.probes_failed = 3, 1
    w.applied.add("uid-1")
    report = _report(w, now=15.0)
    assert validate_report(report) == report  # the operator accepts it as is
    assert report["requests"] == 10 and report["windowSeconds"] == 5.0
    assert report["errors"] == {"http5xx": 1, "http4xx": 1, "timeout": 1}
    buckets = report["latencyMs"]["buckets"]
    assert buckets["1.0"] == 2 and buckets["+Inf"] == 1 and sum(buckets.values()) == 10
    # Each sample lands in the first bucket whose bound is at least its value.
    bound = next(b for b in LATENCY_BUCKETS_MS if b >= 2500.0)
    assert buckets[repr(bound)] == 1 and bound < 2500 * 1.1


def test_merging_an_undelivered_window_adds_everything() -> None:
    old, new = Window(started=0.0), Window(started=5.0)
    old.record(10.0, "http5xx")
    old.probes_failed = 2
    old.applied.add("a")
    new.record(10.0, None)
    new.applied.add("b")
    new.merge_older(old)
    report = _report(new, now=10.0)
    assert report["requests"] == 2 and report["windowSeconds"] == 10.0
    assert report["errors"] == {"http5xx": 1} and report["appliedFaults"] == ["a", "b"]
    assert report["probes"]["failed"] == 2  # type: ignore[index]


def test_an_empty_window_still_reports_a_positive_length() -> None:
    report = _report(Window(started=3.0), now=3.0)
    assert validate_report(report)["windowSeconds"] > 0


def test_totals_count_by_class() -> None:
    totals = Totals()
    for status in (200, 201, 302, 404, 503, 504):
        totals.record(status, 0.002)
    assert totals.requests_by_class == {"1xx": 0, "2xx": 2, "3xx": 1, "4xx": 1, "5xx": 2}
    assert sum(totals.duration_buckets) == 6
