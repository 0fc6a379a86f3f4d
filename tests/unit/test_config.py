"""agentops.config: defaults read off the settings dataclass, and durations on command lines.

A duration is Go-style ("30s"); the names that took seconds, and bare numbers, still
work and log a warning that says what to write instead.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field

import pytest

from agentops.config import DurationOption, defaults, number
from agentops.errors import ConfigError

WAIT = DurationOption("--wait", "TEST_WAIT", 30.0, minimum_s=1, help="how long to wait",
                      old_flag="--wait-seconds", old_env="TEST_WAIT_SECONDS")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TEST_WAIT", "TEST_WAIT_SECONDS", "TEST_COUNT"):
        monkeypatch.delenv(name, raising=False)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    WAIT.add_to(parser)
    return parser.parse_args(list(argv))


def read(*argv: str) -> float:
    return WAIT.read(parse(*argv))


def test_defaults_are_read_off_the_dataclass() -> None:
    @dataclass(frozen=True)
    class Settings:
        name: str  # required: no default to report
        count: int = 3
        tags: tuple[str, ...] = field(default_factory=lambda: ("a",))

    assert defaults(Settings) == {"count": 3, "tags": ("a",)}


@pytest.mark.parametrize(("text", "seconds"), [("45s", 45.0), ("2m", 120.0), ("1500ms", 1.5), ("1m30s", 90.0)])
def test_a_duration_with_its_unit(text: str, seconds: float, caplog: pytest.LogCaptureFixture) -> None:
    assert read("--wait", text) == seconds
    assert caplog.messages == []


def test_flag_then_old_flag_then_variable_then_old_variable_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert read() == 30.0
    monkeypatch.setenv("TEST_WAIT_SECONDS", "4")
    assert read() == 4.0
    monkeypatch.setenv("TEST_WAIT", "3s")
    assert read() == 3.0
    assert read("--wait-seconds", "2") == 2.0
    assert read("--wait-seconds", "2", "--wait", "1s") == 1.0
    monkeypatch.setenv("TEST_WAIT", "")  # empty is unset, as for every variable
    assert read() == 4.0


@pytest.mark.parametrize(
    ("argv", "env", "seconds", "warning"),
    [
        (["--wait-seconds", "45"], {}, 45.0, "--wait-seconds 45 is deprecated and still works for now; use --wait 45s"),
        (["--wait-seconds", "2.5"], {}, 2.5, "--wait-seconds 2.5 is deprecated and still works for now; use --wait 2.5s"),
        (["--wait-seconds", "1m"], {}, 60.0, "--wait-seconds 1m is deprecated and still works for now; use --wait 1m"),
        (["--wait", "45"], {}, 45.0, "--wait 45 is deprecated and still works for now; use --wait 45s"),
        ([], {"TEST_WAIT_SECONDS": "45"}, 45.0, "TEST_WAIT_SECONDS=45 is deprecated and still works for now; use TEST_WAIT=45s"),
        ([], {"TEST_WAIT": "45"}, 45.0, "TEST_WAIT=45 is deprecated and still works for now; use TEST_WAIT=45s"),
    ],
)
def test_old_names_and_bare_numbers_still_work_and_warn_naming_the_new_form(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    argv: list[str], env: dict[str, str], seconds: float, warning: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.WARNING, logger="agentops.config"):
        assert read(*argv) == seconds
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, f"{warning} (durations take a unit: ms, s, m, h)")]


@pytest.mark.parametrize(
    ("argv", "env", "error"),
    [
        (["--wait", "soon"], {}, "--wait: 'soon' is not a duration such as 30s, 5m or 1h30m"),
        (["--wait=-5s"], {}, "--wait: '-5s' is not a duration such as 30s, 5m or 1h30m"),
        (["--wait", "500ms"], {}, "--wait: must be at least 1s, got '500ms'"),
        (["--wait-seconds", "0"], {}, "--wait-seconds: must be at least 1s, got '0'"),
        ([], {"TEST_WAIT": "1d"}, "TEST_WAIT: '1d' is not a duration such as 30s, 5m or 1h30m"),
        ([], {"TEST_WAIT_SECONDS": "0.5"}, "TEST_WAIT_SECONDS: must be at least 1s, got '0.5'"),
    ],
)
def test_a_bad_value_names_where_it_came_from_and_warns_about_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, argv: list[str], env: dict[str, str], error: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        read(*argv)
    assert str(caught.value) == error
    assert caplog.messages == []


def test_help_states_the_variable_the_default_and_the_old_names_and_hides_the_old_flag() -> None:
    parser = argparse.ArgumentParser()
    WAIT.add_to(parser)
    text = " ".join(parser.format_help().split())
    assert "--wait DURATION how long to wait (env TEST_WAIT; default 30s; replaces --wait-seconds and TEST_WAIT_SECONDS, " \
           "which took seconds)" in text
    assert "[--wait-seconds" not in text


def test_without_old_names_the_help_mentions_none() -> None:
    parser = argparse.ArgumentParser()
    DurationOption("--poll", "TEST_POLL", 0.5, minimum_s=0, help="how often").add_to(parser)
    assert "how often (env TEST_POLL; default 500ms)" in " ".join(parser.format_help().split())


def test_number_names_the_flag_or_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert number(None, "--count", "TEST_COUNT", 3, 1) == 3
    assert number(5, "--count", "TEST_COUNT", 3, 1) == 5
    with pytest.raises(ConfigError, match=r"^--count: must be at least 1, got 0$"):
        number(0, "--count", "TEST_COUNT", 3, 1)
    monkeypatch.setenv("TEST_COUNT", "many")
    with pytest.raises(ConfigError, match=r"^TEST_COUNT: 'many' is not a number$"):
        number(None, "--count", "TEST_COUNT", 3, 1)
