"""agentops_operator.telemetry_store: rolling windows per agent, merged on demand."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from agentops.wire import TelemetryReport, validate_report
from agentops_operator import telemetry_store
from agentops_operator.health import WindowSummary
from agentops_operator.resources import Key
from agentops_operator.telemetry_store import MAX_REPORTS_PER_REPORTER, TelemetryStore

KEY = Key("ns", "bot")
OTHER = Key("ns", "other")
WALL = datetime(2024, 5, 1, 10, tzinfo=timezone.utc)


def present(summary: WindowSummary | None) -> WindowSummary:
    """The summary a test expects to exist."""
    assert summary is not None
    return summary


def make_report(*, sidecar: str = "sc-1", instance: str | None = None, restarts: int = 0, requests: int = 10,
                errors: dict[str, int] | None = None, buckets: dict[str, int] | None = None, window: float = 5.0,
                ok: int = 1, failed: int = 0, consecutive: int = 0, applied: list[str] | None = None) -> TelemetryReport:
    return validate_report({
        "agent": {"namespace": KEY.namespace, "name": KEY.name}, "sidecar": sidecar,
        "instance": {"id": instance or f"{sidecar}-pod", "restarts": restarts}, "windowSeconds": window,
        "requests": requests, "errors": errors or {},
        "latencyMs": {"buckets": {"100": requests} if buckets is None else buckets},
        "probes": {"ok": ok, "failed": failed, "consecutiveFailures": consecutive, "lastError": None},
        "appliedFaults": applied or [],
    })


def test_unknown_agent_has_no_summary() -> None:
    store = TelemetryStore()
    assert store.summary(KEY, now=0.0, window_s=60.0) is None
    assert store.last_report_wall(KEY) is None


def test_single_report() -> None:
    store = TelemetryStore()
    store.add(KEY, make_report(requests=20, errors={"http5xx": 2, "http4xx": 5, "timeout": 1},
                               buckets={"100": 10, "250.5": 0, "+Inf": 10}, ok=3, failed=2, consecutive=2,
                               restarts=4, applied=["u1"]), received=10.0, wall=WALL)
    s = store.summary(KEY, now=12.5, window_s=60.0)
    assert s is not None
    assert s.requests == 20
    assert s.server_errors == 3  # 4xx excluded
    assert dict(s.latency_buckets) == {100.0: 10, math.inf: 10}  # empty buckets dropped
    assert s.covered_seconds == 5.0
    assert s.last_report_age_s == 2.5
    assert s.reporters == 1
    assert s.instances == ("sc-1-pod",)
    assert s.consecutive_probe_failures == (2,)
    assert (s.probes_ok, s.probes_failed) == (3, 2)
    assert s.applied_fault_uids == frozenset({"u1"})
    assert s.restarts == 4
    assert store.last_report_wall(KEY) == WALL
    assert store.summary(OTHER, now=12.5, window_s=60.0) is None


def test_reports_summed_within_window_and_pruned_after() -> None:
    store = TelemetryStore()
    for i in range(10):  # at t = 0, 5, ..., 45
        store.add(KEY, make_report(requests=10, errors={"http5xx": 1}, consecutive=i), received=5.0 * i, wall=WALL + timedelta(seconds=5 * i))
    s = present(store.summary(KEY, now=50.0, window_s=60.0))
    assert (s.requests, s.server_errors, s.covered_seconds) == (100, 10, 50.0)
    assert s.latency_buckets == {100.0: 100}
    assert s.consecutive_probe_failures == (9,)  # the latest report's
    assert s.last_report_age_s == 5.0
    assert store.last_report_wall(KEY) == WALL + timedelta(seconds=45)
    # 30 s later: the window [20, 80] keeps t = 20 .. 45.
    s = present(store.summary(KEY, now=80.0, window_s=60.0))
    assert (s.requests, s.server_errors, s.covered_seconds) == (60, 6, 30.0)
    assert s.last_report_age_s == 35.0


def test_covered_seconds_capped_at_window_and_max_over_reporters() -> None:
    store = TelemetryStore()
    for i in range(20):
        store.add(KEY, make_report(sidecar="a", window=5.0), received=float(i), wall=WALL)
    store.add(KEY, make_report(sidecar="b", window=3.0), received=19.0, wall=WALL)
    s = present(store.summary(KEY, now=20.0, window_s=60.0))
    assert s.covered_seconds == 60.0  # 20 × 5 s, capped at the window
    assert s.reporters == 2
    store2 = TelemetryStore()
    store2.add(KEY, make_report(sidecar="a", window=5.0), received=1.0, wall=WALL)
    store2.add(KEY, make_report(sidecar="b", window=3.0), received=1.0, wall=WALL)
    assert present(store2.summary(KEY, now=2.0, window_s=60.0)).covered_seconds == 5.0  # replicas overlap in time


def test_lone_silent_reporter_kept_for_staleness() -> None:
    store = TelemetryStore()
    store.add(KEY, make_report(requests=10, consecutive=1), received=0.0, wall=WALL)
    s = store.summary(KEY, now=100.0, window_s=60.0)
    assert s is not None
    assert s.last_report_age_s == 100.0
    assert (s.requests, s.reporters, s.consecutive_probe_failures) == (0, 0, ())
    # It is still there on the next call.
    assert present(store.summary(KEY, now=200.0, window_s=60.0)).last_report_age_s == 200.0


def test_silent_reporter_dropped_when_others_report() -> None:
    store = TelemetryStore()
    store.add(KEY, make_report(sidecar="old", instance="pod-old", consecutive=5, restarts=3), received=0.0, wall=WALL)
    store.add(KEY, make_report(sidecar="new", instance="pod-new"), received=90.0, wall=WALL)
    s = present(store.summary(KEY, now=100.0, window_s=60.0))
    assert s.reporters == 1
    assert s.instances == ("pod-new",)
    assert s.consecutive_probe_failures == (0,)
    assert s.restarts == 0
    assert s.last_report_age_s == 10.0


def test_multiple_reporters_merge() -> None:
    store = TelemetryStore()
    store.add(KEY, make_report(sidecar="b", instance="pod-b", restarts=1, applied=["u1"], buckets={"100": 4, "200": 6}), received=1.0, wall=WALL)
    store.add(KEY, make_report(sidecar="a", instance="pod-a", restarts=2, applied=["u2"], buckets={"200": 10}), received=2.0, wall=WALL)
    s = present(store.summary(KEY, now=3.0, window_s=60.0))
    assert s.instances == ("pod-a", "pod-b")
    assert s.restarts == 3
    assert s.applied_fault_uids == frozenset({"u1", "u2"})
    assert dict(s.latency_buckets) == {100.0: 4, 200.0: 16}
    assert s.last_report_age_s == 1.0
    assert sorted(s.consecutive_probe_failures) == [0, 0]


def test_applied_faults_from_latest_report_only() -> None:
    store = TelemetryStore()
    store.add(KEY, make_report(applied=["u1"]), received=1.0, wall=WALL)
    store.add(KEY, make_report(applied=[]), received=2.0, wall=WALL)
    assert present(store.summary(KEY, now=3.0, window_s=60.0)).applied_fault_uids == frozenset()


def test_restarts_from_latest_report_not_summed_over_time() -> None:
    store = TelemetryStore()
    for i in range(3):
        store.add(KEY, make_report(restarts=2), received=float(i), wall=WALL)
    assert present(store.summary(KEY, now=3.0, window_s=60.0)).restarts == 2


def test_forget() -> None:
    store = TelemetryStore()
    store.add(KEY, make_report(), received=1.0, wall=WALL)
    store.add(OTHER, make_report(), received=1.0, wall=WALL)
    store.forget(KEY)
    store.forget(KEY)
    assert store.summary(KEY, now=2.0, window_s=60.0) is None
    assert store.last_report_wall(KEY) is None
    assert store.summary(OTHER, now=2.0, window_s=60.0) is not None


def test_reports_per_reporter_bounded() -> None:
    store = TelemetryStore()
    for i in range(MAX_REPORTS_PER_REPORTER + 5):
        store.add(KEY, make_report(requests=1, window=1.0), received=0.0, wall=WALL)
    s = present(store.summary(KEY, now=0.0, window_s=3600.0))
    assert s.requests == MAX_REPORTS_PER_REPORTER


def test_reporters_per_agent_bounded_quietest_evicted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry_store, "MAX_REPORTERS_PER_AGENT", 3)
    store = TelemetryStore()
    store.add(KEY, make_report(sidecar="a", instance="a"), received=5.0, wall=WALL)
    store.add(KEY, make_report(sidecar="b", instance="b"), received=1.0, wall=WALL)  # quietest
    store.add(KEY, make_report(sidecar="c", instance="c"), received=3.0, wall=WALL)
    store.add(KEY, make_report(sidecar="a", instance="a"), received=6.0, wall=WALL)  # known: no eviction
    store.add(KEY, make_report(sidecar="d", instance="d"), received=7.0, wall=WALL)
    s = present(store.summary(KEY, now=8.0, window_s=60.0))
    assert s.instances == ("a", "c", "d")
    assert s.reporters == 3


def test_report_not_mutated() -> None:
    r = make_report(applied=["u1"])
    snapshot = repr(r)
    store = TelemetryStore()
    store.add(KEY, r, received=1.0, wall=WALL)
    store.summary(KEY, now=2.0, window_s=60.0)
    assert repr(r) == snapshot


def test_bucket_keys_for_the_same_bound_are_added() -> None:
    # validate_report accepts "100" and "100.0" as two keys (both are valid bounds);
    # they name the same bucket, and neither count may be lost.
    store = TelemetryStore()
    store.add(KEY, make_report(requests=10, buckets={"100": 4, "100.0": 6}), received=1.0, wall=WALL)
    assert dict(present(store.summary(KEY, now=2.0, window_s=60.0)).latency_buckets) == {100.0: 10}


def test_a_reporter_stale_beyond_the_heartbeat_timeout_yields_to_fresh_ones() -> None:
    # A rolling restart: the old pod's sidecar last reported failing probes 40 s ago,
    # well within the 60 s window, and the new pod reports healthy.
    store = TelemetryStore()
    store.add(KEY, make_report(sidecar="old", instance="pod-old", consecutive=5), received=60.0, wall=WALL)
    store.add(KEY, make_report(sidecar="new", instance="pod-new"), received=99.0, wall=WALL)
    within_window = store.summary(KEY, now=100.0, window_s=60.0)
    assert within_window is not None and within_window.reporters == 2  # without a staleness bound both speak
    s = store.summary(KEY, now=100.0, window_s=60.0, stale_s=30.0)
    assert s is not None and s.instances == ("pod-new",) and s.consecutive_probe_failures == (0,)
    # Alone, a stale reporter still speaks: its staleness is what the verdict reports.
    alone = TelemetryStore()
    alone.add(KEY, make_report(sidecar="old", consecutive=5), received=60.0, wall=WALL)
    only = alone.summary(KEY, now=100.0, window_s=60.0, stale_s=30.0)
    assert only is not None and only.reporters == 1 and only.last_report_age_s == 40.0


def test_a_new_instance_behind_the_same_sidecar_starts_a_fresh_window() -> None:
    store = TelemetryStore()
    store.add(KEY, make_report(sidecar="sc", instance="run-1", errors={"http5xx": 10}), received=0.0, wall=WALL)
    store.add(KEY, make_report(sidecar="sc", instance="run-2"), received=5.0, wall=WALL)
    s = store.summary(KEY, now=6.0, window_s=60.0)
    assert s is not None and s.server_errors == 0 and s.requests == 10 and s.instances == ("run-2",)
