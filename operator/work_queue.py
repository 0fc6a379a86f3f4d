"""What the reconcile loop must look at next: dirty objects, deadlines, and the wake-up.

Inputs only mark objects dirty or schedule a deadline; the loop takes everything that
is dirty or due in one go. Deadlines speak monotonic time in the heap; decisions speak
wall time, so `schedule_at` converts one to the other.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Iterable, Literal

from agentops_operator.deadlines import DeadlineHeap
from agentops_operator.resources import Key

Kind = Literal["agent", "fault"]


class WorkQueue:
    def __init__(self) -> None:
        self._deadlines: DeadlineHeap[tuple[Kind, Key]] = DeadlineHeap()
        self._dirty: dict[Kind, set[Key]] = {"agent": set(), "fault": set()}
        self.wake = asyncio.Event()

    def mark(self, kind: Kind, key: Key) -> None:
        self._dirty[kind].add(key)
        self.wake.set()

    def mark_all(self, kind: Kind, keys: Iterable[Key]) -> None:
        before = len(self._dirty[kind])
        self._dirty[kind].update(keys)
        if len(self._dirty[kind]) != before:  # a wake-up with nothing new would cost an empty pass
            self.wake.set()

    def schedule(self, kind: Kind, key: Key, mono: float) -> None:
        """Look at the object again at monotonic time `mono` (an earlier deadline wins)."""
        self._deadlines.schedule((kind, key), mono)

    def schedule_at(self, kind: Kind, key: Key, moment: datetime, wall: datetime, mono: float) -> None:
        """Look at the object again at wall-clock `moment`."""
        self.schedule(kind, key, mono + max(0.0, (moment - wall).total_seconds()))

    def cancel(self, kind: Kind, key: Key) -> None:
        self._deadlines.cancel((kind, key))

    def release_due(self, mono: float) -> None:
        """Turn every deadline due by `mono` into a dirty mark."""
        for kind, key in self._deadlines.pop_due(mono):
            self._dirty[kind].add(key)

    def take(self, kind: Kind) -> set[Key]:
        """Everything of `kind` that is dirty now; the set starts empty again."""
        taken, self._dirty[kind] = self._dirty[kind], set()
        return taken

    def pending(self, kind: Kind) -> bool:
        return bool(self._dirty[kind])

    def next_due(self) -> float | None:
        return self._deadlines.next_due()
