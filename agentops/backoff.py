"""Capped exponential backoff with optional jitter, for every retry after a failure.

A `Backoff` holds only the numbers; callers keep their own failure count, because what
counts as a failure and what resets the count differs (a successful list, a stable
agent run, a newer status replacing a failed one). Each caller states its numbers once,
next to the reason for them.

Jitter multiplies the capped delay by a factor drawn from `jitter`, so many clients that
failed together (sidecars of one operator, operators of one Firestore) do not retry in
lockstep. The random source is a parameter, so tests get exact delays without sleeping.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# Beyond this many doublings every cap in use is long reached; bounding the exponent
# keeps `first_s * 2.0 ** n` finite (2.0 ** 1024 overflows a float).
_MAX_DOUBLINGS = 60


@dataclass(frozen=True)
class Backoff:
    """`first_s` after the first failure, doubling per further failure up to `cap_s`, times a jitter factor."""

    first_s: float
    cap_s: float
    # (low, high): the capped delay is multiplied by a factor drawn uniformly from this
    # range; (1.0, 1.0) means no jitter.
    jitter: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        low, high = self.jitter
        if not 0 < self.first_s <= self.cap_s:
            raise ValueError(f"backoff needs 0 < first_s <= cap_s, got first_s={self.first_s} cap_s={self.cap_s}")
        if not 0 <= low <= high:
            raise ValueError(f"backoff jitter needs 0 <= low <= high, got {self.jitter}")

    def ceiling(self, failures: int) -> float:
        """The delay before jitter: `first_s` for the first failure (and for none), doubling, at most `cap_s`."""
        doublings = min(max(failures - 1, 0), _MAX_DOUBLINGS)
        return min(self.cap_s, self.first_s * 2.0**doublings)

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the `failures`-th failure in a row; `rand` returns a number in [0, 1)."""
        low, high = self.jitter
        return self.ceiling(failures) * (low + (high - low) * rand())
