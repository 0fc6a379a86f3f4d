"""The ResilienceCheck CRD's Fault template is the Fault's spec schema (hack/gen_resiliencecheck_crd.py)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from agentops_operator.check_settings import CheckSettings, Expectations, SteadyState

ROOT = Path(__file__).resolve().parents[2]


def _spec_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / f"{kind}.yaml").read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def test_the_generated_template_is_up_to_date() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "hack" / "gen_resiliencecheck_crd.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_template_has_every_fault_field_but_target() -> None:
    fault = _spec_schema("fault")
    template = _spec_schema("resiliencecheck")["properties"]["experiments"]["items"]["properties"]["fault"]
    assert set(template["properties"]) == set(fault["properties"]) - {"target"}
    assert template["required"] == [r for r in fault["required"] if r != "target"]
    # Same rules but for the transition rules (oldSelf), which a template cannot have.
    rules = [r["rule"] for r in fault.get("x-kubernetes-validations", []) if "oldSelf" not in r["rule"]]
    assert [r["rule"] for r in template["x-kubernetes-validations"]] == rules
    assert "oldSelf" not in yaml.safe_dump(template)
    assert template["properties"]["duration"]["x-kubernetes-validations"][0]["message"].startswith("spec.experiments[].fault.")


def _defaulted(schema: dict[str, Any], value: Any) -> Any:
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


def test_the_crd_defaults_are_the_code_defaults() -> None:
    raw = {"agent": "chat", "experiments": [{"name": "e", "fault": {"type": "Crash", "duration": "10s"}}]}
    given, stored = CheckSettings.from_spec(raw), CheckSettings.from_spec(_defaulted(_spec_schema("resiliencecheck"), raw))
    # The Fault template's own defaults (match.percentage) are the Fault's, checked in test_api_types.
    assert replace(given, experiments=()) == replace(stored, experiments=())
    assert (given.experiments[0].weight, given.experiments[0].expect) == (stored.experiments[0].weight, stored.experiments[0].expect)
    assert stored.steady == SteadyState() and stored.experiments[0].expect == Expectations()
