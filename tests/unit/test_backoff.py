"""The one backoff: doubling from the first delay, capped, jitter within its range,
and no overflow however long a failure streak gets. Randomness is passed in, so
every delay here is exact."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agentops.backoff import Backoff


def fixed(value: float) -> Callable[[], float]:
    return lambda: value


def test_doubles_from_the_first_delay_up_to_the_cap() -> None:
    backoff = Backoff(first_s=0.5, cap_s=30.0)
    assert [backoff.delay(n) for n in range(1, 10)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_no_failures_yet_waits_the_first_delay() -> None:
    # The supervisor restarts after a stable run with a failure count of 0.
    assert Backoff(first_s=0.5, cap_s=30.0).delay(0) == 0.5


def test_without_jitter_the_random_source_is_irrelevant() -> None:
    backoff = Backoff(first_s=1.0, cap_s=30.0)
    assert backoff.delay(3, rand=lambda: 0.0) == backoff.delay(3, rand=lambda: 0.999) == 4.0


def test_jitter_scales_the_capped_delay_within_its_range() -> None:
    backoff = Backoff(first_s=0.2, cap_s=5.0, jitter=(0.5, 1.0))
    assert backoff.delay(2, rand=lambda: 0.0) == pytest.approx(0.2)  # the low end: half of 0.4
    assert backoff.delay(2, rand=lambda: 0.5) == pytest.approx(0.3)
    assert backoff.delay(2, rand=lambda: 1.0) == pytest.approx(0.4)
    assert backoff.delay(50, rand=lambda: 1.0) == 5.0  # jitter applies after the cap


def test_jitter_may_go_above_the_cap_when_its_range_does() -> None:
    backoff = Backoff(first_s=0.5, cap_s=30.0, jitter=(0.8, 1.2))
    delays = [backoff.delay(20, rand=fixed(r)) for r in (0.0, 0.25, 0.5, 0.75, 0.999)]
    assert all(24.0 <= d < 36.0 for d in delays)
    assert delays == sorted(delays)


def test_the_real_random_source_stays_within_the_jitter_range() -> None:
    backoff = Backoff(first_s=1.0, cap_s=1.0, jitter=(0.5, 1.0))
    assert all(0.5 <= backoff.delay(1) < 1.0 for _ in range(1000))


@pytest.mark.parametrize("failures", [1_024, 1_025, 10**6, 10**18])
def test_a_very_long_failure_streak_stays_at_the_cap(failures: int) -> None:
    # 0.5 * 2.0 ** 1024 would raise OverflowError.
    assert Backoff(first_s=0.5, cap_s=30.0).delay(failures) == 30.0


def test_the_ceiling_is_the_delay_before_jitter() -> None:
    backoff = Backoff(first_s=0.5, cap_s=30.0, jitter=(0.5, 1.0))
    assert [backoff.ceiling(n) for n in (0, 1, 2, 7, 8)] == [0.5, 0.5, 1.0, 30.0, 30.0]


@pytest.mark.parametrize(("first_s", "cap_s", "jitter"), [
    (0.0, 1.0, (1.0, 1.0)),   # a zero delay would spin
    (-1.0, 1.0, (1.0, 1.0)),
    (2.0, 1.0, (1.0, 1.0)),   # the first delay above the cap
    (1.0, 2.0, (1.2, 0.8)),   # an empty jitter range
    (1.0, 2.0, (-0.5, 1.0)),  # a negative delay
])
def test_numbers_that_cannot_work_are_rejected(first_s: float, cap_s: float, jitter: tuple[float, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(first_s=first_s, cap_s=cap_s, jitter=jitter)
