"""Times on the wire and in status: RFC 3339 in UTC, one formatter and one parser.

Kubernetes writes whole seconds (`2024-05-01T12:00:00Z`), and so does status here.
The assignment's `serverTime` and log records carry milliseconds: a sidecar reads a
fault's `expiresAt` against `serverTime`, and a truncated second would let a fault run
up to a second too long.
"""

from __future__ import annotations

from datetime import datetime, timezone


def format_time(moment: datetime, *, milliseconds: bool = False) -> str:
    """RFC 3339 in UTC (`Z`), whole seconds unless `milliseconds`; sub-units are cut, never rounded up."""
    utc = moment.astimezone(timezone.utc)
    return utc.isoformat(timespec="milliseconds" if milliseconds else "seconds").replace("+00:00", "Z")


def format_timestamp(seconds: float, *, milliseconds: bool = False) -> str:
    """`format_time` of a Unix timestamp."""
    return format_time(datetime.fromtimestamp(seconds, timezone.utc), milliseconds=milliseconds)


def parse_time(text: str | None) -> datetime | None:
    """RFC 3339 (with `Z` or an offset, with or without fractions) → an aware datetime; None if absent.

    A time without an offset is taken as UTC (the API server always writes UTC).
    Malformed text raises ValueError; readers of untrusted text catch it.
    """
    if not text:
        return None
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)
