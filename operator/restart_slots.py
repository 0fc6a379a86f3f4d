"""The cluster-wide limit on concurrent restarts, first come first served.

A slot is held from a restart's start until it is verified or given up, so that a
wave of failures (a bad release, a provider outage) restarts a few agents at a time,
never the whole fleet at once. Agents that want a slot queue in arrival order: one
that keeps reporting cannot jump ahead of one that queued before it.
"""

from __future__ import annotations

from agentops_operator.resources import Key


class RestartSlots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._holders: set[Key] = set()
        self._queued: dict[Key, None] = {}  # a dict for its insertion order

    def __len__(self) -> int:
        """Slots in use."""
        return len(self._holders)

    def free_for(self, key: Key) -> bool:
        """Whether `key` may restart now: a slot is free and nobody queued before it."""
        free = self.limit - len(self._holders - {key})
        if free <= 0:
            return False
        order = list(self._queued)
        position = order.index(key) if key in self._queued else len(order)
        return position < free

    def hold(self, key: Key) -> None:
        self._holders.add(key)
        self._queued.pop(key, None)

    def queue(self, key: Key) -> None:
        self._queued.setdefault(key, None)

    def leave_queue(self, key: Key) -> None:
        self._queued.pop(key, None)

    def release(self, key: Key) -> list[Key]:
        """`key` holds no slot (any more); return the agents that should look at the freed one."""
        self._queued.pop(key, None)
        if key not in self._holders:
            return []
        self._holders.discard(key)
        return list(self._queued)
