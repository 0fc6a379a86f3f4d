"""A Fault's guards on its targets (spec.stopConditions): pure checks, no I/O.

A guard trips on the first target that crosses it. Error rate and latency are read
from the target's current health metrics and judged only when its window holds
`minSamples` requests — the same rule the health verdict follows, so a guard never
fires on three unlucky requests. `unhealthyFor` reads the healing loop's record of
how long the target has been Unhealthy without a break. The model guards read the
target's status.model: its error rate once the window holds `minCalls` calls (the
model health rule), its token burn always.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from agentops.api_types import AgentMetrics, AgentModelMetrics
from agentops.times import format_time
from agentops_operator.resources import StopCondition


def tripped(
    conditions: tuple[StopCondition, ...],
    *,
    agent: str,
    metrics: AgentMetrics,
    min_samples: int,
    unhealthy_since: datetime | None,
    now: datetime,
    model: AgentModelMetrics | None = None,
    min_calls: int = 1,
) -> tuple[str | None, datetime | None]:
    """(why the first tripped guard tripped, or None; when to look again with time alone)."""
    judged = int(metrics.get("requests", 0)) >= min_samples
    calls = int((model or {}).get("calls", 0))
    recheck: datetime | None = None
    for i, c in enumerate(conditions):
        where = f"spec.stopConditions[{i}]"
        if c.error_rate_above is not None and judged and float(metrics.get("errorRate", 0.0)) > c.error_rate_above:
            return (f"{where} errorRateAbove {c.error_rate_above:g} tripped on agent {agent}: "
                    f"error rate {float(metrics['errorRate']):.3g} over {int(metrics['requests'])} requests"), None
        p95 = metrics.get("latencyP95Ms")
        if c.latency_p95_ms_above is not None and judged and p95 is not None and float(p95) > c.latency_p95_ms_above:
            return f"{where} latencyP95MsAbove {c.latency_p95_ms_above:g} tripped on agent {agent}: p95 latency {float(p95):.0f}ms", None
        if c.unhealthy_for_s is not None and unhealthy_since is not None:
            due = unhealthy_since + timedelta(seconds=c.unhealthy_for_s)
            if now >= due:
                return (f"{where} unhealthyFor {c.unhealthy_for_s:g}s tripped on agent {agent}: "
                        f"Unhealthy since {format_time(unhealthy_since)}"), None
            recheck = due if recheck is None else min(recheck, due)
        if c.model_error_rate_above is not None and model is not None and calls >= min_calls \
                and float(model.get("errorRate", 0.0)) > c.model_error_rate_above:
            return (f"{where} modelErrorRateAbove {c.model_error_rate_above:g} tripped on agent {agent}: "
                    f"model error rate {float(model['errorRate']):.3g} over {calls} calls"), None
        if c.tokens_per_minute_above is not None and model is not None \
                and float(model.get("tokensPerMinute", 0.0)) > c.tokens_per_minute_above:
            return (f"{where} tokensPerMinuteAbove {c.tokens_per_minute_above:g} tripped on agent {agent}: "
                    f"{float(model['tokensPerMinute']):,.0f} tokens/min"), None
    return None, recheck
