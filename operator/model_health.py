"""Health of an agent's own model calls: pure functions, no I/O, no clock.

The sidecar's model gateway reports, per provider and model, how many calls the agent
made, how they failed, how long they took to the first byte and to the end, and the
tokens the provider counted. This module merges those summaries over the health
window into `status.model` and judges them against `spec.health.model`:

* with at least `minCalls` calls in the window: the model error rate at or over its
  `unhealthy` threshold → Unhealthy (ModelErrors), over `degraded` → Degraded
  (ModelErrorsElevated); time to first token p95 likewise (SlowFirstToken,
  SlowFirstTokenElevated). Agents retry, so the defaults are looser than the HTTP ones.
* the runaway guards, judged on any number of calls because one long loop is enough:
  tokens per minute (input + output, averaged over the window) at or over
  `tokensPerMinute.unhealthy`, or the estimated spend at or over
  `costPerHour.unhealthy` → Unhealthy (TokenBurn); over `tokensPerMinute.degraded` →
  Degraded (TokenBurn).

Cost is an estimate: tokens × `spec.models.prices` (US dollars per million tokens),
extrapolated from the window to an hour. A model without a price costs nothing here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Mapping

from agentops.api_types import AgentModelMetrics, AgentPhase, ModelProvider
from agentops.wire import MODEL_PROVIDERS, ModelCallSummary
from agentops_operator.histograms import add_buckets, add_counts, quantile
from agentops_operator.resources import HealthThresholds

Finding = tuple[AgentPhase, str, str]  # (phase, reason, message)


@dataclass
class ModelSeries:
    """One provider/model's calls over the window, merged across reports and replicas."""

    calls: int = 0
    retries: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latency_buckets: dict[float, int] = field(default_factory=dict)
    first_chunk_buckets: dict[float, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    streams: int = 0
    streams_interrupted: int = 0

    def add(self, s: ModelCallSummary) -> None:
        """Add one report's summary (histograms keyed by bound as text)."""
        self.calls += s["calls"]
        self.retries += s["retries"]
        add_counts(self.errors, s["errors"])
        add_buckets(self.latency_buckets, s["latencyMs"]["buckets"])
        add_buckets(self.first_chunk_buckets, s["firstChunkMs"]["buckets"])
        self.input_tokens += s["inputTokens"]
        self.output_tokens += s["outputTokens"]
        self.streams += s["streams"]
        self.streams_interrupted += s["streamsInterrupted"]

    def absorb(self, other: ModelSeries) -> None:
        """Add another merged series (the agent's total over all its models)."""
        self.calls += other.calls
        self.retries += other.retries
        add_counts(self.errors, other.errors)
        add_counts(self.latency_buckets, other.latency_buckets)
        add_counts(self.first_chunk_buckets, other.first_chunk_buckets)
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.streams += other.streams
        self.streams_interrupted += other.streams_interrupted


def merge(summaries: Iterable[ModelCallSummary]) -> dict[tuple[ModelProvider, str], ModelSeries]:
    """Add up per-report summaries by (provider, model)."""
    merged: dict[tuple[ModelProvider, str], ModelSeries] = {}
    for s in summaries:
        key = (s["provider"], s["model"])
        series = merged.get(key)
        if series is None:
            series = merged[key] = ModelSeries()
        series.add(s)
    return merged


def metrics(series: Mapping[tuple[ModelProvider, str], ModelSeries], covered_s: float, th: HealthThresholds) -> AgentModelMetrics | None:
    """status.model for the window, or None when the agent made no model call in it."""
    if not series:
        return None
    total = ModelSeries()
    cost_per_window = 0.0
    for (_, model), s in series.items():
        total.absorb(s)
        price = th.price(model)
        if price is not None:
            cost_per_window += (s.input_tokens * price[0] + s.output_tokens * price[1]) / 1_000_000
    if total.calls == 0 and total.input_tokens + total.output_tokens == 0:
        return None
    minutes = max(covered_s, 1.0) / 60.0  # a window just begun is not extrapolated from a blink
    failed = sum(total.errors.values())
    out = AgentModelMetrics(
        calls=total.calls,
        errorRate=round(failed / total.calls, 4) if total.calls else 0.0,
        errors={k: n for k, n in sorted(total.errors.items()) if n},
        retries=total.retries,
        streamsInterrupted=total.streams_interrupted,
        inputTokens=total.input_tokens,
        outputTokens=total.output_tokens,
        tokensPerMinute=round((total.input_tokens + total.output_tokens) / minutes, 1),
        providers=sorted({provider for provider, _ in series}, key=MODEL_PROVIDERS.index),
        windowSeconds=round(covered_s, 1),
    )
    p95 = quantile(total.latency_buckets, 0.95)
    if p95 is not None:
        out["latencyP95Ms"] = round(p95, 1)
    first = quantile(total.first_chunk_buckets, 0.95)
    if first is not None:
        out["timeToFirstTokenP95Ms"] = round(first, 1)
    if th.prices:
        out["costPerHourUsd"] = round(cost_per_window / minutes * 60.0, 4)
    return out


def findings(m: AgentModelMetrics | None, th: HealthThresholds) -> list[Finding]:
    """What the model metrics say against spec.health.model, worst first within each signal."""
    if m is None:
        return []
    found: list[Finding] = []
    calls = int(m.get("calls", 0))
    if calls >= th.model_min_calls:
        rate = float(m.get("errorRate", 0.0))
        kinds = ", ".join(f"{k} {n}" for k, n in sorted((m.get("errors") or {}).items(), key=lambda kv: -kv[1]))
        detail = f" ({kinds})" if kinds else ""
        if rate >= th.model_error_rate_unhealthy:
            found.append(("Unhealthy", "ModelErrors",
                          f"model error rate {rate:.1%} ≥ {th.model_error_rate_unhealthy:.1%} over {calls} calls{detail}"))
        elif rate >= th.model_error_rate_degraded:
            found.append(("Degraded", "ModelErrorsElevated",
                          f"model error rate {rate:.1%} ≥ {th.model_error_rate_degraded:.1%} over {calls} calls{detail}"))
        first = m.get("timeToFirstTokenP95Ms")
        if first is not None and first >= th.first_token_p95_unhealthy_ms:
            found.append(("Unhealthy", "SlowFirstToken",
                          f"time to first token p95 {first:.0f}ms ≥ {th.first_token_p95_unhealthy_ms:g}ms"))
        elif first is not None and first >= th.first_token_p95_degraded_ms:
            found.append(("Degraded", "SlowFirstTokenElevated",
                          f"time to first token p95 {first:.0f}ms ≥ {th.first_token_p95_degraded_ms:g}ms"))
    burn = float(m.get("tokensPerMinute", 0.0))
    cost = m.get("costPerHourUsd")
    if th.tokens_per_minute_unhealthy is not None and burn >= th.tokens_per_minute_unhealthy:
        found.append(("Unhealthy", "TokenBurn", f"burning {burn:,.0f} tokens/min ≥ {th.tokens_per_minute_unhealthy:,.0f}"))
    elif th.cost_per_hour_unhealthy is not None and cost is not None and cost >= th.cost_per_hour_unhealthy:
        found.append(("Unhealthy", "TokenBurn", f"spending ${cost:,.2f}/h ≥ ${th.cost_per_hour_unhealthy:,.2f}/h"))
    elif th.tokens_per_minute_degraded is not None and burn >= th.tokens_per_minute_degraded:
        found.append(("Degraded", "TokenBurn", f"burning {burn:,.0f} tokens/min ≥ {th.tokens_per_minute_degraded:,.0f}"))
    return found
