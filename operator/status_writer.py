"""Status writes and Events, coalesced and bounded.

The reconcile loop decides; this module writes. For each object only the newest
wanted status is kept: if five decisions are made while one write is in flight, the
next write carries the fifth and the other four are never sent. At most
`max_in_flight` API calls run at once (the size of the Kubernetes client's thread
pool). Failed writes are retried with capped exponential backoff unless a newer
status has replaced them; writes to objects that are gone are dropped.

Events are best-effort: a bounded queue, oldest dropped first when it overflows
(counted in a metric), never retried more than a few times.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping

from agentops.backoff import Backoff
from agentops_operator.kube_client import KubeClient, KubeError
from agentops_operator.metrics import OperatorMetrics
from agentops_operator.resources import ObjectRef

log = logging.getLogger(__name__)

MAX_QUEUED_EVENTS = 1000  # at the default 8 writers, a few seconds of backlog
MAX_EVENT_ATTEMPTS = 3
# Most failed writes are a blip (a conflict, a timeout) and go through on a quick
# retry; an API server in real trouble gets at most one retry per object every 30 s.
# No jitter: the retries of many objects are already spread by when each one failed.
RETRY_BACKOFF = Backoff(first_s=0.5, cap_s=30.0)


@dataclass
class _PendingStatus:
    ref: ObjectRef
    status: dict[str, Any]
    attempts: int = 0
    seq: int = 0  # which write_status call this is, per object


@dataclass
class _PendingEvent:
    ref: ObjectRef
    type: str
    reason: str
    message: str
    attempts: int = 0


class StatusWriter:
    def __init__(self, kube: KubeClient, metrics: OperatorMetrics, *, max_in_flight: int = 8) -> None:
        self._kube = kube
        self._metrics = metrics
        self._max_in_flight = max_in_flight
        self._pending: dict[tuple[str, Any], _PendingStatus] = {}
        self._order: deque[tuple[str, Any]] = deque()
        self._events: deque[_PendingEvent] = deque()
        self._wake = asyncio.Event()
        self._in_flight = 0
        self._retrying = 0  # writes waiting out a backoff
        # Objects with a status write on the wire: a newer status for them waits, so
        # two PATCHes of one object never race and the newest always lands last.
        self._writing: set[tuple[str, Any]] = set()
        self._issued: dict[tuple[str, Any], int] = {}  # newest seq per object
        self._idle = asyncio.Event()
        self._idle.set()

    # --- inputs from the reconcile loop (non-blocking) ---

    def write_status(self, ref: ObjectRef, status: Mapping[str, Any]) -> None:
        status = dict(status)  # ours now: the caller may build its next status from the same dict
        slot = (ref.plural, ref.key)
        seq = self._issued[slot] = self._issued.get(slot, 0) + 1
        if slot in self._pending:
            pending = self._pending[slot]  # coalesce: the newest wins
            pending.status, pending.ref, pending.seq = status, ref, seq
        else:
            self._pending[slot] = _PendingStatus(ref, status, seq=seq)
            self._order.append(slot)
        self._idle.clear()
        self._wake.set()

    def forget(self, plural: str, key: Any) -> None:
        """The object is gone; drop its pending write."""
        self._pending.pop((plural, key), None)
        self._issued.pop((plural, key), None)

    def post_event(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None:
        if len(self._events) >= MAX_QUEUED_EVENTS:
            self._events.popleft()
            self._metrics.events_dropped.inc()
        self._events.append(_PendingEvent(ref, type_, reason, message))
        self._idle.clear()
        self._wake.set()

    async def flushed(self, timeout: float) -> bool:
        """Wait until nothing is pending or in flight (used at shutdown and in tests)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    # --- the workers ---

    async def run(self) -> None:
        workers = [asyncio.create_task(self._worker(), name=f"status-writer-{i}") for i in range(self._max_in_flight)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def _take(self) -> _PendingStatus | _PendingEvent | None:
        # Status first: it is the state of record; Events are commentary.
        for _ in range(len(self._order)):
            slot = self._order.popleft()
            if slot in self._writing:
                self._order.append(slot)  # picked up again when its write finishes
                continue
            item = self._pending.pop(slot, None)
            if item is not None:
                self._writing.add(slot)
                return item
        if self._events:
            return self._events.popleft()
        return None

    def _update_idle(self) -> None:
        if not self._pending and not self._events and self._in_flight == 0 and self._retrying == 0:
            self._idle.set()

    async def _worker(self) -> None:
        while True:
            item = self._take()
            if item is None:
                self._update_idle()
                self._wake.clear()
                await self._wake.wait()
                continue
            self._in_flight += 1
            self._metrics.writes_in_flight.inc()
            try:
                await self._perform(item)
            finally:
                if isinstance(item, _PendingStatus):
                    self._writing.discard((item.ref.plural, item.ref.key))
                    self._wake.set()  # a newer status for it may be waiting
                self._in_flight -= 1
                self._metrics.writes_in_flight.dec()
                self._update_idle()

    async def _perform(self, item: _PendingStatus | _PendingEvent) -> None:
        kind = "status" if isinstance(item, _PendingStatus) else "event"
        try:
            if isinstance(item, _PendingStatus):
                await self._kube.run(self._kube.patch_status, item.ref, item.status)
            else:
                await self._kube.run(self._kube.create_event, item.ref, item.type, item.reason, item.message)
            self._metrics.api_writes.labels(kind=kind, result="ok").inc()
        except KubeError as exc:
            if exc.status == 404:
                self._metrics.api_writes.labels(kind=kind, result="gone").inc()
                return
            self._metrics.api_writes.labels(kind=kind, result="error").inc()
            item.attempts += 1
            if not exc.retryable or (isinstance(item, _PendingEvent) and item.attempts >= MAX_EVENT_ATTEMPTS):
                log.error("giving up on %s write for %s %s: %s", kind, item.ref.kind, item.ref.key, exc)
                return
            delay = RETRY_BACKOFF.delay(item.attempts)
            log.warning("%s write for %s %s failed (%s); retrying in %.1fs", kind, item.ref.kind, item.ref.key, exc, delay)
            self._retrying += 1
            asyncio.get_running_loop().call_later(delay, self._retry, item)

    def _retry(self, item: _PendingStatus | _PendingEvent) -> None:
        self._retrying -= 1
        if isinstance(item, _PendingEvent):
            self._events.append(item)
        else:
            slot = (item.ref.plural, item.ref.key)
            # A newer status (pending or already written) wins over a retried one.
            if slot not in self._pending and item.seq == self._issued.get(slot):
                self._pending[slot] = item
                self._order.append(slot)
        self._wake.set()
