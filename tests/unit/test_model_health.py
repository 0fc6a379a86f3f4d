"""The agent's model calls as health: merging gateway summaries, status.model, the verdict, the guards."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from agentops.wire import validate_report
from agentops_operator import model_health, stop_conditions
from agentops_operator.health import DEGRADED, HEALTHY, UNHEALTHY, assess
from agentops_operator.resources import HealthThresholds, Key, StopCondition
from agentops_operator.telemetry_store import TelemetryStore

TH = HealthThresholds()  # model: minCalls 5, errors 10%/50%, first token 5000/20000 ms, no burn guards
WALL = datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
KEY = Key("ns", "bot")


def model_entry(**kw: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "provider": "OpenAI", "model": "gpt-4o-mini", "calls": 10, "retries": 0, "errors": {},
        "latencyMs": {"buckets": {"500": 10}}, "firstChunkMs": {"buckets": {"200": 10}},
        "inputTokens": 1000, "outputTokens": 200, "streams": 0, "streamsInterrupted": 0,
    }
    entry.update(kw)
    return entry


def report(*entries: dict[str, Any], sidecar: str = "sc-1", window: float = 30.0) -> Any:
    return validate_report({
        "agent": {"namespace": "ns", "name": "bot"}, "sidecar": sidecar,
        "instance": {"id": f"{sidecar}-pod", "restarts": 0}, "windowSeconds": window,
        "requests": 20, "errors": {}, "latencyMs": {"buckets": {"100": 20}},
        "probes": {"ok": 1, "failed": 0, "consecutiveFailures": 0, "lastError": None},
        "appliedFaults": [], "model": list(entries),
    })


def assessed(*reports: Any, th: HealthThresholds = TH) -> Any:
    store = TelemetryStore()
    for i, r in enumerate(reports):
        store.add(KEY, r, received=100.0 + i, wall=WALL)
    return assess(store.summary(KEY, now=100.0 + len(reports), window_s=60.0), th)


def test_no_model_calls_leave_status_model_out() -> None:
    a = assessed(report())
    assert a.phase == HEALTHY and a.model is None


def test_summaries_merge_across_reports_and_sidecars() -> None:
    a = assessed(
        report(model_entry(errors={"rate_limit": 1}, retries=1), sidecar="a"),
        report(model_entry(errors={"overloaded": 1}, streams=4, streamsInterrupted=1), sidecar="a"),
        report(model_entry(provider="Gemini", model="gemini-2.0-flash", inputTokens=500, outputTokens=100), sidecar="b"),
    )
    m = a.model
    assert m is not None
    assert (m["calls"], m["retries"], m["errors"], m["streamsInterrupted"]) == (30, 1, {"overloaded": 1, "rate_limit": 1}, 1)
    assert (m["inputTokens"], m["outputTokens"]) == (2500, 500)
    assert m["providers"] == ["Gemini", "OpenAI"]
    assert m["errorRate"] == round(2 / 30, 4)
    # Each reporter covered 60 s at most (2 × 30 s for "a"): 3,000 tokens over one minute.
    assert m["windowSeconds"] == 60.0 and m["tokensPerMinute"] == 3000.0
    assert m["latencyP95Ms"] == pytest.approx(500 * 0.95, rel=0.01)
    assert m["timeToFirstTokenP95Ms"] == pytest.approx(200 * 0.95, rel=0.01)
    assert "costPerHourUsd" not in m  # no price table, no estimate


@pytest.mark.parametrize(("errors", "phase", "reason"), [
    ({}, HEALTHY, "WithinThresholds"),
    ({"rate_limit": 1}, HEALTHY, "WithinThresholds"),  # 5%: agents retry; under degraded 10%
    ({"rate_limit": 2}, DEGRADED, "ModelErrorsElevated"),
    ({"rate_limit": 6, "overloaded": 4}, UNHEALTHY, "ModelErrors"),
])
def test_model_error_rate(errors: dict[str, int], phase: str, reason: str) -> None:
    a = assessed(report(model_entry(calls=20, errors=errors, latencyMs={"buckets": {"500": 20}},
                                    firstChunkMs={"buckets": {"200": 20}})))
    assert (a.phase, a.reason) == (phase, reason)


def test_model_error_message_names_the_error_types() -> None:
    a = assessed(report(model_entry(errors={"rate_limit": 5, "timeout": 1})))
    assert a.reason == "ModelErrors"
    assert "model error rate 60.0% ≥ 50.0% over 10 calls (rate_limit 5, timeout 1)" in a.message


def test_model_errors_need_min_calls() -> None:
    a = assessed(report(model_entry(calls=4, errors={"rate_limit": 4}, latencyMs={"buckets": {"500": 4}},
                                    firstChunkMs={"buckets": {"200": 4}})))
    assert a.phase == HEALTHY and a.model is not None and a.model["errorRate"] == 1.0


@pytest.mark.parametrize(("first_ms", "phase", "reason"), [
    ("1000", HEALTHY, "WithinThresholds"),
    ("6000", DEGRADED, "SlowFirstTokenElevated"),
    ("30000", UNHEALTHY, "SlowFirstToken"),
])
def test_time_to_first_token(first_ms: str, phase: str, reason: str) -> None:
    a = assessed(report(model_entry(firstChunkMs={"buckets": {first_ms: 10}}, latencyMs={"buckets": {"40000": 10}})))
    assert (a.phase, a.reason) == (phase, reason)


def test_token_burn_guards() -> None:
    th = HealthThresholds(tokens_per_minute_degraded=1000, tokens_per_minute_unhealthy=5000)
    # 1,200 tokens in a 30 s window: 2,400 tokens/min.
    a = assessed(report(model_entry(calls=2, latencyMs={"buckets": {"500": 2}}, firstChunkMs={"buckets": {"200": 2}})), th=th)
    assert (a.phase, a.reason) == (DEGRADED, "TokenBurn")
    assert "burning 2,400 tokens/min ≥ 1,000" in a.message
    hot = assessed(report(model_entry(inputTokens=3000)), th=th)
    assert (hot.phase, hot.reason) == (UNHEALTHY, "TokenBurn")


def test_cost_guard_prices_tokens() -> None:
    spec = {"models": {"prices": [{"model": "gpt-4o-mini", "inputPerMillionTokens": 150.0, "outputPerMillionTokens": 600.0}]},
            "health": {"model": {"costPerHour": {"unhealthy": 30.0}}}}
    th = HealthThresholds.from_spec(spec)
    a = assessed(report(model_entry()), th=th)
    # 1000 × 150/1e6 + 200 × 600/1e6 = $0.27 per 30 s window → $32.40/h.
    assert a.model is not None and a.model["costPerHourUsd"] == pytest.approx(32.4)
    assert (a.phase, a.reason) == (UNHEALTHY, "TokenBurn")
    assert "spending $32.40/h ≥ $30.00/h" in a.message


def test_an_unpriced_model_costs_nothing() -> None:
    th = HealthThresholds(prices=(("other-model", 1.0, 1.0),))
    m = model_health.metrics(model_health.merge([report(model_entry())["model"][0]]), 60.0, th)
    assert m is not None and m["costPerHourUsd"] == 0.0


def test_model_stop_conditions() -> None:
    m = assessed(report(model_entry(errors={"rate_limit": 6}))).model
    error_guard = (StopCondition(model_error_rate_above=0.5),)
    burn_guard = (StopCondition(tokens_per_minute_above=2000),)
    why, _ = stop_conditions.tripped(error_guard, agent="bot", metrics={}, min_samples=10, unhealthy_since=None, now=WALL,
                                     model=m, min_calls=5)
    assert why == "spec.stopConditions[0] modelErrorRateAbove 0.5 tripped on agent bot: model error rate 0.6 over 10 calls"
    why, _ = stop_conditions.tripped(error_guard, agent="bot", metrics={}, min_samples=10, unhealthy_since=None, now=WALL,
                                     model=m, min_calls=11)
    assert why is None  # too few calls to judge
    why, _ = stop_conditions.tripped(burn_guard, agent="bot", metrics={}, min_samples=10, unhealthy_since=None, now=WALL,
                                     model=m, min_calls=5)
    assert why == "spec.stopConditions[0] tokensPerMinuteAbove 2000 tripped on agent bot: 2,400 tokens/min"
    why, _ = stop_conditions.tripped(burn_guard, agent="bot", metrics={}, min_samples=10, unhealthy_since=None, now=WALL,
                                     model=None)
    assert why is None


def test_model_thresholds_from_spec() -> None:
    th = HealthThresholds.from_spec({"health": {"model": {"minCalls": 3, "errorRate": {"degraded": 0.2, "unhealthy": 0.3},
                                                          "timeToFirstTokenP95Ms": {"degraded": 10, "unhealthy": 20},
                                                          "tokensPerMinute": {"unhealthy": 99}}}})
    assert (th.model_min_calls, th.model_error_rate_degraded, th.model_error_rate_unhealthy) == (3, 0.2, 0.3)
    assert (th.first_token_p95_degraded_ms, th.first_token_p95_unhealthy_ms) == (10.0, 20.0)
    assert (th.tokens_per_minute_degraded, th.tokens_per_minute_unhealthy, th.cost_per_hour_unhealthy) == (None, 99.0, None)
