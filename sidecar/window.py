"""Counting what passes the proxy: telemetry windows and lifetime totals.

Recording a request is a handful of integer additions and one bisect into the
histogram layout of `agentops.wire.LATENCY_BUCKETS_MS` (142 bounds, 8 comparisons), so
the request path pays well under a microsecond for it. Nothing is allocated per
request: memory is a fixed array per window, whatever the traffic.

The agent's model calls (`model_signals.ModelWindow`) ride in the same window, so they
are cut, carried and merged with it.

A window that could not be delivered is merged into the next (histograms add bucket
by bucket), up to `MAX_CARRY_S` of traffic; older traffic is then dropped and counted,
so an unreachable operator costs a bounded amount of memory.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

from agentops.wire import ERROR_CLASSES, LATENCY_BUCKET_KEYS, LATENCY_BUCKETS_MS, InstanceInfo, TelemetryReport, sparse_latency
from agentops_sidecar.model_signals import ModelWindow

_BOUNDS = LATENCY_BUCKETS_MS


def error_class(status: int) -> str | None:
    if status >= 500:
        return "http5xx"
    if status >= 400:
        return "http4xx"
    return None


@dataclass
class Window:
    started: float  # monotonic
    requests: int = 0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_CLASSES, 0))
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKET_KEYS))
    probes_ok: int = 0
    probes_failed: int = 0
    applied: set[str] = field(default_factory=set)
    model: ModelWindow = field(default_factory=ModelWindow)  # the agent's model calls through the gateway

    def record(self, latency_ms: float, error: str | None) -> None:
        self.requests += 1
        self.buckets[bisect_left(_BOUNDS, latency_ms)] += 1
        if error is not None:
            self.errors[error] += 1

    def merge_older(self, older: Window) -> None:
        """Fold an undelivered earlier window into this one."""
        self.started = min(self.started, older.started)
        self.requests += older.requests
        for cls, n in older.errors.items():
            self.errors[cls] += n
        for i, n in enumerate(older.buckets):
            if n:
                self.buckets[i] += n
        self.probes_ok += older.probes_ok
        self.probes_failed += older.probes_failed
        self.applied |= older.applied
        self.model.merge_older(older.model)

    def report(
        self,
        *,
        namespace: str,
        agent: str,
        sidecar: str,
        instance: InstanceInfo,
        now: float,
        consecutive_failures: int,
        last_error: str | None,
        starting: bool = False,
    ) -> TelemetryReport:
        report = TelemetryReport(
            agent={"namespace": namespace, "name": agent},
            sidecar=sidecar,
            instance=instance,
            # Never 0 (the operator refuses it): a window cut right after it began.
            windowSeconds=round(max(now - self.started, 0.001), 3),
            requests=self.requests,
            errors={cls: n for cls, n in self.errors.items() if n},
            latencyMs=sparse_latency(self.buckets),
            probes={
                "ok": self.probes_ok,
                "failed": self.probes_failed,
                "consecutiveFailures": consecutive_failures,
                "lastError": last_error,
                "starting": starting,
            },
            appliedFaults=sorted(self.applied),
        )
        if self.model.series:  # omitted when the agent made no model calls
            report["model"] = self.model.summaries()
        return report


# Lifetime request-duration histogram for /metrics, in seconds: coarse on purpose
# (Prometheus cost grows with buckets × series); the telemetry histogram is the fine one.
DURATION_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Totals:
    """Counters since start, exported by the metrics collector at scrape time."""

    requests_by_class: dict[str, int] = field(default_factory=lambda: {"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0, "1xx": 0})
    upstream_errors: dict[str, int] = field(default_factory=lambda: {"timeout": 0, "connection": 0})
    duration_buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS_S) + 1))
    duration_sum_s: float = 0.0
    injected: dict[str, int] = field(default_factory=lambda: {"Latency": 0, "Error": 0, "Crash": 0})

    def record(self, status: int, seconds: float) -> None:
        self.requests_by_class[_CLASS[status // 100] if 1 <= status // 100 <= 5 else "5xx"] += 1
        self.duration_buckets[bisect_left(DURATION_BUCKETS_S, seconds)] += 1
        self.duration_sum_s += seconds


_CLASS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
