"""Go-style durations ("1h30m", "2.5s", "250ms") as used in the CRDs and on every command line.

The CRDs validate durations with CEL's `duration()`, which takes Go's syntax; this
module reads the same syntax so that the operator and the API server agree on what a
value means. Only the units the CRDs allow are accepted (ms, s, m, h). Flags and
environment variables are read with the same parser (agentops.config.DurationOption),
so a duration means the same in a resource and on a command line.
"""

from __future__ import annotations

import re

from agentops.errors import InvalidField

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_WHOLE = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h))+$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, field: str = "duration") -> float:
    """Return the duration in seconds, or raise InvalidField naming `field`."""
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise InvalidField(field, f"{text!r} is not a duration such as 30s, 5m or 1h30m")
    return sum(float(number) * _SECONDS[unit] for number, unit in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """A short human form: 90 → "1m30s", 0.25 → "250ms"."""
    millis = round(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"
