"""The Argo CD health checks in manifests/argocd/, run as Argo CD runs them (a Lua 5.1
with Argo CD's libraries only, see tests/argocd_lua.py) over the cases listed in
health_test.yaml, in the layout of Argo CD's own resource_customizations tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from argocd_lua import ARGOCD_DIR, SCRIPTS, health
from lupa.lua51 import LuaError  # type: ignore[import-untyped]  # until types-lupa is a dev dependency

REPO = ARGOCD_DIR.parents[1]
CASES: list[dict[str, Any]] = yaml.safe_load((ARGOCD_DIR / "health_test.yaml").read_text())["tests"]


def _load(case: dict[str, Any]) -> dict[str, Any]:
    return dict(yaml.safe_load((ARGOCD_DIR / case["inputPath"]).read_text()))


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_of_each_case(case: dict[str, Any]) -> None:
    assert health(_load(case)) == case["healthStatus"]


def test_every_testdata_file_is_a_case() -> None:
    listed = {c["inputPath"] for c in CASES}
    present = {f"testdata/{p.name}" for p in (ARGOCD_DIR / "testdata").glob("*.yaml")}
    assert listed == present


@pytest.mark.parametrize("kind", ["Agent", "Fault"])
def test_every_phase_in_the_crd_has_a_case(kind: str) -> None:
    crd = yaml.safe_load((REPO / "crds" / f"{kind.lower()}.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    phases = set(schema["properties"]["status"]["properties"]["phase"]["enum"])
    covered = {(_load(c).get("status") or {}).get("phase") for c in CASES if _load(c)["kind"] == kind}
    assert phases <= covered, f"{kind} phases without a health case: {sorted(phases - covered)}"


def test_the_argocd_cm_patch_carries_the_scripts_verbatim() -> None:
    patch = yaml.safe_load((ARGOCD_DIR / "argocd-cm-patch.yaml").read_text())
    assert (patch["kind"], patch["metadata"]["name"], patch["metadata"]["namespace"]) == ("ConfigMap", "argocd-cm", "argocd")
    assert patch["data"] == {f"resource.customizations.health.agentops.dev_{kind}": script.read_text()
                             for kind, script in SCRIPTS.items()}


def test_the_sandbox_lacks_what_argo_cd_lacks(tmp_path: Path) -> None:
    """Argo CD opens no string library for custom checks; a script relying on it must fail here too."""
    script = tmp_path / "uses-string.lua"
    script.write_text('return {status = ("healthy"):upper(), message = ""}')
    with pytest.raises(LuaError, match="attempt to index a string value"):
        health({"kind": "Agent"}, script)
