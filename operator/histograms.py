"""Quantiles of the sparse latency histograms the sidecars send (agentops.wire)."""

from __future__ import annotations

import math
from typing import Mapping


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
