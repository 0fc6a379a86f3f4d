"""One heap of deadlines for every object, instead of a timer or daemon per object.

At 10,000 objects a task per object costs memory and scheduler time; one heap costs a
tuple per pending deadline. Entries are never removed early: rescheduling pushes a
new entry and remembers the latest due time per key, and `pop_due` skips entries that
no longer match it (lazy deletion).
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)


class DeadlineHeap(Generic[K]):
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._tiebreak = itertools.count()

    def __len__(self) -> int:
        return len(self._due)

    def schedule(self, key: K, when: float) -> None:
        """Make `key` due at `when`, unless it is already due earlier."""
        current = self._due.get(key)
        if current is not None and current <= when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._tiebreak), key))

    def cancel(self, key: K) -> None:
        self._due.pop(key, None)

    def next_due(self) -> float | None:
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[K]:
        due: list[K] = []
        while self._heap and self._heap[0][0] <= now:
            when, _, key = heapq.heappop(self._heap)
            if self._due.get(key) == when:
                del self._due[key]
                due.append(key)
        return due
