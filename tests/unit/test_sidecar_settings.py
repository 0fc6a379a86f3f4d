"""`agentops sidecar` settings: every default from the dataclass, durations with units."""

from __future__ import annotations

import logging
import os

import pytest

from agentops.errors import ConfigError
from agentops_sidecar.settings import SidecarSettings, from_args

TOKEN = "t" * 32
REQUIRED = ["--agent", "chat", "--operator-url", "http://operator:8080", "--sidecar-id", "pod-1"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AGENTOPS_") or name in ("POD_NAMESPACE", "POD_NAME"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AGENTOPS_API_TOKEN", TOKEN)


def test_every_default_is_the_dataclass_default() -> None:
    assert from_args(REQUIRED) == SidecarSettings(agent="chat", operator_url="http://operator:8080", token=TOKEN, sidecar_id="pod-1")


@pytest.mark.parametrize(
    ("flag", "variable", "name"),
    [
        ("--probe-interval", "AGENTOPS_PROBE_INTERVAL", "probe_interval_s"),
        ("--probe-timeout", "AGENTOPS_PROBE_TIMEOUT", "probe_timeout_s"),
        ("--startup-grace", "AGENTOPS_STARTUP_GRACE", "startup_grace_s"),
        ("--report-interval", "AGENTOPS_REPORT_INTERVAL", "report_interval_s"),
        ("--max-poll-wait", "AGENTOPS_MAX_POLL_WAIT", "max_poll_wait_s"),
        ("--upstream-timeout", "AGENTOPS_UPSTREAM_TIMEOUT", "upstream_timeout_s"),
        ("--restart-grace", "AGENTOPS_RESTART_GRACE", "restart_grace_s"),
    ],
)
def test_durations_from_the_flag_or_the_variable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, flag: str, variable: str, name: str
) -> None:
    assert getattr(from_args([*REQUIRED, flag, "1500ms"]), name) == 1.5
    monkeypatch.setenv(variable, "2m")
    assert getattr(from_args(REQUIRED), name) == 120.0
    assert caplog.messages == []
    with caplog.at_level(logging.WARNING, logger="agentops.config"):
        assert getattr(from_args([*REQUIRED, flag, "3"]), name) == 3.0  # a bare number: seconds, with a warning
    assert caplog.messages == [f"{flag} 3 is deprecated and still works for now; use {flag} 3s (durations take a unit: ms, s, m, h)"]


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--probe-interval", "often"], "--probe-interval: 'often' is not a duration such as 30s, 5m or 1h30m"),
        (["--probe-interval", "10ms"], "--probe-interval: must be at least 50ms, got '10ms'"),
        (["--max-upstream-connections", "0"], "--max-upstream-connections: must be at least 1, got 0"),
        (["--listen", "nope"], "--listen: 'nope' is not HOST:PORT"),
    ],
)
def test_bad_values_name_their_flag(argv: list[str], error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_args([*REQUIRED, *argv])
    assert str(caught.value).startswith(error)


def test_the_listen_defaults_fill_a_missing_host() -> None:
    s = from_args([*REQUIRED, "--listen", ":9000", "--admin-listen", ":9001"])
    assert (s.listen_host, s.listen_port, s.admin_host, s.admin_port) == ("0.0.0.0", 9000, "0.0.0.0", 9001)
