"""`agentops operator` settings: every default from the dataclass, durations with units,
and the old -seconds flags and variables still accepted with a warning."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import pytest

from agentops.cli import build_parser as cli_parser
from agentops.errors import ConfigError
from agentops_operator.settings import OperatorSettings, add_arguments, from_args

TOKEN = "t" * 32
# (new flag, new variable, old flag, old variable, field)
DURATIONS = [
    ("--lease", "AGENTOPS_LEASE", "--lease-seconds", "AGENTOPS_LEASE_SECONDS", "lease_s"),
    ("--status-heartbeat", "AGENTOPS_STATUS_HEARTBEAT", "--status-heartbeat-seconds", "AGENTOPS_STATUS_HEARTBEAT_SECONDS",
     "status_heartbeat_s"),
    ("--resync-interval", "AGENTOPS_RESYNC_INTERVAL", "--resync-seconds", "AGENTOPS_RESYNC_SECONDS", "resync_interval_s"),
    ("--cloudrun-operation-timeout", "AGENTOPS_CLOUDRUN_OPERATION_TIMEOUT", "--cloudrun-operation-timeout-seconds",
     "AGENTOPS_CLOUDRUN_OPERATION_TIMEOUT_SECONDS", "cloudrun_operation_timeout_s"),
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AGENTOPS_") or name == "POD_NAMESPACE":
            monkeypatch.delenv(name)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p


def settings(*argv: str) -> OperatorSettings:
    return from_args(parser().parse_args(["--namespace", "demo", *argv]))


def test_every_default_is_the_dataclass_default() -> None:
    assert settings() == OperatorSettings(namespaces=("demo",))


def test_the_help_states_the_dataclass_defaults() -> None:
    text = " ".join(parser().format_help().split())
    for phrase in ("(env AGENTOPS_LEASE; default 30s;", "(env AGENTOPS_STATUS_HEARTBEAT; default 1m;",
                   "(env AGENTOPS_RESYNC_INTERVAL; default 5m;", "(env AGENTOPS_CLOUDRUN_OPERATION_TIMEOUT; default 5m;",
                   "(env AGENTOPS_HTTP_PORT; default 8080)", "(env AGENTOPS_MAX_WRITES_IN_FLIGHT; default 8)",
                   "(env AGENTOPS_FIRESTORE_MAX_WRITES_PER_SECOND; default 20)"):
        assert phrase in text
    for _, _, old_flag, _, _ in DURATIONS:
        assert f"[{old_flag}" not in text  # still accepted, no longer advertised


@pytest.mark.parametrize(("flag", "variable", "old_flag", "old_variable", "name"), DURATIONS)
def test_durations_take_a_unit_from_the_flag_or_the_variable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    flag: str, variable: str, old_flag: str, old_variable: str, name: str,
) -> None:
    assert getattr(settings(flag, "90s"), name) == 90.0
    assert getattr(settings(f"{flag}=2m30s"), name) == 150.0
    monkeypatch.setenv(variable, "1m")
    assert getattr(settings(), name) == 60.0
    assert caplog.messages == []


@pytest.mark.parametrize(("flag", "variable", "old_flag", "old_variable", "name"), DURATIONS)
def test_the_old_seconds_flags_and_variables_still_work_and_warn(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    flag: str, variable: str, old_flag: str, old_variable: str, name: str,
) -> None:
    with caplog.at_level(logging.WARNING, logger="agentops.config"):
        assert getattr(settings(old_flag, "45"), name) == 45.0
    assert caplog.messages == [f"{old_flag} 45 is deprecated and still works for now; use {flag} 45s "
                               "(durations take a unit: ms, s, m, h)"]
    caplog.clear()
    monkeypatch.setenv(old_variable, "75")
    with caplog.at_level(logging.WARNING, logger="agentops.config"):
        assert getattr(settings(), name) == 75.0
    assert caplog.messages == [f"{old_variable}=75 is deprecated and still works for now; use {variable}=75s "
                               "(durations take a unit: ms, s, m, h)"]
    assert getattr(settings(flag, "20s"), name) == 20.0  # the new flag wins over the old variable


def test_the_old_flags_work_through_the_agentops_command(caplog: pytest.LogCaptureFixture) -> None:
    args = cli_parser().parse_args(["operator", "-n", "demo", "--lease-seconds", "12", "--resync-interval", "1m"])
    with caplog.at_level(logging.WARNING, logger="agentops.config"):
        s = from_args(args)
    assert (s.lease_s, s.resync_interval_s) == (12.0, 60.0)
    assert caplog.messages == ["--lease-seconds 12 is deprecated and still works for now; use --lease 12s "
                               "(durations take a unit: ms, s, m, h)"]


@pytest.mark.parametrize(
    ("argv", "env", "error"),
    [
        (["--lease", "500ms"], {}, "--lease: must be at least 1s, got '500ms'"),
        (["--lease-seconds", "0"], {}, "--lease-seconds: must be at least 1s, got '0'"),
        (["--resync-interval", "5s"], {}, "--resync-interval: must be at least 10s, got '5s'"),
        ([], {"AGENTOPS_STATUS_HEARTBEAT": "often"}, "AGENTOPS_STATUS_HEARTBEAT: 'often' is not a duration"),
        (["--http-port", "-1"], {}, "--http-port: must be at least 0, got -1"),
        ([], {"AGENTOPS_MAX_WRITES_IN_FLIGHT": "many"}, "AGENTOPS_MAX_WRITES_IN_FLIGHT: 'many' is not a number"),
    ],
)
def test_bad_values_name_their_source(monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str], error: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        settings(*argv)
    assert str(caught.value).startswith(error)


def test_identity_and_tls_default_to_no_shared_secret() -> None:
    s = settings()
    assert (s.static_token, s.tls, s.token_audience, s.token_review_cache_s) == ("", "self-signed", "agentops", 120.0)
    assert s.tls_secret_ref == ("agentops-system", "agentops-operator-tls")
    assert s.tls_host_names == ("agentops-operator.agentops-system.svc", "agentops-operator.agentops-system.svc.cluster.local",
                                "localhost", "127.0.0.1")
    assert s.redacted()["static_token"] == "<unset>"


def test_identity_and_tls_settings_from_flags_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    s = settings("--tls", "secret", "--tls-secret", "ops/serving", "--tls-hosts", "a.example, 10.0.0.9",
                 "--token-review-cache", "5s", "--google-certs-url", "off", "--static-token-file", str(tmp_path / "token"),
                 "--ca-configmap", "off", "--tls-check-interval", "2s", "--token-audience", "fleet")
    assert (s.tls, s.tls_secret_ref, s.tls_host_names) == ("secret", ("ops", "serving"), ("a.example", "10.0.0.9"))
    assert (s.token_review_cache_s, s.google_certs_url, s.static_token, s.ca_configmap) == (5.0, None, TOKEN, None)
    assert (s.tls_check_interval_s, s.token_audience) == (2.0, "fleet")
    assert TOKEN not in repr(s) and s.redacted()["static_token"] == "<redacted>"
    monkeypatch.setenv("AGENTOPS_STATIC_TOKEN", TOKEN)
    monkeypatch.setenv("AGENTOPS_TLS", "off")
    assert (settings().static_token, settings().tls) == (TOKEN, "off")


@pytest.mark.parametrize("argv, env, message", [
    (["--tls", "maybe"], {}, "invalid choice"),
    ([], {"AGENTOPS_TLS": "maybe"}, "AGENTOPS_TLS: 'maybe' is not allowed"),
    (["--tls-secret", "no-namespace"], {}, "--tls-secret: 'no-namespace' is not NAMESPACE/NAME"),
    (["--token-review-cache", "1h"], {}, "--token-review-cache: must be at most 10m"),
    ([], {"AGENTOPS_STATIC_TOKEN": "short"}, "at least 16 are required"),
    ([], {"AGENTOPS_API_TOKEN": TOKEN}, "AGENTOPS_STATIC_TOKEN"),
    (["--token-file", "/x"], {}, "were replaced"),
    (["--token-audience", " "], {}, "--token-audience must not be empty"),
])
def test_bad_identity_settings_name_what_is_allowed(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                    argv: list[str], env: dict[str, str], message: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises((ConfigError, SystemExit)) as raised:
        settings(*argv)
    text = str(raised.value) if raised.type is ConfigError else capsys.readouterr().err
    assert message in text, text
