"""The numbers of one Agent through a ResilienceCheck run, from its sidecars' reports.

The health windows of telemetry_store.py are rolling and pruned as health moves on;
a check needs the numbers of fixed windows (the baseline, each fault's active window)
and a time series for its chart. So while a run is on, every report about its Agent
is also added here, into fixed 5-second bins; a window's numbers are the sums of its
bins, the series is the bins themselves.

A report covers the `windowSeconds` before it was received; it is filed at the middle
of that span, so that a window's numbers are off by at most half a reporting interval
at each end.

Memory is bounded: at most MAX_BINS bins per Agent (the oldest go first), a few
dozen numbers each.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

from agentops.api_types import AgentPhase, Measurement, SeriesPoint
from agentops.wire import SERVER_ERROR_CLASSES, TelemetryReport
from agentops_operator.histograms import add_buckets, add_counts, quantile

BIN_S = 5.0
# Six hours of bins: longer than any run whose steady-state and recovery timeouts are
# sensible; beyond it the oldest numbers are dropped (the series says so by its gaps).
MAX_BINS = 6 * 3600 // int(BIN_S)
# The chart's points per run (the CRD's maxItems for runs[].series).
MAX_POINTS = 240
_SEVERITY: dict[AgentPhase, int] = {"Unknown": 0, "Healthy": 1, "Degraded": 2, "Unhealthy": 3}


@dataclass
class _Bin:
    requests: int = 0
    errors: int = 0
    latency: dict[float, int] = field(default_factory=dict)
    model_calls: int = 0
    model_errors: int = 0
    first_chunk: dict[float, int] = field(default_factory=dict)
    tokens: int = 0
    phase: AgentPhase | None = None  # the worst phase seen while the bin was current

    def add(self, other: _Bin) -> None:
        self.requests += other.requests
        self.errors += other.errors
        add_counts(self.latency, other.latency)
        self.model_calls += other.model_calls
        self.model_errors += other.model_errors
        add_counts(self.first_chunk, other.first_chunk)
        self.tokens += other.tokens
        if other.phase is not None and (self.phase is None or _SEVERITY[other.phase] > _SEVERITY[self.phase]):
            self.phase = other.phase


def _slot(t: float) -> int:
    return math.floor(t / BIN_S)


class Meter:
    """Fixed bins of one Agent's telemetry; times are Unix seconds (wall clock)."""

    def __init__(self) -> None:
        self._bins: OrderedDict[int, _Bin] = OrderedDict()

    def _bin(self, t: float) -> _Bin:
        slot = _slot(t)
        b = self._bins.get(slot)
        if b is None:
            b = self._bins[slot] = _Bin()
            if len(self._bins) > 1 and next(reversed(self._bins)) != slot:
                self._bins = OrderedDict(sorted(self._bins.items()))  # a late report: keep slots in order
            while len(self._bins) > MAX_BINS:
                self._bins.popitem(last=False)
        return b

    def add(self, report: TelemetryReport, received: float) -> None:
        b = self._bin(received - report["windowSeconds"] / 2)
        b.requests += report["requests"]
        b.errors += sum(report["errors"].get(c, 0) for c in SERVER_ERROR_CLASSES)
        add_buckets(b.latency, report["latencyMs"]["buckets"])
        for series in report.get("model", ()):
            b.model_calls += series["calls"]
            b.model_errors += sum(series["errors"].values())
            add_buckets(b.first_chunk, series["firstChunkMs"]["buckets"])
            b.tokens += series["inputTokens"] + series["outputTokens"]

    def note_phase(self, t: float, phase: AgentPhase) -> None:
        b = self._bin(t)
        if b.phase is None or _SEVERITY[phase] > _SEVERITY[b.phase]:
            b.phase = phase

    def _sum(self, t0: float, t1: float) -> _Bin:
        first, last = _slot(t0), _slot(max(t0, t1 - 1e-6))
        total = _Bin()
        for slot, b in self._bins.items():
            if first <= slot <= last:
                total.add(b)
        return total

    def window(self, t0: float, t1: float) -> Measurement:
        """The Agent's numbers over [t0, t1), to the bin."""
        return measurement(self._sum(t0, t1), max(0.0, t1 - t0))

    def series(self, start: float, now: float) -> list[SeriesPoint]:
        """One point per bin from `start` to `now`, merged so that there are at most MAX_POINTS."""
        first, last = _slot(start), _slot(now)
        span = last - first + 1
        per_point = max(1, math.ceil(span / MAX_POINTS))
        points: list[SeriesPoint] = []
        for group in range(first, last + 1, per_point):
            merged = _Bin()
            for slot in range(group, min(group + per_point, last + 1)):
                b = self._bins.get(slot)
                if b is not None:
                    merged.add(b)
            point = SeriesPoint(offsetSeconds=round(max(0.0, group * BIN_S - start), 3), requests=merged.requests)
            if merged.requests:
                point["errorRate"] = round(merged.errors / merged.requests, 4)
            p95 = quantile(merged.latency, 0.95)
            if p95 is not None:
                point["latencyP95Ms"] = round(p95, 1)
            if merged.phase is not None:
                point["phase"] = merged.phase
            points.append(point)
        return points


def measurement(b: _Bin, seconds: float) -> Measurement:
    out = Measurement(seconds=round(seconds, 3), requests=b.requests, errors=b.errors,
                      errorRate=round(b.errors / b.requests, 4) if b.requests else 0.0)
    p95 = quantile(b.latency, 0.95)
    if p95 is not None:
        out["latencyP95Ms"] = round(p95, 1)
    if b.model_calls:
        out["modelCalls"] = b.model_calls
        out["modelErrors"] = b.model_errors
        ttft = quantile(b.first_chunk, 0.95)
        if ttft is not None:
            out["timeToFirstTokenP95Ms"] = round(ttft, 1)
        if seconds > 0:
            out["tokensPerMinute"] = round(b.tokens / seconds * 60.0, 1)
    return out
