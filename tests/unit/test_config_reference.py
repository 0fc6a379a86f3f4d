"""docs/configuration.md is exactly what the parsers say (regenerate it when a flag changes)."""

from __future__ import annotations

from pathlib import Path

from agentops.config import DurationOption
from agentops.config_reference import render
from agentops.durations import format_duration, parse_duration

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_reference_is_current() -> None:
    assert DOC.read_text() == render(), "regenerate: .venv/bin/python -m agentops.config_reference > docs/configuration.md"


def test_every_operator_and_sidecar_setting_names_its_environment_variable() -> None:
    for section in render().split("\n## ")[1:3]:  # operator, sidecar
        rows = [line for line in section.splitlines() if line.startswith("| `")]
        assert rows
        for row in rows:
            assert "env AGENTOPS_" in row or "env POD_" in row or "`--`" in row or "positional" in row, row


def test_every_duration_default_in_the_reference_is_exact() -> None:
    """The help prints a duration's default rounded (format_duration); it must still be the default."""
    import agentops_agents.settings
    import agentops_operator.settings
    import agentops_sidecar.settings

    options = [value for module in (agentops_operator.settings, agentops_sidecar.settings, agentops_agents.settings)
               for value in vars(module).values() if isinstance(value, DurationOption)]
    assert len(options) >= 12  # 4 operator, 7 sidecar, 1 agent: the scan found them
    reference = render()
    for option in options:
        shown = format_duration(option.default_s)
        assert parse_duration(shown) == option.default_s, f"{option.flag}: the reference says {shown}"
        assert f"(env {option.env}; default {shown}" in reference
