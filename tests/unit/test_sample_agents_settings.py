"""The sample agents' settings: flag → environment → default, clear refusals, a redacted key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agentops.errors import ConfigError
from agentops_agents.main import main
from agentops_agents.settings import AgentSettings, build_parser, from_args

ENV_VARS = (
    "AGENTOPS_AGENT_HOST", "AGENTOPS_AGENT_PORT", "GEMINI_API_KEY", "GEMINI_API_KEY_FILE",
    "GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL", "GEMINI_MODEL", "AGENTOPS_MODEL_TIMEOUT", "AGENTOPS_MODEL_TIMEOUT_SECONDS", "AGENTOPS_LOG_LEVEL",
)
KEY = "AIzaTEST-not-a-real-key_0123456789"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def settings(*argv: str) -> AgentSettings:
    return from_args(build_parser().parse_args(list(argv)))


def test_defaults_are_offline_on_localhost() -> None:
    s = settings("chat")
    assert s == AgentSettings(kind="chat")
    assert (s.host, s.port, s.model, s.gemini_model, s.model_timeout_s) == ("127.0.0.1", 8000, "offline", "gemini-2.0-flash", 30.0)
    assert s.gemini_base_url == "https://generativelanguage.googleapis.com"


def test_flags_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOPS_AGENT_PORT", "9000")
    monkeypatch.setenv("GEMINI_MODEL", "gemini-1.5-pro")
    monkeypatch.setenv("GEMINI_BASE_URL", "http://127.0.0.1:1/")
    assert settings("summary").port == 9000
    assert settings("summary").gemini_base_url == "http://127.0.0.1:1"
    # google-genai's own variable wins: the same line points an SDK agent and a sample agent at the gateway.
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9902/gemini")
    assert settings("summary").gemini_base_url == "http://127.0.0.1:9902/gemini"
    s = settings("summary", "--port", "0", "--gemini-model", "models/gemini-2.5-flash", "--model-timeout", "500ms")
    assert (s.port, s.gemini_model, s.model_timeout_s) == (0, "gemini-2.5-flash", 0.5)
    monkeypatch.setenv("AGENTOPS_MODEL_TIMEOUT", "1m")
    assert settings("summary").model_timeout_s == 60.0
    assert settings("summary", "--model-timeout", "2s").model_timeout_s == 2.0


def test_a_timeout_in_bare_seconds_still_works_and_warns(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """--model-timeout took a number of seconds, and AGENTOPS_MODEL_TIMEOUT_SECONDS was its variable."""
    with caplog.at_level(logging.WARNING, logger="agentops.config"):
        assert settings("chat", "--model-timeout", "0.5").model_timeout_s == 0.5
    assert caplog.messages == ["--model-timeout 0.5 is deprecated and still works for now; use --model-timeout 0.5s "
                               "(durations take a unit: ms, s, m, h)"]
    caplog.clear()
    monkeypatch.setenv("AGENTOPS_MODEL_TIMEOUT_SECONDS", "45")
    with caplog.at_level(logging.WARNING, logger="agentops.config"):
        assert settings("chat").model_timeout_s == 45.0
    assert caplog.messages == ["AGENTOPS_MODEL_TIMEOUT_SECONDS=45 is deprecated and still works for now; use AGENTOPS_MODEL_TIMEOUT=45s "
                               "(durations take a unit: ms, s, m, h)"]
    monkeypatch.setenv("AGENTOPS_MODEL_TIMEOUT", "10s")  # the new name wins over the old one
    assert settings("chat").model_timeout_s == 10.0


def test_key_from_file_wins_over_environment_and_is_redacted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "from-env")
    assert settings("chat").gemini_api_key == "from-env"
    key_file = tmp_path / "key"
    key_file.write_text(f"{KEY}\n")
    s = settings("chat", "--gemini-api-key-file", str(key_file))
    assert s.gemini_api_key == KEY and s.model == "gemini"
    assert KEY not in repr(s) and KEY not in str(s.redacted())
    assert s.redacted()["gemini_api_key"] == "<redacted>"


@pytest.mark.parametrize(
    ("argv", "env", "error"),
    [
        (["--port", "http"], {}, "--port: 'http' is not a port number; allowed 0..65535"),
        ([], {"AGENTOPS_AGENT_PORT": "70000"}, "AGENTOPS_AGENT_PORT: 70000 is out of range; allowed 0..65535"),
        (["--model-timeout", "0s"], {}, "--model-timeout: must be at least 1ms, got '0s'"),
        (["--model-timeout", "0"], {}, "--model-timeout: must be at least 1ms, got '0'"),
        (["--model-timeout", "soon"], {}, "--model-timeout: 'soon' is not a duration such as 30s, 5m or 1h30m"),
        ([], {"AGENTOPS_MODEL_TIMEOUT": "-1s"}, "AGENTOPS_MODEL_TIMEOUT: '-1s' is not a duration"),
        ([], {"AGENTOPS_MODEL_TIMEOUT_SECONDS": "soon"}, "AGENTOPS_MODEL_TIMEOUT_SECONDS: 'soon' is not a duration"),
        (["--gemini-base-url", "ftp://example.com"], {}, "--gemini-base-url: 'ftp://example.com' is not an http(s) URL"),
        (["--gemini-model", "../admin"], {}, "--gemini-model: '../admin' is not a model name"),
        (["--log-level", "LOUD"], {}, "--log-level: 'LOUD' is not a log level; allowed DEBUG, INFO, WARNING, ERROR"),
        (["--gemini-api-key-file", "/nonexistent/key"], {}, "--gemini-api-key-file /nonexistent/key: cannot read the key file"),
        ([], {"GEMINI_API_KEY": "two words"}, "GEMINI_API_KEY: the Gemini API key must be one token"),
    ],
)
def test_bad_values_name_their_source(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str], error: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        settings("chat", *argv)
    assert str(caught.value).startswith(error)
    assert "two words" not in str(caught.value)  # a bad key is never repeated


def test_empty_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("\n")
    with pytest.raises(ConfigError, match="the file is empty"):
        settings("chat", "--gemini-api-key-file", str(tmp_path / "key"))


def test_main_exits_2_with_the_flag_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "--port", "-1"]) == 2
    assert capsys.readouterr().err.strip() == "agentops agent summary: --port: -1 is out of range; allowed 0..65535 (0 picks a free port)"
