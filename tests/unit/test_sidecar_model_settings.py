"""The model gateway's settings: where it listens and where each provider's calls go."""

from __future__ import annotations

import os

import pytest

from agentops.errors import ConfigError
from agentops_sidecar.settings import from_args

REQUIRED = ["--agent", "chat", "--operator-url", "http://operator:8080", "--sidecar-id", "pod-1"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AGENTOPS_"):
            monkeypatch.delenv(name)


def test_defaults_loopback_and_the_real_providers() -> None:
    settings = from_args(REQUIRED)
    assert (settings.model_gateway_host, settings.model_gateway_port) == ("127.0.0.1", 9902)
    assert dict(settings.model_upstreams) == {"gemini": "https://generativelanguage.googleapis.com",
                                              "openai": "https://api.openai.com", "anthropic": "https://api.anthropic.com"}


def test_flags_override_one_provider_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOPS_MODEL_UPSTREAMS", "anthropic=http://ignored:1")  # the flag wins
    settings = from_args([*REQUIRED, "--model-gateway-listen", ":9999", "--model-upstream", "openai=http://127.0.0.1:8000/",
                          "--model-upstream", "gemini=http://127.0.0.1:8001"])
    assert (settings.model_gateway_host, settings.model_gateway_port) == ("127.0.0.1", 9999)
    assert dict(settings.model_upstreams) == {"gemini": "http://127.0.0.1:8001", "openai": "http://127.0.0.1:8000",
                                              "anthropic": "https://api.anthropic.com"}


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOPS_MODEL_GATEWAY_LISTEN", "0.0.0.0:7000")
    monkeypatch.setenv("AGENTOPS_MODEL_UPSTREAMS", "gemini=http://a:1, openai=https://b")
    settings = from_args(REQUIRED)
    assert (settings.model_gateway_host, settings.model_gateway_port) == ("0.0.0.0", 7000)
    assert dict(settings.model_upstreams)["gemini"] == "http://a:1" and dict(settings.model_upstreams)["openai"] == "https://b"


@pytest.mark.parametrize(("args", "env", "problem"), [
    (["--model-upstream", "azure=http://x"], {}, "--model-upstream.*one of gemini, openai, anthropic"),
    (["--model-upstream", "openai"], {}, "PROVIDER=URL"),
    (["--model-upstream", "openai=ftp://x"], {}, "http:// or https://"),
    ([], {"AGENTOPS_MODEL_UPSTREAMS": "openai=nope"}, "AGENTOPS_MODEL_UPSTREAMS"),
    (["--model-gateway-listen", "localhost"], {}, "--model-gateway-listen"),
])
def test_bad_values_name_their_source(args: list[str], env: dict[str, str], problem: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=problem):
        from_args([*REQUIRED, *args])


def test_the_gateway_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert from_args(REQUIRED).model_gateway is True
    assert from_args([*REQUIRED, "--model-gateway-listen", "off"]).model_gateway is False
    monkeypatch.setenv("AGENTOPS_MODEL_GATEWAY_LISTEN", "OFF")
    assert from_args(REQUIRED).model_gateway is False
