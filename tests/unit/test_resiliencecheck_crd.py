"""The ResilienceCheck CRD's Fault template is the Fault's spec schema (hack/gen_resiliencecheck_crd.py).

Its defaults against the code's are in test_api_types.py, with the other kinds'.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


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
