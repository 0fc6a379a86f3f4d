"""The CRD schemas and agentops.api_types describe the same objects, field for field.

A walk over both: every property of the schema is a key of the TypedDict and the
reverse, an `enum` is the `Literal`'s values, an array is a `list[...]`, a nested
object a nested TypedDict (or `dict[str, str]` for a free-form map).
"""

from __future__ import annotations

import types
from dataclasses import replace
import typing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest
import yaml

from agentops import api_types
from agentops_operator import check_settings, resources
from agentops_sidecar.faults import parse_fault

ROOT = Path(__file__).resolve().parents[2]


def _schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / f"{kind}.yaml").read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _literal_values(tp: Any) -> list[str] | None:
    if get_origin(tp) is Literal:
        return [str(v) for v in get_args(tp)]
    return None


def _required_keys(tp: Any) -> set[str]:
    """A TypedDict's required keys, read from its annotations: `__required_keys__` misses
    Required/NotRequired under postponed annotations before Python 3.12."""
    keys = set()
    for name, hint in get_type_hints(tp, include_extras=True).items():
        origin = get_origin(hint)
        if origin is typing.Required or (origin is not typing.NotRequired and tp.__total__):
            keys.add(name)
    return keys


def _compare(schema: dict[str, Any], tp: Any, path: str, problems: list[str]) -> None:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        tp = next(a for a in get_args(tp) if a is not type(None))
        origin = get_origin(tp)
    kind: Any = schema.get("type")  # JSON from the CRD's YAML: a type name, or absent
    if "enum" in schema:
        values = _literal_values(tp)
        if values is None or sorted(values) != sorted(str(v) for v in schema["enum"]):
            problems.append(f"{path}: CRD enum {schema['enum']} vs type {tp}")
        return
    if _literal_values(tp) is not None and kind == "string":
        problems.append(f"{path}: type is a Literal but the CRD has no enum")
        return
    if kind == "object" and "properties" in schema:
        if not is_typeddict(tp):
            problems.append(f"{path}: CRD object with properties vs type {tp}")
            return
        hints = get_type_hints(tp)
        crd_fields, py_fields = set(schema["properties"]), set(hints)
        crd_required, py_required = set(schema.get("required") or ()), _required_keys(tp)
        if crd_required != py_required:
            problems.append(f"{path}: CRD requires {sorted(crd_required)}, {tp.__name__} requires {sorted(py_required)}")
        for missing in sorted(crd_fields - py_fields):
            problems.append(f"{path}.{missing}: in the CRD, not in {tp.__name__}")
        for extra in sorted(py_fields - crd_fields):
            problems.append(f"{path}.{extra}: in {tp.__name__}, not in the CRD (the API server would prune it)")
        for name in sorted(crd_fields & py_fields):
            _compare(schema["properties"][name], hints[name], f"{path}.{name}", problems)
        return
    if kind == "object":  # a free-form map (additionalProperties)
        if origin is not dict:
            problems.append(f"{path}: CRD map vs type {tp}")
        return
    if kind == "array":
        if origin is not list:
            problems.append(f"{path}: CRD array vs type {tp}")
            return
        _compare(schema["items"], get_args(tp)[0], f"{path}[]", problems)
        return
    expected = {"string": (str,), "integer": (int,), "number": (float, int), "boolean": (bool,)}[kind]
    if tp not in expected:
        problems.append(f"{path}: CRD {kind} vs type {tp}")


@pytest.mark.parametrize(("kind", "block", "tp"), [
    ("agent", "spec", api_types.AgentSpecBody),
    ("agent", "status", api_types.AgentStatus),
    ("fault", "spec", api_types.FaultSpecBody),
    ("fault", "status", api_types.FaultStatus),
    ("resiliencecheck", "spec", api_types.CheckSpecBody),
    ("resiliencecheck", "status", api_types.CheckStatus),
])
def test_crd_schema_and_types_agree(kind: str, block: str, tp: Any) -> None:
    problems: list[str] = []
    _compare(_schema(kind)["properties"][block], tp, f"{kind}.{block}", problems)
    assert problems == []


def test_the_comparison_notices_a_difference() -> None:
    """The walk above must be able to fail: a missing field, a wrong enum, a wrong type."""

    class Narrow(typing.TypedDict, total=False):
        phase: typing.Required[Literal["Pending"]]
        observedGeneration: str
        surplus: int

    problems: list[str] = []
    _compare(_schema("fault")["properties"]["status"], Narrow, "fault.status", problems)
    text = "\n".join(problems)
    assert "fault.status.phase: CRD enum" in text
    assert "fault.status.observedGeneration: CRD integer" in text
    assert "fault.status.surplus: in Narrow, not in the CRD" in text
    assert "fault.status.targets: in the CRD, not in Narrow" in text
    assert "fault.status: CRD requires [], Narrow requires ['phase']" in text


# ------------------------------------------------------------------ defaults


def _defaulted(schema: dict[str, Any], value: Any) -> Any:
    """Apply the schema's defaults to `value` as the API server does (structural defaulting)."""
    if not isinstance(value, dict) or schema.get("type") != "object":
        return value
    out = dict(value)
    for name, prop in (schema.get("properties") or {}).items():
        if name not in out and "default" in prop:
            out[name] = prop["default"]
        if name in out:
            out[name] = _defaulted(prop, out[name])
        if name in out and prop.get("type") == "array" and isinstance(out[name], list):
            out[name] = [_defaulted(prop["items"], v) for v in out[name]]
    return out


def _crd_defaults(schema: dict[str, Any], path: str = "") -> list[str]:
    found = [path] if "default" in schema else []
    for name, prop in (schema.get("properties") or {}).items():
        found += _crd_defaults(prop, f"{path}.{name}")
    if schema.get("items"):
        found += _crd_defaults(schema["items"], f"{path}[]")
    return found


def test_agent_defaults_are_the_code_defaults() -> None:
    spec_schema = _schema("agent")["properties"]["spec"]
    defaulted = _defaulted(spec_schema, {})
    assert resources.HealthThresholds.from_spec(defaulted) == resources.HealthThresholds()
    assert resources.HealingPolicy.from_spec(defaulted) == resources.HealingPolicy()
    assert resources.RuntimeSpec.from_spec(defaulted) == resources.RuntimeSpec()
    cloud = {"runtime": {"type": "CloudRun", "cloudRun": {"project": "p", "region": "r", "service": "s"}}}
    assert resources.RuntimeSpec.from_spec(_defaulted(spec_schema, cloud)) == resources.RuntimeSpec.from_spec(cloud)


def test_fault_defaults_are_the_code_defaults() -> None:
    spec_schema = _schema("fault")["properties"]["spec"]
    now = datetime(2024, 5, 1, tzinfo=timezone.utc)
    for kind, block in (("Latency", {"delayMs": 10}), ("Error", {}), ("Crash", {})):
        raw = {"type": kind, "duration": "1m", "target": {"agent": "a"}, kind.lower(): block}
        given, defaulted = resources.FaultSpec.from_spec(raw), resources.FaultSpec.from_spec(_defaulted(spec_schema, raw))
        assert given.percentage == defaulted.percentage
        # What the sidecar enforces from the block as written and as the API server stores it.
        item = {"uid": "u", "name": "f", "type": kind, "expiresAt": "2024-05-01T00:01:00Z"}
        as_written = parse_fault({**item, kind.lower(): given.params}, server_time=now, now=0.0)
        as_stored = parse_fault({**item, kind.lower(): defaulted.params}, server_time=now, now=0.0)
        assert (as_written.delay_s, as_written.jitter_s, as_written.status) == (as_stored.delay_s, as_stored.jitter_s, as_stored.status)


def test_every_crd_default_is_covered() -> None:
    """The two tests above cover these defaults; a new one must be added to them."""
    assert _crd_defaults(_schema("agent")["properties"]["spec"]) == [
        "", ".runtime", ".runtime.type", ".runtime.cloudRun.rollbackOnFailure", ".health", ".health.heartbeatTimeout",
        ".health.window", ".health.minSamples", ".health.probeFailureThreshold", ".health.latencyP95Ms",
        ".health.latencyP95Ms.degraded", ".health.latencyP95Ms.unhealthy", ".health.errorRate", ".health.errorRate.degraded",
        ".health.errorRate.unhealthy", ".health.model", ".health.model.minCalls", ".health.model.errorRate",
        ".health.model.errorRate.degraded", ".health.model.errorRate.unhealthy", ".health.model.timeToFirstTokenP95Ms",
        ".health.model.timeToFirstTokenP95Ms.degraded", ".health.model.timeToFirstTokenP95Ms.unhealthy", ".healing", ".healing.enabled", ".healing.unhealthyFor", ".healing.verifyTimeout",
        ".healing.budget", ".healing.budget.maxRestarts", ".healing.budget.window", ".healing.backoff",
        ".healing.backoff.initial", ".healing.backoff.max", ".healing.onTokenBurn",
    ]
    assert _crd_defaults(_schema("fault")["properties"]["spec"]) == [
        ".latency.jitterMs", ".error.statusCode", ".error.body", ".crash.statusCode", ".match", ".match.percentage",
    ]


def test_a_wrong_crd_default_is_noticed() -> None:
    spec_schema = _schema("agent")["properties"]["spec"]
    spec_schema["properties"]["health"]["properties"]["window"]["default"] = "61s"
    assert resources.HealthThresholds.from_spec(_defaulted(spec_schema, {})) != resources.HealthThresholds()


def test_check_defaults_are_the_code_defaults() -> None:
    raw = {"agent": "chat", "experiments": [{"name": "e", "fault": {"type": "Crash", "duration": "10s"}}]}
    given = check_settings.CheckSettings.from_spec(raw)
    stored = check_settings.CheckSettings.from_spec(_defaulted(_schema("resiliencecheck")["properties"]["spec"], raw))
    # The Fault template's own defaults (match.percentage) are the Fault's, checked above.
    assert replace(given, experiments=()) == replace(stored, experiments=())
    assert (given.experiments[0].weight, given.experiments[0].expect) == (stored.experiments[0].weight, stored.experiments[0].expect)
    assert stored.steady == check_settings.SteadyState() and stored.experiments[0].expect == check_settings.Expectations()
