"""diagrams/: every Mermaid source renders with mermaid-cli, and the README shows each one.

mmdc comes from `make diagram-tools` (hack/install-mermaid.sh) and drives Debian's
Chromium, like GitHub's renderer drives a browser: a source that Mermaid cannot parse
fails here instead of showing up as an error box in the README.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

REPO_ROOT = Path(__file__).resolve().parents[2]
DIAGRAMS = sorted((REPO_ROOT / "diagrams").glob("*.mmd"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# What each source declares, as Mermaid names it in the SVG's aria-roledescription.
KINDS = {"flowchart": "flowchart-v2", "sequenceDiagram": "sequence", "stateDiagram-v2": "stateDiagram"}


def body(source: str) -> str:
    """The diagram without its leading %% comment lines (the README shows the rest)."""
    lines = source.strip().splitlines()
    while lines and lines[0].startswith("%%"):
        lines.pop(0)
    return "\n".join(lines).strip()


@pytest.fixture(scope="module")
def mmdc() -> str:
    proc = subprocess.run(["bash", str(REPO_ROOT / "hack" / "install-mermaid.sh")], capture_output=True, text=True, timeout=110)
    if proc.returncode != 0:
        pytest.fail(f"mermaid-cli is missing and could not be installed (make diagram-tools):\n{proc.stderr}", pytrace=False)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make browser` (hack/install-browser.sh)", pytrace=False)
    return proc.stdout.strip().splitlines()[-1]


def render(mmdc: str, source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    config = out.parent / "puppeteer.json"
    config.write_text(json.dumps({"executablePath": CHROMIUM,
                                  "args": ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]}))
    return subprocess.run([mmdc, "--quiet", "--puppeteerConfigFile", str(config), "-i", str(source), "-o", str(out)],
                          capture_output=True, text=True, timeout=90)


def test_there_is_the_architecture_and_each_loop() -> None:
    assert {d.stem for d in DIAGRAMS} == {"architecture", "fault-loop", "telemetry-loop", "healing-loop"}


@pytest.mark.parametrize("source", DIAGRAMS, ids=lambda p: p.stem)
def test_each_diagram_renders(mmdc: str, source: Path, tmp_path: Path) -> None:
    out = tmp_path / f"{source.stem}.svg"
    proc = render(mmdc, source, out)
    assert proc.returncode == 0, f"{source.name} did not render:\n{proc.stdout}{proc.stderr}"
    svg = out.read_text()
    declared = body(source.read_text()).split()[0]
    assert f'aria-roledescription="{KINDS[declared]}"' in svg, f"{source.name} did not render as a {declared}"
    assert "Syntax error" not in svg


def test_a_broken_diagram_is_reported(mmdc: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mmd"
    broken.write_text("flowchart LR\n  a -- unclosed --> [b\n")
    proc = render(mmdc, broken, tmp_path / "broken.svg")
    assert proc.returncode != 0 and re.search(r"Parse error|Lexical error", proc.stdout + proc.stderr)


def test_the_readme_shows_every_diagram_as_it_is() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    blocks = [b.strip() for b in re.findall(r"^```mermaid\n(.*?)^```$", readme, flags=re.M | re.S)]
    sources = [body(d.read_text()) for d in DIAGRAMS]
    assert sorted(blocks) == sorted(sources), "README's mermaid blocks differ from diagrams/*.mmd (copy them over)"
