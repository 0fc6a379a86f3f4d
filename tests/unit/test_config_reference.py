"""docs/configuration.md is exactly what the parsers say (regenerate it when a flag changes)."""

from __future__ import annotations

from pathlib import Path

from agentops.config_reference import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_reference_is_current() -> None:
    assert DOC.read_text() == render(), "regenerate: .venv/bin/python -m agentops.config_reference > docs/configuration.md"


def test_every_operator_and_sidecar_setting_names_its_environment_variable() -> None:
    for section in render().split("\n## ")[1:3]:  # operator, sidecar
        rows = [line for line in section.splitlines() if line.startswith("| `")]
        assert rows
        for row in rows:
            assert "env AGENTOPS_" in row or "env POD_" in row or "`--`" in row or "positional" in row, row
