"""Which faults each agent's sidecars must enforce right now, with change notification.

Delivery is level-based: a sidecar always receives the complete set, never a delta,
and enforces exactly that set. Each agent's set carries a version; a sidecar long-polls
with the version it holds and is answered as soon as the set differs (or at its wait
limit, with the same version). A Fault that is deleted, expired or halted just stops
being in the set, so no "undo" message can be lost.

Versions come from one counter shared by all agents, so a version never repeats even
when an agent is deleted and re-created.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from agentops.wire import FaultAssignment
from agentops_operator.resources import Key


@dataclass
class _Slot:
    version: int
    faults: tuple[FaultAssignment, ...] = ()
    restart: str | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class AssignmentBoard:
    def __init__(self) -> None:
        self._slots: dict[Key, _Slot] = {}
        self._counter = itertools.count(1)
        self.waiters = 0  # long polls in progress, for the metrics

    def current(self, key: Key) -> tuple[int, tuple[FaultAssignment, ...]]:
        slot = self._slot(key)
        return slot.version, slot.faults

    def restart_request(self, key: Key) -> str | None:
        return self._slot(key).restart

    def _slot(self, key: Key) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(version=next(self._counter))
        return slot

    def publish(self, key: Key, faults: list[FaultAssignment], restart: str | None = None) -> bool:
        """Set an agent's faults (and restart request); wake its waiters if either changed.

        Returns whether anything did."""
        ordered = tuple(sorted(faults, key=lambda f: f["uid"]))
        slot = self._slot(key)
        if slot.faults == ordered and slot.restart == restart:
            return False
        old_event = slot.changed
        self._slots[key] = _Slot(version=next(self._counter), faults=ordered, restart=restart)
        old_event.set()
        return True

    def remove(self, key: Key) -> None:
        """The agent is gone: wake its waiters (they will find no faults)."""
        slot = self._slots.pop(key, None)
        if slot is not None:
            slot.changed.set()

    async def wait(self, key: Key, known_version: int | None, timeout: float) -> tuple[int, tuple[FaultAssignment, ...]]:
        """Return the agent's set once its version differs from `known_version`, or at `timeout`."""
        slot = self._slot(key)
        if known_version is None or slot.version != known_version or timeout <= 0:
            return slot.version, slot.faults
        self.waiters += 1
        try:
            await asyncio.wait_for(slot.changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self.waiters -= 1
        return self.current(key)
