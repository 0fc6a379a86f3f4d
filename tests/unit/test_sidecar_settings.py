"""`agentops sidecar` settings: every default from the dataclass, durations with units, identity and TLS."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

import agentops_sidecar.settings
from agentops.errors import ConfigError
from agentops_sidecar.settings import SidecarSettings, from_args

TOKEN = "t" * 32
REQUIRED = ["--agent", "chat", "--operator-url", "http://operator:8080", "--sidecar-id", "pod-1"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("AGENTOPS_") or name in ("POD_NAMESPACE", "POD_NAME"):
            monkeypatch.delenv(name)
    # The mounted CA's place, empty unless a test puts a bundle there: the default must
    # not depend on the machine the tests run on.
    mounted = tmp_path / "mounted-ca" / "ca.crt"
    monkeypatch.setattr(agentops_sidecar.settings, "MOUNTED_OPERATOR_CA_FILE", str(mounted))
    return mounted


def test_every_default_is_the_dataclass_default() -> None:
    assert from_args(REQUIRED) == SidecarSettings(agent="chat", operator_url="http://operator:8080", sidecar_id="pod-1")


def test_the_default_identity_is_the_projected_serviceaccount_token_read_later() -> None:
    # No file at its place yet (the kubelet may still be writing it): the sidecar starts,
    # and its link reports the missing token until it appears.
    s = from_args(REQUIRED)
    assert (s.identity, s.identity_token_file, s.token_audience) == (
        "kubernetes", "/var/run/secrets/agentops.dev/identity/token", "agentops")
    assert s.static_token == "" and s.operator_ca_file is None


@pytest.mark.parametrize(
    ("flag", "variable", "name", "value"),
    [
        ("--identity", "AGENTOPS_IDENTITY", "identity", "google"),
        ("--identity-token-file", "AGENTOPS_IDENTITY_TOKEN_FILE", "identity_token_file", "/run/token"),
        ("--token-audience", "AGENTOPS_TOKEN_AUDIENCE", "token_audience", "https://operator.example"),
    ],
)
def test_identity_settings_from_the_flag_or_the_variable(
    monkeypatch: pytest.MonkeyPatch, flag: str, variable: str, name: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(from_args(REQUIRED), name) == value
    flagged = "static" if name == "identity" else "/other" if name == "identity_token_file" else "other"
    monkeypatch.setenv("AGENTOPS_STATIC_TOKEN", TOKEN)  # for --identity static
    assert getattr(from_args([*REQUIRED, flag, flagged]), name) == flagged  # the flag wins


def test_an_unknown_identity_names_the_allowed_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOPS_IDENTITY", "spiffe")
    with pytest.raises(ConfigError, match="AGENTOPS_IDENTITY: 'spiffe'; allowed: kubernetes, google, static"):
        from_args(REQUIRED)


def test_the_static_token_from_a_file_or_the_variable_only_when_static(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = tmp_path / "token"
    file.write_text("f" * 20 + "\n")
    monkeypatch.setenv("AGENTOPS_STATIC_TOKEN", TOKEN)
    assert from_args(REQUIRED).static_token == ""  # not read unless it is the identity
    assert from_args([*REQUIRED, "--identity", "static"]).static_token == TOKEN
    monkeypatch.setenv("AGENTOPS_STATIC_TOKEN_FILE", str(file))
    assert from_args([*REQUIRED, "--identity", "static"]).static_token == "f" * 20  # the file before the token itself
    other = tmp_path / "other"
    other.write_text("o" * 16)
    s = from_args([*REQUIRED, "--identity", "static", "--static-token-file", str(other)])
    assert s.static_token == "o" * 16
    assert s.redacted()["static_token"] == "<redacted>" and "o" * 16 not in repr(s)
    assert from_args(REQUIRED).redacted()["static_token"] == "<unset>"


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({}, "--identity static needs the shared token: --static-token-file or AGENTOPS_STATIC_TOKEN_FILE"),
        ({"AGENTOPS_STATIC_TOKEN": "short"}, "AGENTOPS_STATIC_TOKEN: the token has 5 characters; at least 16 are required"),
        ({"AGENTOPS_STATIC_TOKEN_FILE": "/nonexistent/token"}, "AGENTOPS_STATIC_TOKEN_FILE /nonexistent/token: No such file"),
    ],
)
def test_a_static_identity_without_a_good_token_is_refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], error: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        from_args([*REQUIRED, "--identity", "static"])
    assert str(caught.value).startswith(error)


@pytest.mark.parametrize(
    ("argv", "env", "replacement"),
    [
        (["--token-file", "/run/token"], {}, "--token-file is no longer read: use --identity static with --static-token-file"),
        ([], {"AGENTOPS_API_TOKEN": TOKEN}, "AGENTOPS_API_TOKEN is no longer read: use --identity static with AGENTOPS_STATIC_TOKEN"),
        ([], {"AGENTOPS_API_TOKEN_FILE": "/run/token"},
         "AGENTOPS_API_TOKEN_FILE is no longer read: use --identity static with AGENTOPS_STATIC_TOKEN_FILE"),
    ],
)
def test_the_old_token_names_are_refused_naming_their_replacement(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str], replacement: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for identity in ([], ["--identity", "static"]):  # whatever the identity: never silently ignored
        with pytest.raises(ConfigError) as caught:
            from_args([*REQUIRED, *identity, *argv])
        assert str(caught.value).startswith(replacement)
        assert "--identity kubernetes" in str(caught.value)  # and what the default now is


def test_the_old_token_flag_is_hidden_from_help() -> None:
    from agentops_sidecar.settings import build_parser

    text = build_parser().format_help()
    assert "--token-file" not in text and "--static-token-file" in text and "--operator-ca-file" in text


def test_the_operator_ca_file_the_flag_the_variable_or_the_mounted_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clean_env: Path
) -> None:
    flagged, variable = tmp_path / "flag.crt", tmp_path / "env.crt"
    flagged.write_text("x")
    variable.write_text("x")
    assert from_args(REQUIRED).operator_ca_file is None  # nothing mounted: the system trust store
    clean_env.parent.mkdir()
    clean_env.write_text("x")
    assert from_args(REQUIRED).operator_ca_file == str(clean_env)  # mounted: used without being named
    monkeypatch.setenv("AGENTOPS_OPERATOR_CA_FILE", str(variable))
    assert from_args(REQUIRED).operator_ca_file == str(variable)
    assert from_args([*REQUIRED, "--operator-ca-file", str(flagged)]).operator_ca_file == str(flagged)


def test_a_named_operator_ca_file_that_is_missing_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="--operator-ca-file: /nonexistent/ca.crt does not exist"):
        from_args([*REQUIRED, "--operator-ca-file", "/nonexistent/ca.crt"])
    monkeypatch.setenv("AGENTOPS_OPERATOR_CA_FILE", "/nonexistent/ca.crt")
    with pytest.raises(ConfigError, match="AGENTOPS_OPERATOR_CA_FILE: /nonexistent/ca.crt does not exist"):
        from_args(REQUIRED)


def test_an_https_operator_url_is_accepted() -> None:
    s = from_args(["--agent", "chat", "--operator-url", "https://operator.agentops-system:8443/", "--sidecar-id", "pod-1"])
    assert s.operator_url == "https://operator.agentops-system:8443"


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
