"""The agent's model calls as signals: per-window summaries for the operator, lifetime
series for /metrics.

Each call through the gateway ends in one `CallRecord`. It is counted twice:

* into the current telemetry window (`ModelWindow`, part of `window.Window`), per
  (provider, model), sent to the operator as `TelemetryReport.model` and merged like the
  rest of an undelivered window;
* into lifetime totals (`ModelTotals`), exported on the sidecar's /metrics under the
  OpenTelemetry GenAI names (`gen_ai_client_operation_duration_seconds`,
  `gen_ai_client_token_usage`, `gen_ai_client_operation_time_to_first_chunk_seconds`)
  and `agentops_model_*` for what OpenTelemetry does not name.

Both are bounded whatever the agent does: at most `MAX_MODEL_SERIES` (provider, model)
series per window and model label values on /metrics; further models are folded into
model "other". Label values otherwise come from small fixed sets.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from agentops.api_types import ModelProvider
from agentops.wire import LATENCY_BUCKET_KEYS, LATENCY_BUCKETS_MS, MAX_MODEL_SERIES, MODEL_PROVIDERS, ModelCallSummary, sparse_latency
from agentops_sidecar.model_routes import OTEL_PROVIDER

OTHER = "other"
# Named series leave room for one "other" per provider, so a window never exceeds the wire limit.
_NAMED_SERIES = MAX_MODEL_SERIES - len(MODEL_PROVIDERS)
# OpenTelemetry's advisory bucket boundaries for the GenAI client metrics (semantic
# conventions, gen-ai-metrics): seconds doubling from 10 ms, tokens in powers of 4.
DURATION_BUCKETS_S = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)


@dataclass(frozen=True, slots=True)
class CallRecord:
    provider: ModelProvider
    model: str
    operation: str
    streams: bool
    retry: bool  # this attempt repeated an earlier one
    error: str | None  # agentops.wire.MODEL_ERROR_TYPES, None when the call succeeded
    seconds: float  # first byte of the request to last byte of the answer
    first_chunk_s: float | None  # to the first byte of a streamed answer's body
    input_tokens: int
    output_tokens: int
    usage_seen: bool  # the answer reported token usage


@dataclass
class ModelSeries:
    calls: int = 0
    retries: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latency: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKET_KEYS))
    first_chunk: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKET_KEYS))
    input_tokens: int = 0
    output_tokens: int = 0
    streams: int = 0
    interrupted: int = 0

    def record(self, rec: CallRecord) -> None:
        self.calls += 1
        self.retries += rec.retry
        if rec.error is not None:
            self.errors[rec.error] = self.errors.get(rec.error, 0) + 1
        self.latency[bisect_left(LATENCY_BUCKETS_MS, rec.seconds * 1000.0)] += 1
        if rec.first_chunk_s is not None:
            self.first_chunk[bisect_left(LATENCY_BUCKETS_MS, rec.first_chunk_s * 1000.0)] += 1
        self.input_tokens += rec.input_tokens
        self.output_tokens += rec.output_tokens
        self.streams += rec.streams
        self.interrupted += rec.error == "stream_interrupted"

    def add(self, other: ModelSeries) -> None:
        self.calls += other.calls
        self.retries += other.retries
        for kind, n in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + n
        for i, n in enumerate(other.latency):
            self.latency[i] += n
        for i, n in enumerate(other.first_chunk):
            self.first_chunk[i] += n
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.streams += other.streams
        self.interrupted += other.interrupted


@dataclass
class ModelWindow:
    series: dict[tuple[ModelProvider, str], ModelSeries] = field(default_factory=dict)

    def _slot(self, provider: ModelProvider, model: str) -> ModelSeries:
        key = (provider, model)
        found = self.series.get(key)
        if found is None:
            if len(self.series) >= _NAMED_SERIES and model != OTHER:
                return self._slot(provider, OTHER)
            found = self.series[key] = ModelSeries()
        return found

    def record(self, rec: CallRecord) -> None:
        self._slot(rec.provider, rec.model).record(rec)

    def merge_older(self, older: ModelWindow) -> None:
        for (provider, model), series in older.series.items():
            self._slot(provider, model).add(series)

    def summaries(self) -> list[ModelCallSummary]:
        return [
            ModelCallSummary(
                provider=provider, model=model, calls=s.calls, retries=s.retries, errors=dict(s.errors),
                latencyMs=sparse_latency(s.latency), firstChunkMs=sparse_latency(s.first_chunk),
                inputTokens=s.input_tokens, outputTokens=s.output_tokens,
                streams=s.streams, streamsInterrupted=s.interrupted,
            )
            for (provider, model), s in sorted(self.series.items())
        ]


@dataclass
class _Histogram:
    bounds: tuple[float, ...]
    counts: list[int]
    total: float = 0.0

    @classmethod
    def of(cls, bounds: tuple[float, ...]) -> _Histogram:
        return cls(bounds, [0] * (len(bounds) + 1))

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out, cumulative = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts):
            cumulative += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(cumulative)))
        return out


class ModelTotals:
    """Lifetime series for /metrics, keyed by bounded label values."""

    def __init__(self) -> None:
        self._models: set[tuple[str, str]] = set()
        self.duration: dict[tuple[str, str, str, str], _Histogram] = {}
        self.tokens: dict[tuple[str, str, str, str], _Histogram] = {}
        self.first_chunk: dict[tuple[str, str, str], _Histogram] = {}
        self.calls: dict[tuple[str, str, str], int] = {}
        self.errors: dict[tuple[str, str, str, str], int] = {}
        self.retries: dict[tuple[str, str], int] = {}
        self.interrupted: dict[tuple[str, str], int] = {}
        self.injected: dict[str, int] = {}

    def _model(self, provider: str, model: str) -> str:
        key = (provider, model)
        if key in self._models:
            return model
        if len(self._models) >= _NAMED_SERIES:
            return OTHER
        self._models.add(key)
        return model

    def record(self, rec: CallRecord) -> None:
        provider = OTEL_PROVIDER[rec.provider]
        model = self._model(provider, rec.model)
        op = rec.operation
        error = rec.error or ""
        self.duration.setdefault((provider, model, op, error), _Histogram.of(DURATION_BUCKETS_S)).observe(rec.seconds)
        if rec.usage_seen:
            self.tokens.setdefault((provider, model, op, "input"), _Histogram.of(TOKEN_BUCKETS)).observe(rec.input_tokens)
            self.tokens.setdefault((provider, model, op, "output"), _Histogram.of(TOKEN_BUCKETS)).observe(rec.output_tokens)
        if rec.first_chunk_s is not None:
            self.first_chunk.setdefault((provider, model, op), _Histogram.of(DURATION_BUCKETS_S)).observe(rec.first_chunk_s)
        self.calls[(provider, model, op)] = self.calls.get((provider, model, op), 0) + 1
        if rec.error is not None:
            self.errors[(provider, model, op, error)] = self.errors.get((provider, model, op, error), 0) + 1
        if rec.retry:
            self.retries[(provider, model)] = self.retries.get((provider, model), 0) + 1
        if rec.error == "stream_interrupted":
            self.interrupted[(provider, model)] = self.interrupted.get((provider, model), 0) + 1

    def fault_injected(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1


_CALL_LABELS = ["gen_ai_provider_name", "gen_ai_request_model", "gen_ai_operation_name"]


class ModelCollector(Collector):
    """The gateway's series on the sidecar's /metrics, built at scrape time from `ModelTotals`."""

    def __init__(self, totals: ModelTotals) -> None:
        self.totals = totals

    def collect(self) -> Iterator[Metric]:
        t = self.totals
        duration = HistogramMetricFamily(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration: a model call through the gateway, from its request to the answer's last byte.",
            labels=[*_CALL_LABELS, "error_type"])
        for labels, hist in sorted(t.duration.items()):
            duration.add_metric(list(labels), hist.buckets(), hist.total)
        yield duration
        tokens = HistogramMetricFamily(
            # Unit tokens; not passed as `unit=`, which would append "_tokens" to the name.
            "gen_ai_client_token_usage", "Number of input and output tokens (unit: tokens) used per model call, as the provider reported.",
            labels=[*_CALL_LABELS, "gen_ai_token_type"])
        for labels, hist in sorted(t.tokens.items()):
            tokens.add_metric(list(labels), hist.buckets(), hist.total)
        yield tokens
        first = HistogramMetricFamily(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Time from a streamed model call's request to the first byte of its answer's body.", labels=_CALL_LABELS)
        for labels3, hist in sorted(t.first_chunk.items()):
            first.add_metric(list(labels3), hist.buckets(), hist.total)
        yield first
        calls = CounterMetricFamily("agentops_model_calls_total", "Model calls (HTTP attempts) through the gateway.", labels=_CALL_LABELS)
        for labels3, n in sorted(t.calls.items()):
            calls.add_metric(list(labels3), n)
        yield calls
        errors = CounterMetricFamily("agentops_model_errors_total", "Model calls that failed, by error type.",
                                     labels=[*_CALL_LABELS, "error_type"])
        for labels, n in sorted(t.errors.items()):
            errors.add_metric(list(labels), n)
        yield errors
        retries = CounterMetricFamily("agentops_model_retries_total", "Model call attempts that repeated an earlier attempt (client retries).",
                                      labels=_CALL_LABELS[:2])
        for labels2, n in sorted(t.retries.items()):
            retries.add_metric(list(labels2), n)
        yield retries
        interrupted = CounterMetricFamily("agentops_model_streams_interrupted_total", "Streamed answers that ended before their end marker.",
                                          labels=_CALL_LABELS[:2])
        for labels2, n in sorted(t.interrupted.items()):
            interrupted.add_metric(list(labels2), n)
        yield interrupted
        injected = CounterMetricFamily("agentops_model_faults_injected_total", "Model call attempts struck by a Model* fault, by fault type.",
                                       labels=["type"])
        for kind, n in sorted(t.injected.items()):
            injected.add_metric([kind], n)
        yield injected
