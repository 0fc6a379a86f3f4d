"""The sparse latency histograms the sidecars send (agentops.wire): adding them up, and their quantiles."""

from __future__ import annotations

import math
from typing import Mapping, TypeVar

from agentops.wire import bucket_bound

K = TypeVar("K")


def add_buckets(into: dict[float, int], raw: Mapping[str, int]) -> dict[float, int]:
    """Add a histogram as it came on the wire (bound as text) into `into`; return `into`.

    "100" and "100.0" are the same bound: their counts add up."""
    for key, count in raw.items():
        if count:
            bound = bucket_bound(key)
            into[bound] = into.get(bound, 0) + count
    return into


def add_counts(into: dict[K, int], other: Mapping[K, int]) -> None:
    """Add histogram `other` (or any counts by key, e.g. errors by type) into `into`."""
    for key, count in other.items():
        into[key] = into.get(key, 0) + count


def quantile(buckets: Mapping[float, int], q: float) -> float | None:
    """The q-quantile of a histogram, interpolated linearly inside its bucket.

    A value in the overflow bucket (+Inf) is reported as the last finite bound: we
    know only that it is at least that.
    """
    total = sum(buckets.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    lower = 0.0
    finite = [b for b in buckets if math.isfinite(b)]
    for bound in sorted(buckets):
        count = buckets[bound]
        if count and seen + count >= rank:
            if not math.isfinite(bound):
                return max(finite) if finite else lower
            return lower + (bound - lower) * ((rank - seen) / count)
        seen += count
        lower = bound if math.isfinite(bound) else lower
    return lower
