"""`agentops ui` flags and environment: one parse, clear errors naming the flag, exit 2."""

from __future__ import annotations

import pytest

from agentops.config import listen_address
from agentops.errors import ConfigError
from agentops_ui.main import main
from agentops_ui.settings import from_args


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AGENTOPS_UI_LISTEN", "AGENTOPS_NAMESPACES", "AGENTOPS_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_show_every_namespace_on_8090() -> None:
    s = from_args([])
    assert (s.listen_host, s.listen_port, s.namespaces, s.all_namespaces, s.log_level) == ("0.0.0.0", 8090, (), True, "INFO")


def test_flags() -> None:
    s = from_args(["--listen", "127.0.0.1:9000", "--namespace", "a", "-n", "b", "-n", "a", "--log-level", "debug"])
    assert (s.listen_host, s.listen_port, s.namespaces, s.log_level) == ("127.0.0.1", 9000, ("a", "b"), "DEBUG")
    assert from_args(["-A"]).all_namespaces
    assert listen_address("[::1]:8090", "--listen") == ("::1", 8090)


def test_environment_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOPS_UI_LISTEN", "127.0.0.1:7000")
    monkeypatch.setenv("AGENTOPS_NAMESPACES", "x, y,,")
    s = from_args([])
    assert (s.listen_port, s.namespaces) == (7000, ("x", "y"))
    assert from_args(["-A"]).namespaces == ()  # the flag wins over the environment
    monkeypatch.setenv("AGENTOPS_UI_LISTEN", "nonsense")
    with pytest.raises(ConfigError, match="AGENTOPS_UI_LISTEN"):
        from_args([])


@pytest.mark.parametrize(("argv", "flag"), [
    (["--listen", "8090"], "--listen"),
    (["--listen", "host:99999"], "--listen"),
    (["--namespace", "Not_A_Namespace"], "--namespace"),
    (["--bogus"], "--bogus"),
    (["--namespace", "a", "--all-namespaces"], "--all-namespaces"),
    (["--log-level", "loud"], "--log-level"),
])
def test_bad_flags_exit_2_naming_the_flag(argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert flag in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--listen" in out and "--all-namespaces" in out and "AGENTOPS_UI_LISTEN" in out
