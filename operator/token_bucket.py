"""A token bucket: an average rate with a bounded burst, for pacing writes.

The Firestore mirror takes one token per document write, so its writes average
`rate` per second and at most `capacity` go at once after a quiet spell. Time is
passed in (`now`, any monotonic seconds), so tests need no clock and no sleeps; `take`
answers how long to wait instead of waiting, which leaves the waiting (and whatever
the caller does meanwhile) to the caller.
"""

from __future__ import annotations


class TokenBucket:
    """`rate` tokens per second, at most `capacity` saved up; time is passed in."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError(f"token bucket needs rate > 0 and capacity >= 1, got {rate=} {capacity=}")
        self.rate, self.capacity = rate, capacity
        self._tokens, self._at = capacity, now

    def take(self, n: int, now: float) -> float:
        """Take `n` tokens and return 0, or take nothing and return the seconds until there will be `n`."""
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= n:
            self._tokens -= n
            return 0.0
        return (n - self._tokens) / self.rate

    def refund(self, n: int) -> None:
        """Give back the tokens of writes that were not made (a failed commit)."""
        self._tokens = min(self.capacity, self._tokens + n)
