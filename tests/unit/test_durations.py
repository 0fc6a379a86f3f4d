"""agentops.durations: Go-style durations as the CRDs use them."""

from __future__ import annotations

import pytest

from agentops.durations import format_duration, parse_duration
from agentops.errors import InvalidField


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("250ms", 0.25),
        ("1h30m", 5400.0),
        ("2.5s", 2.5),
        ("1.5h", 5400.0),
        ("1m30s", 90.0),
        ("1h1m1s1ms", 3661.001),
        ("0s", 0.0),
        ("5ms5s", 5.005),  # "ms" is read before "m"
        ("10m50s", 650.0),
    ],
)
def test_parse_valid(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["", "30", "s", "-5s", "5 s", "5d", "1.s", ".5s", "5us", "5ns", "1h 30m", "30S", "5s ", " 5s", "1e3s"],
)
def test_parse_invalid_names_field(text: str) -> None:
    with pytest.raises(InvalidField) as info:
        parse_duration(text, "spec.duration")
    assert info.value.field == "spec.duration"
    assert repr(text) in info.value.problem


@pytest.mark.parametrize("value", [None, 30, 1.5, ["30s"]])
def test_parse_non_string(value: object) -> None:
    with pytest.raises(InvalidField) as info:
        parse_duration(value)  # type: ignore[arg-type]
    assert info.value.field == "duration"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0ms"),
        (0.25, "250ms"),
        (0.001, "1ms"),
        (1, "1s"),
        (59, "59s"),
        (60, "1m"),
        (90, "1m30s"),
        (3600, "1h"),
        (3661, "1h1m1s"),
        (7200 + 5, "2h5s"),
        (59.6, "1m"),  # rounded to whole seconds
        (1.4, "1s"),
    ],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [30.0, 90.0, 3600.0, 5400.0, 3661.0, 0.25])
def test_format_parse_round_trip(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_format_just_below_one_second_rounds_to_1s() -> None:
    assert format_duration(0.9996) == "1s"
