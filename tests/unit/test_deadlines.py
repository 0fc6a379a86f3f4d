"""agentops_operator.deadlines.DeadlineHeap: one heap, lazy deletion."""

from __future__ import annotations

from agentops_operator.deadlines import DeadlineHeap


def test_empty() -> None:
    h: DeadlineHeap[str] = DeadlineHeap()
    assert len(h) == 0
    assert h.next_due() is None
    assert h.pop_due(1e9) == []


def test_ordering_and_pop_due_boundary() -> None:
    h: DeadlineHeap[str] = DeadlineHeap()
    h.schedule("c", 30.0)
    h.schedule("a", 10.0)
    h.schedule("b", 20.0)
    assert len(h) == 3
    assert h.next_due() == 10.0
    assert h.pop_due(9.99) == []
    assert h.pop_due(20.0) == ["a", "b"]  # due at exactly `now` counts
    assert len(h) == 1
    assert h.next_due() == 30.0
    assert h.pop_due(100.0) == ["c"]
    assert h.next_due() is None and len(h) == 0


def test_ties_keep_insertion_order() -> None:
    h: DeadlineHeap[str] = DeadlineHeap()
    for k in ["x", "y", "z"]:
        h.schedule(k, 5.0)
    assert h.pop_due(5.0) == ["x", "y", "z"]


def test_reschedule_earlier_wins_and_old_entry_is_skipped() -> None:
    h: DeadlineHeap[str] = DeadlineHeap()
    h.schedule("k", 50.0)
    h.schedule("k", 10.0)
    assert len(h) == 1
    assert h.next_due() == 10.0
    assert h.pop_due(10.0) == ["k"]
    # The stale entry at 50 must not fire again.
    assert h.next_due() is None
    assert h.pop_due(100.0) == []


def test_reschedule_later_is_ignored_while_earlier_pending() -> None:
    h: DeadlineHeap[str] = DeadlineHeap()
    h.schedule("k", 10.0)
    h.schedule("k", 50.0)
    h.schedule("k", 10.0)  # same time: no duplicate
    assert h.next_due() == 10.0
    assert h.pop_due(10.0) == ["k"]
    assert h.pop_due(1000.0) == []
    # Once popped, a later time can be scheduled.
    h.schedule("k", 50.0)
    assert h.next_due() == 50.0
    assert h.pop_due(49.0) == []
    assert h.pop_due(50.0) == ["k"]


def test_cancel() -> None:
    h: DeadlineHeap[str] = DeadlineHeap()
    h.schedule("a", 10.0)
    h.schedule("b", 20.0)
    h.cancel("a")
    h.cancel("missing")  # no error
    assert len(h) == 1
    assert h.next_due() == 20.0  # cancelled head dropped lazily
    assert h.pop_due(100.0) == ["b"]


def test_cancel_then_later_schedule_replaces() -> None:
    h: DeadlineHeap[str] = DeadlineHeap()
    h.schedule("k", 10.0)
    h.cancel("k")
    h.schedule("k", 40.0)
    assert h.pop_due(10.0) == []  # the cancelled entry is stale
    assert h.next_due() == 40.0
    assert h.pop_due(40.0) == ["k"]


def test_cancel_and_reschedule_same_time_fires_once() -> None:
    h: DeadlineHeap[str] = DeadlineHeap()
    h.schedule("k", 10.0)
    h.cancel("k")
    h.schedule("k", 10.0)
    assert h.pop_due(10.0) == ["k"]
    assert h.pop_due(10.0) == []
    assert len(h) == 0


def test_tuple_keys_like_the_reconciler() -> None:
    h: DeadlineHeap[tuple[str, str]] = DeadlineHeap()
    h.schedule(("fault", "ns/f"), 3.0)
    h.schedule(("agent", "ns/f"), 2.0)
    assert h.pop_due(3.0) == [("agent", "ns/f"), ("fault", "ns/f")]
