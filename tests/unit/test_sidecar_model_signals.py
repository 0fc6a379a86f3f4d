"""Model-call signals: the telemetry window's per-model summaries (bounded, mergeable,
accepted by the operator's validator) and the GenAI series on /metrics."""

from __future__ import annotations

import re
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from agentops.wire import MAX_MODEL_SERIES, validate_report
from agentops_sidecar.model_signals import CallRecord, ModelCollector, ModelTotals, ModelWindow
from agentops_sidecar.window import Window


def call(model: str = "m", provider: Any = "OpenAI", **changes: Any) -> CallRecord:
    fields: dict[str, Any] = dict(provider=provider, model=model, operation="chat", streams=False, retry=False, error=None,
                                  seconds=0.2, first_chunk_s=None, input_tokens=10, output_tokens=4, usage_seen=True)
    fields.update(changes)
    return CallRecord(**fields)


def report(window: Window) -> dict[str, Any]:
    return dict(window.report(namespace="ns", agent="a", sidecar="s", instance={"id": "i", "restarts": 0}, now=window.started + 1,
                              consecutive_failures=0, last_error=None))


def test_a_window_without_model_calls_sends_no_model_field() -> None:
    assert "model" not in report(Window(started=0.0))


def test_window_summaries_are_what_the_operator_accepts() -> None:
    window = Window(started=0.0)
    window.model.record(call())
    window.model.record(call(retry=True, error="rate_limit", input_tokens=0, output_tokens=0, usage_seen=False))
    window.model.record(call("g", "Gemini", streams=True, first_chunk_s=0.05, error="stream_interrupted"))
    body = report(window)
    validated = validate_report(body)
    openai, gemini = sorted(validated["model"], key=lambda s: s["provider"], reverse=True)
    assert (openai["calls"], openai["retries"], openai["errors"], openai["inputTokens"], openai["outputTokens"]) == (2, 1, {"rate_limit": 1}, 10, 4)
    assert sum(openai["latencyMs"]["buckets"].values()) == 2 and openai["firstChunkMs"]["buckets"] == {}
    assert (gemini["streams"], gemini["streamsInterrupted"], sum(gemini["firstChunkMs"]["buckets"].values())) == (1, 1, 1)


def test_models_past_the_limit_fold_into_other_and_merging_keeps_the_bound() -> None:
    older, newer = ModelWindow(), ModelWindow()
    for i in range(40):
        older.record(call(f"old-{i}"))
        newer.record(call(f"new-{i}", "Anthropic"))
    newer.merge_older(older)
    assert len(newer.series) <= MAX_MODEL_SERIES
    assert sum(s.calls for s in newer.series.values()) == 80
    assert ("OpenAI", "other") in newer.series and ("Anthropic", "other") in newer.series
    window = Window(started=0.0)
    window.model = newer
    validate_report(report(window))


def test_an_undelivered_window_carries_its_model_calls() -> None:
    older, newer = Window(started=0.0), Window(started=5.0)
    older.model.record(call())
    newer.model.record(call())
    newer.merge_older(older)
    assert newer.model.series[("OpenAI", "m")].calls == 2


def exposition(totals: ModelTotals) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ModelCollector(totals))
    return generate_latest(registry).decode()


def test_metrics_use_the_genai_names_and_bounded_labels() -> None:
    totals = ModelTotals()
    totals.record(call())
    totals.record(call("g", "Gemini", operation="generate_content", streams=True, first_chunk_s=0.05, error="stream_interrupted", retry=True))
    totals.fault_injected("ModelStreamCut")
    for i in range(100):
        totals.record(call(f"flood-{i}", "Anthropic", usage_seen=False))
    text = exposition(totals)
    assert 'gen_ai_client_operation_duration_seconds_bucket{error_type="",gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="m",le="0.32"} 1.0' in text
    assert 'gen_ai_client_token_usage_sum{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="m",gen_ai_token_type="input"} 10.0' in text
    assert 'gen_ai_client_operation_time_to_first_chunk_seconds_count{gen_ai_operation_name="generate_content",gen_ai_provider_name="gcp.gemini",gen_ai_request_model="g"} 1.0' in text
    assert 'agentops_model_errors_total{error_type="stream_interrupted",gen_ai_operation_name="generate_content",gen_ai_provider_name="gcp.gemini",gen_ai_request_model="g"} 1.0' in text
    assert 'agentops_model_retries_total{gen_ai_provider_name="gcp.gemini",gen_ai_request_model="g"} 1.0' in text
    assert 'agentops_model_streams_interrupted_total{gen_ai_provider_name="gcp.gemini",gen_ai_request_model="g"} 1.0' in text
    assert 'agentops_model_faults_injected_total{type="ModelStreamCut"} 1.0' in text
    models = set(re.findall(r'gen_ai_request_model="([^"]+)"', text))
    assert len(models) <= MAX_MODEL_SERIES and "other" in models
    calls = re.findall(r'agentops_model_calls_total\{[^}]*gen_ai_provider_name="anthropic"[^}]*\} ([0-9.]+)', text)
    assert sum(float(n) for n in calls) == 100


def test_every_family_has_a_help_sentence() -> None:
    for family in ModelCollector(ModelTotals()).collect():
        assert family.documentation.endswith("."), family.name
        assert re.fullmatch(r"(gen_ai_client|agentops_model)_[a-z0-9_]+", family.name), family.name
