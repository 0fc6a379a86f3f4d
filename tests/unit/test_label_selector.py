"""agentops.label_selector and agentops_operator.resources: label selectors, specs with CRD defaults, times."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from agentops.errors import InvalidField
from agentops.label_selector import LabelSelector
from agentops.times import format_time, parse_time
from agentops_operator.resources import FaultSpec, HealthThresholds, Key


def sel(match_labels: dict[str, str] | None = None, *expressions: tuple[str, str, list[str] | None]) -> LabelSelector:
    raw: dict[str, Any] = {}  # a spec as the API server hands it over: JSON, possibly invalid
    if match_labels is not None:
        raw["matchLabels"] = match_labels
    if expressions:
        raw["matchExpressions"] = [
            {"key": k, "operator": op, **({"values": v} if v is not None else {})} for k, op, v in expressions
        ]
    return LabelSelector.from_spec(raw)


def test_empty_selector_matches_everything() -> None:
    s = LabelSelector.from_spec({})
    assert s.matches({}) and s.matches({"a": "b"})
    assert s.describe() == "<all>"


def test_match_labels_all_must_match() -> None:
    s = sel({"tier": "prod", "team": "a"})
    assert s.matches({"tier": "prod", "team": "a", "x": "y"})
    assert not s.matches({"tier": "prod"})
    assert not s.matches({"tier": "dev", "team": "a"})
    assert s.match_labels == (("team", "a"), ("tier", "prod"))  # sorted
    assert s.describe() == "team=a,tier=prod"


@pytest.mark.parametrize(
    ("expr", "labels", "expected"),
    [
        (("env", "In", ["prod", "staging"]), {"env": "prod"}, True),
        (("env", "In", ["prod", "staging"]), {"env": "dev"}, False),
        (("env", "In", ["prod"]), {}, False),
        (("env", "NotIn", ["prod"]), {"env": "dev"}, True),
        (("env", "NotIn", ["prod"]), {"env": "prod"}, False),
        (("env", "NotIn", ["prod"]), {}, True),  # absent label satisfies NotIn
        (("canary", "Exists", None), {"canary": ""}, True),
        (("canary", "Exists", None), {}, False),
        (("canary", "DoesNotExist", None), {}, True),
        (("canary", "DoesNotExist", None), {"canary": "true"}, False),
    ],
)
def test_match_expressions(expr: tuple[str, str, list[str] | None], labels: dict[str, str], expected: bool) -> None:
    assert sel(None, expr).matches(labels) is expected


def test_labels_and_expressions_are_anded() -> None:
    s = sel({"app": "bot"}, ("env", "In", ["prod"]), ("canary", "DoesNotExist", None))
    assert s.matches({"app": "bot", "env": "prod"})
    assert not s.matches({"app": "bot", "env": "prod", "canary": "1"})
    assert not s.matches({"app": "other", "env": "prod"})
    assert s.describe() == "app=bot,env in (prod),!canary"  # as kubectl get -l takes it


def test_from_spec_null_fields() -> None:
    s = LabelSelector.from_spec({"matchLabels": None, "matchExpressions": None})
    assert s == LabelSelector()
    s = LabelSelector.from_spec({"matchExpressions": [{"key": "k", "operator": "Exists", "values": None}]})
    assert s.match_expressions == (("k", "Exists", ()),)


def test_unknown_operator_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidField) as info:
        LabelSelector.from_spec({"matchExpressions": [{"key": "k", "operator": "Like"}]}, "spec.target.selector")
    assert info.value.field == "spec.target.selector.matchExpressions[0].operator"
    assert "In, NotIn, Exists, DoesNotExist" in str(info.value)


def test_text_is_kubectl_syntax() -> None:
    s = sel({"tier": "frontline"}, ("zone", "In", ["a", "b"]), ("env", "NotIn", ["dev"]), ("gpu", "Exists", None),
            ("canary", "DoesNotExist", None))
    assert s.text() == "tier=frontline,zone in (a,b),env notin (dev),gpu,!canary"
    assert LabelSelector().text() == ""


def test_key() -> None:
    k = Key("ns", "name")
    assert str(k) == "ns/name"
    assert k == ("ns", "name") and hash(k) == hash(("ns", "name"))


def test_times() -> None:
    assert parse_time(None) is None and parse_time("") is None
    t = parse_time("2024-05-01T10:00:00Z")
    assert t == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
    plus2 = timezone(timedelta(hours=2))
    assert format_time(datetime(2024, 5, 1, 12, 0, 0, 999_999, tzinfo=plus2)) == "2024-05-01T10:00:00Z"
    assert format_time(parse_time("2024-05-01T10:00:00.5+00:00")) == "2024-05-01T10:00:00Z"  # type: ignore[arg-type]


def test_health_thresholds_defaults_and_spec() -> None:
    assert HealthThresholds.from_spec({}) == HealthThresholds()
    assert HealthThresholds.from_spec({"health": None}) == HealthThresholds()
    th = HealthThresholds.from_spec({"health": {
        "heartbeatTimeout": "1m", "window": "2m30s", "minSamples": 5, "probeFailureThreshold": 1,
        "latencyP95Ms": {"degraded": 200, "unhealthy": 900}, "errorRate": {"degraded": 0.1, "unhealthy": 0.5},
    }})
    assert th == HealthThresholds(60.0, 150.0, 5, 1, 200.0, 900.0, 0.1, 0.5)
    # A partial block keeps the other defaults.
    assert HealthThresholds.from_spec({"health": {"latencyP95Ms": {"degraded": 10}}}).latency_p95_unhealthy_ms == 4000.0


def test_health_thresholds_bad_duration_names_field() -> None:
    with pytest.raises(InvalidField) as info:
        HealthThresholds.from_spec({"health": {"window": "forever"}})
    assert info.value.field == "spec.health.window"


def test_fault_spec() -> None:
    spec = FaultSpec.from_spec({"type": "Latency", "duration": "5m", "target": {"agent": "bot"},
                                "latency": {"delayMs": 2500, "jitterMs": 100}, "error": {"statusCode": 500}})
    assert spec == FaultSpec("Latency", 300.0, 100.0, "bot", None, {"delayMs": 2500, "jitterMs": 100})
    spec = FaultSpec.from_spec({"type": "Error", "duration": "30s", "match": {"percentage": 25},
                                "target": {"selector": {"matchLabels": {"tier": "prod"}}}, "error": {"statusCode": 503}})
    assert spec.percentage == 25.0
    assert spec.target_agent is None
    assert spec.target_selector == LabelSelector(match_labels=(("tier", "prod"),))
    assert spec.params == {"statusCode": 503}
    spec = FaultSpec.from_spec({"type": "Crash", "duration": "1s", "target": {"agent": "a"}})
    assert spec.params == {}
    # An empty selector is a selector (match all), not "no selector".
    assert FaultSpec.from_spec({"type": "Crash", "duration": "1s", "target": {"selector": {}}}).target_selector == LabelSelector()


def test_fault_spec_missing_duration() -> None:
    with pytest.raises(InvalidField) as info:
        FaultSpec.from_spec({"type": "Latency", "target": {"agent": "a"}})
    assert info.value.field == "spec.duration"
