"""Times as the API server writes them (RFC 3339) and as people read them ("12s ago").

Pure functions with `now` passed in, so tests need no clock. The same two formats are
re-implemented in the page script (`assets.LIVE_JS`) to keep relative times ticking
between server renders; keep them in step.
"""

from __future__ import annotations

from typing import Any

from agentops.times import parse_time as rfc3339


def parse_time(value: Any) -> float | None:
    """RFC 3339 (`2024-05-01T12:00:00Z`, with or without fractions) → Unix seconds; None if absent or malformed."""
    if not isinstance(value, str):
        return None
    try:
        parsed = rfc3339(value)
    except ValueError:
        return None
    return parsed.timestamp() if parsed is not None else None


def format_span(seconds: float) -> str:
    """A short, coarse span: 5s, 3m 10s, 2h 5m, 3d 4h. Two units at most: precision beyond that is noise."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def format_ago(seconds: float | None) -> str:
    """How long ago something happened: "never" when unknown, "just now" under a second."""
    if seconds is None:
        return "never"
    if seconds < 1:
        # A clock a little ahead of ours must not read as "in the future".
        return "just now"
    return f"{format_span(seconds)} ago"


def format_left(seconds: float | None) -> str:
    """How long until a deadline: "—" when there is none, "ending" once it has passed."""
    if seconds is None:
        return "—"
    if seconds <= 0:
        # Past expiresAt but not yet marked Expired: the operator is about to.
        return "ending"
    return f"{format_span(seconds)} left"


def seconds_since(value: Any, now: float) -> float | None:
    stamp = parse_time(value)
    return None if stamp is None else max(0.0, now - stamp)


def seconds_until(value: Any, now: float) -> float | None:
    stamp = parse_time(value)
    return None if stamp is None else stamp - now
