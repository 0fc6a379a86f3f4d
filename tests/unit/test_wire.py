"""agentops.wire.validate_report: the sidecar → operator telemetry contract."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest

from agentops.errors import InvalidField
from agentops.wire import (
    ERROR_CLASSES,
    LATENCY_BUCKETS_MS,
    MAX_APPLIED_FAULTS,
    MAX_BUCKETS,
    MAX_COUNT,
    MAX_ERROR_TEXT,
    MAX_MODEL_SERIES,
    MODEL_ERROR_TYPES,
    OPTIONAL_REPORT_FIELDS,
    SERVER_ERROR_CLASSES,
    TelemetryReport,
    bucket_bound,
    validate_report,
)


def report(**overrides: Any) -> dict[str, Any]:
    """A realistic, valid report as a sidecar would send it (decoded JSON)."""
    body: dict[str, Any] = {
        "agent": {"namespace": "team-a", "name": "support-bot"},
        "sidecar": "support-bot-7d9f-abcde",
        "instance": {"id": "pod-uid-1", "restarts": 2},
        "windowSeconds": 5.0,
        "requests": 100,
        "errors": {"http5xx": 3, "http4xx": 7, "timeout": 1, "connection": 0},
        "latencyMs": {"buckets": {"100": 50, "250": 40, "1000": 8, "+Inf": 2}},
        "probes": {"ok": 4, "failed": 1, "consecutiveFailures": 0, "lastError": "connection refused", "starting": False},
        "appliedFaults": ["f-uid-1"],
        "model": [model_entry()],
    }
    body.update(overrides)
    return body


def model_entry(**overrides: Any) -> dict[str, Any]:
    """One provider/model summary as a sidecar's gateway sends it."""
    entry: dict[str, Any] = {
        "provider": "OpenAI", "model": "gpt-4o-mini", "calls": 10, "retries": 2,
        "errors": {"rate_limit": 3, "stream_interrupted": 1},
        "latencyMs": {"buckets": {"250": 8, "1000": 2}}, "firstChunkMs": {"buckets": {"100": 10}},
        "inputTokens": 1200, "outputTokens": 340, "streams": 4, "streamsInterrupted": 1,
    }
    entry.update(overrides)
    return entry


def test_valid_report_round_trips() -> None:
    raw = report()
    original = copy.deepcopy(raw)
    out = validate_report(json.loads(json.dumps(raw)))
    assert out == original  # already normal: nothing lost, nothing added
    assert raw == original  # the input is not mutated
    assert set(out) == set(TelemetryReport.__annotations__)
    assert isinstance(out["windowSeconds"], float)


def test_optional_fields_are_the_typed_dicts_not_required_ones() -> None:
    from typing import get_type_hints
    hints = get_type_hints(TelemetryReport, include_extras=True)
    optional = {name for name, hint in hints.items() if "NotRequired" in repr(hint)}
    assert optional == OPTIONAL_REPORT_FIELDS
    older = report()
    del older["model"]
    assert "model" not in validate_report(older)  # a sidecar without a gateway


@pytest.mark.parametrize(("entry", "field", "says"), [
    ({"provider": "Mistral"}, "model[0].provider", "Gemini, OpenAI, Anthropic"),
    ({"errors": {"boom": 1}}, "model[0].errors.boom", "rate_limit"),
    ({"errors": {"rate_limit": 11}}, "model[0].errors", "exceeds calls 10"),
    ({"retries": 11}, "model[0].retries", "more than calls 10"),
    ({"streamsInterrupted": 5}, "model[0].streamsInterrupted", "more than streams 4"),
    ({"inputTokens": -1}, "model[0].inputTokens", "integer between"),
    ({"model": "m" * 129}, "model[0].model", "at most 128"),
    ({"latencyMs": {"buckets": {"10": 11}}}, "model[0].latencyMs.buckets", "more than calls 10"),
    ({"firstChunkMs": {"buckets": {"x": 1}}}, "model[0].firstChunkMs.buckets", "not a number"),
    ({"surprise": 1}, "model[0].surprise", "unknown field"),
])
def test_bad_model_summaries_name_the_field(entry: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(InvalidField) as err:
        validate_report(report(model=[model_entry(**entry)]))
    assert err.value.field == field and says in str(err.value)


def test_model_summaries_are_bounded_and_unique() -> None:
    many = [model_entry(model=f"m{i}") for i in range(MAX_MODEL_SERIES + 1)]
    with pytest.raises(InvalidField, match="at most 32"):
        validate_report(report(model=many))
    with pytest.raises(InvalidField, match="second entry"):
        validate_report(report(model=[model_entry(), model_entry()]))
    assert set(MODEL_ERROR_TYPES) >= {"rate_limit", "overloaded", "timeout", "safety_block"}


def test_normalisation() -> None:
    raw = report(windowSeconds=5, instance={"id": "i"}, probes={}, errors={}, latencyMs={"buckets": {}})
    out = validate_report(raw)
    assert out["windowSeconds"] == 5.0 and isinstance(out["windowSeconds"], float)
    assert out["instance"] == {"id": "i", "restarts": 0}
    # `starting` is optional on the wire (older sidecars omit it) and reads as False.
    assert out["probes"] == {"ok": 0, "failed": 0, "consecutiveFailures": 0, "lastError": None, "starting": False}
    assert out["errors"] == {}
    assert out["latencyMs"] == {"buckets": {}}


def test_extra_nested_keys_are_dropped() -> None:
    out = validate_report(report(agent={"namespace": "ns", "name": "a", "extra": 1}))
    assert out["agent"] == {"namespace": "ns", "name": "a"}


def test_last_error_truncated_and_empty_becomes_none() -> None:
    long = "x" * (MAX_ERROR_TEXT + 50)
    out = validate_report(report(probes={"ok": 0, "failed": 1, "consecutiveFailures": 1, "lastError": long}))
    assert out["probes"]["lastError"] == "x" * MAX_ERROR_TEXT
    out = validate_report(report(probes={"lastError": ""}))
    assert out["probes"]["lastError"] is None


def test_limits_inclusive() -> None:
    out = validate_report(report(requests=MAX_COUNT, windowSeconds=3600.0, errors={"http5xx": MAX_COUNT}))
    assert out["requests"] == MAX_COUNT
    assert validate_report(report(agent={"namespace": "n" * 63, "name": "a" * 253}))["agent"]["name"] == "a" * 253
    assert len(validate_report(report(appliedFaults=[f"u{i}" for i in range(MAX_APPLIED_FAULTS)]))["appliedFaults"]) == MAX_APPLIED_FAULTS
    buckets = {str(i + 1): 0 for i in range(MAX_BUCKETS - 1)} | {"+Inf": 1}
    assert len(validate_report(report(latencyMs={"buckets": buckets}))["latencyMs"]["buckets"]) == MAX_BUCKETS


def test_errors_may_equal_requests() -> None:
    out = validate_report(report(requests=4, errors={"http5xx": 2, "http4xx": 2}, latencyMs={"buckets": {"+Inf": 4}}))
    assert sum(out["errors"].values()) == 4


def _without(field: str) -> dict[str, Any]:
    body = report()
    del body[field]
    return body


INVALID: list[tuple[str, Any, str]] = [
    ("not an object", ["a"], "report"),
    ("null", None, "report"),
    ("unknown field", report(extra=1), "extra"),
    ("typo'd field, first unknown in order", report(zz=1, aa=2), "aa"),
    ("missing agent", _without("agent"), "agent"),
    ("missing requests", _without("requests"), "requests"),
    ("missing appliedFaults", _without("appliedFaults"), "appliedFaults"),
    ("agent not object", report(agent="team-a/bot"), "agent"),
    ("empty namespace", report(agent={"namespace": "", "name": "a"}), "agent.namespace"),
    ("namespace too long", report(agent={"namespace": "n" * 64, "name": "a"}), "agent.namespace"),
    ("name too long", report(agent={"namespace": "ns", "name": "a" * 254}), "agent.name"),
    ("name not string", report(agent={"namespace": "ns", "name": 7}), "agent.name"),
    ("instance without id", report(instance={"restarts": 0}), "instance.id"),
    ("negative restarts", report(instance={"id": "i", "restarts": -1}), "instance.restarts"),
    ("sidecar empty", report(sidecar=""), "sidecar"),
    ("bool as count", report(requests=True), "requests"),
    ("float as count", report(requests=10.0), "requests"),
    ("string as count", report(requests="10"), "requests"),
    ("negative count", report(requests=-1), "requests"),
    ("count too big", report(requests=MAX_COUNT + 1), "requests"),
    ("errors not object", report(errors=[1]), "errors"),
    ("unknown error class", report(errors={"http3xx": 1}), "errors.http3xx"),
    ("bool error count", report(errors={"timeout": False}), "errors.timeout"),
    ("negative error count", report(errors={"http5xx": -1}), "errors.http5xx"),
    ("errors > requests", report(requests=3, errors={"http5xx": 2, "http4xx": 2}, latencyMs={"buckets": {}}), "errors"),
    ("latencyMs not object", report(latencyMs=[]), "latencyMs"),
    ("buckets missing", report(latencyMs={}), "latencyMs.buckets"),
    ("bad bucket bound", report(latencyMs={"buckets": {"fast": 1}}), "latencyMs.buckets"),
    ("zero bucket bound", report(latencyMs={"buckets": {"0": 1}}), "latencyMs.buckets"),
    ("negative bucket bound", report(latencyMs={"buckets": {"-5": 1}}), "latencyMs.buckets"),
    ("nan bucket bound", report(latencyMs={"buckets": {"nan": 1}}), "latencyMs.buckets"),
    ("lowercase inf bound", report(latencyMs={"buckets": {"inf": 1}}), "latencyMs.buckets"),
    ("bool bucket count", report(latencyMs={"buckets": {"100": True}}), "latencyMs.buckets.100"),
    ("buckets sum > requests", report(requests=10, errors={}, latencyMs={"buckets": {"100": 6, "+Inf": 5}}), "latencyMs.buckets"),
    ("too many buckets", report(latencyMs={"buckets": {str(i + 1): 0 for i in range(MAX_BUCKETS + 1)}}), "latencyMs.buckets"),
    ("windowSeconds 0", report(windowSeconds=0), "windowSeconds"),
    ("windowSeconds negative", report(windowSeconds=-1.0), "windowSeconds"),
    ("windowSeconds too big", report(windowSeconds=3600.5), "windowSeconds"),
    ("windowSeconds bool", report(windowSeconds=True), "windowSeconds"),
    ("windowSeconds string", report(windowSeconds="5"), "windowSeconds"),
    ("windowSeconds inf", report(windowSeconds=math.inf), "windowSeconds"),
    ("windowSeconds nan", report(windowSeconds=math.nan), "windowSeconds"),
    ("probes not object", report(probes=None), "probes"),
    ("non-string lastError", report(probes={"lastError": 500}), "probes.lastError"),
    ("negative consecutiveFailures", report(probes={"consecutiveFailures": -2}), "probes.consecutiveFailures"),
    ("appliedFaults not list", report(appliedFaults="f-uid-1"), "appliedFaults"),
    ("appliedFaults too long", report(appliedFaults=[f"u{i}" for i in range(MAX_APPLIED_FAULTS + 1)]), "appliedFaults"),
    ("appliedFaults empty uid", report(appliedFaults=["ok", ""]), "appliedFaults[1]"),
    ("appliedFaults non-string uid", report(appliedFaults=[None]), "appliedFaults[0]"),
]


@pytest.mark.parametrize(("payload", "field"), [(p, f) for _, p, f in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_reports(payload: Any, field: str) -> None:
    with pytest.raises(InvalidField) as info:
        validate_report(payload)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_unknown_field_message_lists_allowed() -> None:
    with pytest.raises(InvalidField) as info:
        validate_report(report(requets=1))
    assert "allowed fields are agent, appliedFaults, errors" in info.value.problem


def test_bucket_bound() -> None:
    assert bucket_bound("+Inf") == math.inf
    assert bucket_bound("2.5") == 2.5
    assert bucket_bound("1000") == 1000.0
    with pytest.raises(InvalidField) as info:
        bucket_bound("0")
    assert info.value.field == "latencyMs.buckets"


def test_constants() -> None:
    assert len(LATENCY_BUCKETS_MS) == 143
    assert LATENCY_BUCKETS_MS[0] == 1.0
    assert LATENCY_BUCKETS_MS[1] == 1.1
    assert list(LATENCY_BUCKETS_MS) == sorted(set(LATENCY_BUCKETS_MS))
    assert 600_000 < LATENCY_BUCKETS_MS[-1] < 900_000  # about ten minutes
    assert set(SERVER_ERROR_CLASSES) == set(ERROR_CLASSES) - {"http4xx"}
    # Every default bound survives the string round trip used on the wire.
    assert all(bucket_bound(str(b)) == b for b in LATENCY_BUCKETS_MS)


def test_probes_starting_must_be_a_boolean() -> None:
    with pytest.raises(InvalidField, match="probes.starting: must be true or false"):
        validate_report(report(probes={"ok": 0, "failed": 1, "consecutiveFailures": 0, "lastError": None, "starting": "yes"}))
