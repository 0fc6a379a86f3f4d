"""Mirror of agent state and incidents to Google Cloud Firestore, for dashboards outside the cluster.

The reconcile loop calls `put_agent`, `put_incident` and `remove_agent`; each call only
records the newest document in memory (O(1), never blocks, never raises on Firestore
trouble). `run()` is the one background task that sends: unsent documents go out in
Firestore WriteBatches of at most `max_batch` writes, paced by a token bucket of
`max_writes_per_second`. While a document waits its turn, a newer version replaces it
(coalescing), so a busy agent costs one write per turn, not one per status change.

The parts, by role: this module decides on the event loop what to send and when
(pacing, backoff, outages, metrics); mirror_state.py holds the documents, their
coalescing, memory bounds and the document layout in Firestore (pure, no I/O);
token_bucket.py paces the writes; firestore_committer.py commits one batch in a worker
thread (and says why a thread, and why a fresh client after every failure).

Outages: a failed commit keeps its documents unsent (a newer put still wins), the
next attempt waits an exponential backoff with jitter (0.5 s doubling to 30 s), and
one warning is logged per outage, not per retry. The first successful commit after
an outage re-sends the last-known version of every document held in memory:
Firestore may have lost data (an emulator restarts empty) or a commit that timed out
may have applied on the server after all; replacing every document makes the mirror
converge.

A document Firestore cannot store (an array in an array, a value over 1 MiB, a
reserved field name, an id with "/") is not retried forever: the batch it is in is
sent again one document at a time, the culprit is dropped with an error in the log
and counted in `stats.dropped`, the rest is written.

Metrics (on `registry`; a private registry if none is given):
`agentops_firestore_writes_total{result="ok"|"error"}`,
`agentops_firestore_pending_documents`, `agentops_firestore_outages_total`,
`agentops_firestore_commit_duration_seconds`.

Not thread-safe: call everything from the event loop's thread, and run one `run()`
at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Mapping

from google.api_core import exceptions as api_exceptions
from google.cloud import firestore
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from agentops.backoff import Backoff
from agentops_operator.firestore_committer import FirestoreClient, FirestoreCommitter
from agentops_operator.mirror_state import DocKey, MirrorState, Write, doc_path
from agentops_operator.token_bucket import TokenBucket

log = logging.getLogger(__name__)

FIRESTORE_MAX_WRITES_PER_COMMIT = 500  # Firestore rejects larger WriteBatches
# After a failed commit: a blip is retried within a second; the end of even a long
# outage is noticed within 30 s. Jitter (down to half the delay) spreads out the
# retries of many operators that lost Firestore at once.
BACKOFF = Backoff(first_s=0.5, cap_s=30.0, jitter=(0.5, 1.0))
# Longer than a healthy commit of 500 writes (well under a second), short enough that
# a cancelled run() leaves its worker thread behind for only a few seconds.
DEFAULT_COMMIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class MirrorStats:
    # Documents not yet committed, including those of a commit in flight (a document
    # updated while its commit is in flight counts twice until the commit ends).
    pending: int
    writes_ok: int
    writes_failed: int  # each failed attempt counts its writes, so a retried write can count more than once
    commits_ok: int
    commits_failed: int
    outages: int
    dropped: int  # unsent documents given up: evicted by the memory bounds or rejected as invalid
    in_outage: bool
    last_error: str | None


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.writes = Counter("agentops_firestore_writes_total", "Document writes to Firestore, by result.",
                              ["result"], registry=registry)
        self.pending = Gauge("agentops_firestore_pending_documents", "Documents waiting to be written to Firestore.",
                             registry=registry)
        self.outages = Counter("agentops_firestore_outages_total", "Periods in which Firestore commits failed.",
                               registry=registry)
        self.commit_seconds = Histogram("agentops_firestore_commit_duration_seconds",
                                        "Time of one Firestore batch commit, failed ones included.",
                                        buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0), registry=registry)



class FirestoreMirror:
    """Mirrors agent state and incidents to Firestore; see the module docstring.

    `client_factory` (default: `firestore.Client(project=, database=)`) is called in the
    worker thread, again after every failed commit; with it, `project` and `database`
    are not used.
    """

    def __init__(
        self,
        *,
        project: str,
        database: str = "(default)",
        collection: str = "agentops-agents",
        # Firestore bills per document write and asks for at most 500 writes/s to a new
        # collection; 20/s caps a runaway caller at ~1.7 M writes a day while coalescing
        # keeps dashboards current: 10,000 agents changing all the time are each
        # mirrored every ~8 minutes, an agent that changes rarely within seconds.
        max_writes_per_second: float = 20.0,
        max_batch: int = 200,  # also the token bucket's burst: one full batch may go at once
        registry: CollectorRegistry | None = None,
        client_factory: Callable[[], FirestoreClient] | None = None,
        commit_timeout: float = DEFAULT_COMMIT_TIMEOUT_S,
        max_agents: int = 10_000,  # the operator's design scale
        max_incidents_per_agent: int = 20,
    ) -> None:
        if not 1 <= max_batch <= FIRESTORE_MAX_WRITES_PER_COMMIT:
            raise ValueError(f"max_batch must be 1..{FIRESTORE_MAX_WRITES_PER_COMMIT}, got {max_batch}")
        if max_writes_per_second <= 0 or commit_timeout <= 0:
            raise ValueError(f"max_writes_per_second and commit_timeout must be > 0, got {max_writes_per_second}, {commit_timeout}")
        self._rate, self._max_batch = max_writes_per_second, max_batch
        self._committer = FirestoreCommitter(
            collection=collection, commit_timeout=commit_timeout,
            client_factory=client_factory or (lambda: firestore.Client(project=project, database=database)),
        )
        self._state = MirrorState(max_agents=max_agents, max_incidents_per_agent=max_incidents_per_agent)
        self._metrics = _Metrics(registry if registry is not None else CollectorRegistry())
        self._wake = asyncio.Event()  # set by every put
        self._progress = asyncio.Event()  # set after every commit attempt, for flush()
        self._in_flight = 0  # writes of the commit on the wire
        self._bucket: TokenBucket | None = None  # while run() runs
        self._isolate = 0  # writes still to be sent one per commit, to find one Firestore rejects
        self._failures = 0  # failed commits in a row
        self._outage_since: float | None = None
        self._writes_ok = self._writes_failed = self._commits_ok = self._commits_failed = self._outages = 0
        self._rejected = 0
        self._last_error: str | None = None

    # --- inputs from the reconcile loop: O(1), never block, never raise ---

    def put_agent(self, namespace: str, name: str, doc: Mapping[str, Any]) -> None:
        """The agent's current state; the mirror keeps `doc` (do not change it afterwards)."""
        self._state.put_agent(namespace, name, dict(doc))
        self._queued()

    def put_incident(self, namespace: str, name: str, incident_id: str, doc: Mapping[str, Any]) -> None:
        """One incident of the agent, newest version wins; the mirror keeps `doc`."""
        self._state.put_incident(namespace, name, incident_id, dict(doc))
        self._queued()

    def remove_agent(self, namespace: str, name: str) -> None:
        """The Agent was deleted: delete its state document, keep its incidents."""
        self._state.remove_agent(namespace, name)
        self._queued()

    @property
    def pending(self) -> int:
        return self._state.pending + self._in_flight

    @property
    def stats(self) -> MirrorStats:
        return MirrorStats(
            pending=self.pending, writes_ok=self._writes_ok, writes_failed=self._writes_failed,
            commits_ok=self._commits_ok, commits_failed=self._commits_failed, outages=self._outages,
            dropped=self._state.dropped + self._rejected, in_outage=self._outage_since is not None,
            last_error=self._last_error,
        )

    async def flush(self, timeout: float) -> bool:
        """Wait until every document is committed (or given up); False if `timeout` seconds passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pending:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except TimeoutError:
                return not self.pending
        return True

    # --- the background task ---

    async def run(self) -> None:
        """Send unsent documents until cancelled."""
        loop = asyncio.get_running_loop()
        self._bucket = bucket = TokenBucket(self._rate, capacity=self._max_batch, now=loop.time())
        self._committer.start()
        try:
            while True:
                if not self._state.pending:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                n = 1 if self._isolate else min(self._state.pending, self._max_batch)
                wait = bucket.take(n, loop.time())
                if wait > 0:
                    await asyncio.sleep(wait)  # more puts coalesce or join the batch meanwhile
                    continue
                if not await self._send(self._state.take(n)):
                    await asyncio.sleep(BACKOFF.delay(self._failures))
        finally:
            self._committer.stop()  # not waited for: see FirestoreCommitter.stop

    def _queued(self) -> None:
        self._metrics.pending.set(self.pending)
        self._wake.set()

    async def _send(self, writes: list[Write]) -> bool:
        """Commit `writes`; False after a failure that calls for a backoff (the writes are queued again)."""
        if not writes:
            return True
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._in_flight = len(writes)
        error: Exception | None = None
        try:
            rejected = await self._committer.commit(writes)
        except asyncio.CancelledError:
            self._state.requeue(writes)
            raise
        except Exception as exc:  # whatever went wrong, the mirror outlives it and retries
            error, rejected = exc, []
        finally:
            self._in_flight = 0
            self._metrics.commit_seconds.observe(loop.time() - started)
        if error is None:
            await self._succeeded(writes, rejected)
            ok = True
        elif isinstance(error, api_exceptions.InvalidArgument):
            self._invalid(writes, error)
            ok = True  # not an outage: Firestore answered
        else:
            self._failed(writes, error, loop.time())
            ok = False
        self._metrics.pending.set(self.pending)
        self._progress.set()  # only now: failed writes are queued again, flush() must not see 0 before
        return ok

    async def _succeeded(self, writes: list[Write], rejected: list[tuple[DocKey, str]]) -> None:
        for key, message in rejected:
            log.error("Firestore mirror: dropped %s, it cannot be stored: %s", doc_path(key), message)
        sent = len(writes) - len(rejected)
        self._rejected += len(rejected)
        self._writes_ok += sent
        self._commits_ok += 1 if sent else 0
        self._metrics.writes.labels(result="ok").inc(sent)
        self._metrics.writes.labels(result="error").inc(len(rejected))
        self._isolate = max(0, self._isolate - 1)
        self._failures = 0
        if self._outage_since is not None:
            down_s = asyncio.get_running_loop().time() - self._outage_since
            self._outage_since = None
            for _ in self._state.mark_all_unsent():
                await asyncio.sleep(0)
            log.info("Firestore mirror: Firestore is reachable again after %.1fs; re-sending all %d known documents",
                     down_s, self._state.pending)

    def _invalid(self, writes: list[Write], error: Exception) -> None:
        """Firestore rejected the batch: find the culprit by sending its writes one at a time, then drop it."""
        self._count_failure(writes, error)
        if len(writes) > 1:
            log.warning("Firestore mirror: Firestore rejected a batch (%s); sending its %d documents one at a time",
                        error, len(writes))
            self._state.requeue(writes)
            self._isolate = len(writes)
            return
        self._isolate = max(0, self._isolate - 1)
        self._rejected += 1
        log.error("Firestore mirror: dropped %s, Firestore rejected it: %s", doc_path(writes[0].key), error)

    def _failed(self, writes: list[Write], error: Exception, now: float) -> None:
        self._count_failure(writes, error)
        self._state.requeue(writes)
        self._failures += 1
        if self._outage_since is None:
            self._outage_since = now
            self._outages += 1
            self._metrics.outages.inc()
            log.warning("Firestore mirror: commit failed (%s); keeping %d unsent documents and retrying with backoff "
                        "(logged once per outage)", self._last_error, self._state.pending)
        else:
            log.debug("Firestore mirror: commit failed again (%s)", self._last_error)

    def _count_failure(self, writes: list[Write], error: Exception) -> None:
        self._writes_failed += len(writes)
        self._commits_failed += 1
        self._metrics.writes.labels(result="error").inc(len(writes))
        if self._bucket is not None:
            # Failed writes cost Firestore nothing; retries are paced by the backoff.
            self._bucket.refund(len(writes))
        self._last_error = f"{type(error).__name__}: {error}"[:500]  # gRPC messages can carry whole debug strings
