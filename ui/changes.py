"""Fan-out of store changes to the browsers connected to `/live`.

Each subscriber gets a small bounded queue. A browser only needs to know *that*
something changed — it then fetches the current page again — so when its queue is
full the new change is dropped: one pending change already guarantees a refresh, and
a slow browser can never make the store (or the other browsers) wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from agentops.errors import AgentOpsError
from agentops_ui.store import Change

# Enough to show a burst of distinct changes to a script reading the stream; the page
# script debounces them into one refresh anyway.
QUEUE_SIZE = 64
# Each subscriber holds an open connection and a queue; beyond this a browser gets 503
# and the page still works without live updates.
MAX_SUBSCRIBERS = 256


class TooManySubscribers(AgentOpsError):
    pass


class ChangeFeed:
    def __init__(self, *, queue_size: int = QUEUE_SIZE, max_subscribers: int = MAX_SUBSCRIBERS) -> None:
        self._queue_size = queue_size
        self._max = max_subscribers
        self._subscribers: set[asyncio.Queue[Change | None]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._subscribers)

    def publish(self, change: Change) -> None:
        for queue in self._subscribers:
            try:
                queue.put_nowait(change)
            except asyncio.QueueFull:
                pass  # a refresh is already pending for this subscriber

    @contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Change | None]]:
        """A queue of changes, ending with None when the feed closes (server shutdown)."""
        if len(self._subscribers) >= self._max:
            raise TooManySubscribers(f"{self._max} live connections already open")
        queue: asyncio.Queue[Change | None] = asyncio.Queue(self._queue_size)
        if self._closed:
            queue.put_nowait(None)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def close(self) -> None:
        """Tell every subscriber to finish: their streams end and the server can stop."""
        self._closed = True
        for queue in self._subscribers:
            while queue.full():
                queue.get_nowait()  # make room: the end matters more than any change
            queue.put_nowait(None)
