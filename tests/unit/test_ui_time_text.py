"""Times in the UI: RFC 3339 in, "12s ago" / "4m left" out; no clock involved."""

from __future__ import annotations

import pytest

from agentops_ui.time_text import format_ago, format_left, format_span, parse_time, seconds_since, seconds_until


def test_parse_rfc3339_as_the_api_server_writes_it() -> None:
    assert parse_time("1970-01-01T00:01:00Z") == 60.0
    assert parse_time("1970-01-01T00:01:00.250000Z") == 60.25
    assert parse_time("1970-01-01T01:01:00+01:00") == 60.0
    assert parse_time("1970-01-01T00:01:00") == 60.0  # no zone: UTC, as the API server means
    for bad in (None, "", "yesterday", 12, {"a": 1}):
        assert parse_time(bad) is None


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (59.9, "59s"), (60, "1m"), (61, "1m 1s"), (3599, "59m 59s"), (3600, "1h"), (3660, "1h 1m"),
    (86399, "23h 59m"), (86400, "1d"), (90000, "1d 1h"), (-5, "0s"),
])
def test_spans_use_two_units_at_most(seconds: float, text: str) -> None:
    assert format_span(seconds) == text


def test_since_and_left() -> None:
    assert format_ago(None) == "never"
    assert format_ago(0.4) == "just now"
    assert format_ago(125) == "2m 5s ago"
    assert format_left(None) == "—"
    assert format_left(0) == "ending"
    assert format_left(-3) == "ending"
    assert format_left(90) == "1m 30s left"


def test_seconds_relative_to_an_injected_now() -> None:
    assert seconds_since("1970-01-01T00:01:00Z", now=100.0) == 40.0
    assert seconds_since("1970-01-01T00:03:00Z", now=100.0) == 0.0  # a clock ahead of ours is not "in the future"
    assert seconds_until("1970-01-01T00:03:00Z", now=100.0) == 80.0
    assert seconds_until("1970-01-01T00:01:00Z", now=100.0) == -40.0
    assert seconds_since(None, now=1.0) is None and seconds_until("x", now=1.0) is None
