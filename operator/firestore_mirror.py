"""Mirror of agent state and incidents to Google Cloud Firestore, for dashboards outside the cluster.

The reconcile loop calls `put_agent`, `put_incident` and `remove_agent`; each call only
records the newest document in memory (O(1), never blocks, never raises on Firestore
trouble). `run()` is the one background task that sends: unsent documents go out in
Firestore WriteBatches of at most `max_batch` writes, paced by a token bucket of
`max_writes_per_second`. While a document waits its turn, a newer version replaces it
(coalescing), so a busy agent costs one write per turn, not one per status change.

Document layout (`set()`, i.e. whole-document replace, so every write is idempotent
and a re-send converges):

    {collection}/{namespace}:{name}
        the agent's state: the doc given to put_agent plus `namespace`, `name` and
        `mirroredAt` (server timestamp); deleted by remove_agent.
    {collection}/{namespace}:{name}/incidents/{incident_id}
        one incident: the doc given to put_incident plus `namespace`, `name` (the
        agent's), `incidentId` and `mirroredAt`; kept after the agent is removed
        (history).

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

Memory is bounded: at most `max_agents` agents (least recently updated
dropped first) and the latest `max_incidents_per_agent` incidents per agent.

Why the synchronous client in one dedicated thread rather than the async client:
the thread keeps everything the client library does off the event loop - finding
and refreshing credentials (google-auth is synchronous), creating channels, encoding
up to 500 documents per batch - so none of it can stall the reconcile loop, which
only awaits a future. Every commit carries a gRPC deadline (`commit_timeout`), so the
thread is never stuck longer than that, also after run() is cancelled. The async
client would save the thread but encode on the event loop and tie its channel to one
loop. One thread is enough: commits are sequential by design (the rate is global).

Why a fresh client after every failure: gRPC keeps a channel whose server went away
in reconnect backoff (growing to 120 s), so after Firestore is back the old client
keeps failing fast with "failed to connect to all addresses" (measured against the
emulator: 5 s after a 40 s outage). A new client connects at once.

Credentials: real Firestore uses Application Default Credentials (a Workload Identity
service account in the cluster, `gcloud auth application-default login` on a laptop).
With `FIRESTORE_EMULATOR_HOST=host:port` set, the client library talks to the
emulator instead, with anonymous credentials.

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
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from google.api_core import exceptions as api_exceptions
from google.cloud import firestore
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from agentops.backoff import Backoff

log = logging.getLogger(__name__)

FIRESTORE_MAX_WRITES_PER_COMMIT = 500  # Firestore rejects larger WriteBatches
# After a failed commit: a blip is retried within a second; the end of even a long
# outage is noticed within 30 s. Jitter (down to half the delay) spreads out the
# retries of many operators that lost Firestore at once.
BACKOFF = Backoff(first_s=0.5, cap_s=30.0, jitter=(0.5, 1.0))
# Longer than a healthy commit of 500 writes (well under a second), short enough that
# a cancelled run() leaves its worker thread behind for only a few seconds.
DEFAULT_COMMIT_TIMEOUT_S = 10.0
# The loop stops waiting this long after the gRPC deadline, in case the thread is
# stuck outside gRPC (e.g. looking up credentials); it is never given a second job then.
THREAD_GRACE_S = 5.0
RESEND_CHUNK = 500  # agents marked for re-sending between yields to the event loop

DocKey = tuple[str, str, str | None]  # (namespace, agent name, incident id or None for the state doc)


@dataclass(frozen=True)
class Write:
    key: DocKey
    data: dict[str, Any] | None  # None: delete the document


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


def doc_path(key: DocKey) -> str:
    """The document's path below the collection, for messages."""
    namespace, name, incident_id = key
    return f"{namespace}:{name}" if incident_id is None else f"{namespace}:{name}/incidents/{incident_id}"


@dataclass
class _Agent:
    state: dict[str, Any] | None = None
    removed: bool = False  # the state document is to be deleted
    incidents: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)


class MirrorState:
    """The last-known documents and which of them are unsent. No I/O, no clock."""

    def __init__(self, *, max_agents: int, max_incidents_per_agent: int) -> None:
        self.max_agents, self.max_incidents = max_agents, max_incidents_per_agent
        self._agents: OrderedDict[tuple[str, str], _Agent] = OrderedDict()  # least recently updated first
        self._pending: OrderedDict[DocKey, None] = OrderedDict()  # send order; an update keeps its place
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def put_agent(self, namespace: str, name: str, doc: dict[str, Any]) -> None:
        agent = self._touch(namespace, name)
        agent.state, agent.removed = doc, False
        self._pending[(namespace, name, None)] = None

    def put_incident(self, namespace: str, name: str, incident_id: str, doc: dict[str, Any]) -> None:
        agent = self._touch(namespace, name)
        if incident_id not in agent.incidents and len(agent.incidents) >= self.max_incidents:
            oldest, _ = agent.incidents.popitem(last=False)
            self._forget((namespace, name, oldest))
        agent.incidents[incident_id] = doc
        agent.incidents.move_to_end(incident_id)
        self._pending[(namespace, name, incident_id)] = None

    def remove_agent(self, namespace: str, name: str) -> None:
        agent = self._touch(namespace, name)
        agent.state, agent.removed = None, True
        self._pending[(namespace, name, None)] = None

    def take(self, n: int) -> list[Write]:
        """Remove up to `n` documents from the front of the unsent ones and return their writes."""
        writes: list[Write] = []
        while self._pending and len(writes) < n:
            key, _ = self._pending.popitem(last=False)
            write = self._write(key)
            if write is not None:
                writes.append(write)
        return writes

    def requeue(self, writes: list[Write]) -> None:
        """Put the documents of a failed commit back at the front, unless a newer put already queued them."""
        for w in reversed(writes):
            if w.key not in self._pending and self._write(w.key) is not None:
                self._pending[w.key] = None
                self._pending.move_to_end(w.key, last=False)

    def mark_all_unsent(self) -> Iterator[None]:
        """Queue every known document again; yields every RESEND_CHUNK agents so the caller can let others run."""
        for i, (namespace, name) in enumerate(list(self._agents)):
            agent = self._agents.get((namespace, name))
            if agent is None:  # evicted while we yielded
                continue
            if agent.state is not None or agent.removed:
                self._pending[(namespace, name, None)] = None
            for incident_id in agent.incidents:
                self._pending[(namespace, name, incident_id)] = None
            if i % RESEND_CHUNK == RESEND_CHUNK - 1:
                yield

    def _touch(self, namespace: str, name: str) -> _Agent:
        key = (namespace, name)
        agent = self._agents.get(key)
        if agent is None:
            if len(self._agents) >= self.max_agents:
                (old_ns, old_name), old = self._agents.popitem(last=False)
                self._forget((old_ns, old_name, None))
                for incident_id in old.incidents:
                    self._forget((old_ns, old_name, incident_id))
            agent = self._agents[key] = _Agent()
        else:
            self._agents.move_to_end(key)
        return agent

    def _forget(self, key: DocKey) -> None:
        if key in self._pending:
            del self._pending[key]
            self.dropped += 1

    def _write(self, key: DocKey) -> Write | None:
        namespace, name, incident_id = key
        agent = self._agents.get((namespace, name))
        if agent is None:
            return None
        if incident_id is None:
            if agent.removed:
                return Write(key, None)
            if agent.state is None:
                return None
            return Write(key, {**agent.state, "namespace": namespace, "name": name, "mirroredAt": firestore.SERVER_TIMESTAMP})
        doc = agent.incidents.get(incident_id)
        if doc is None:
            return None
        return Write(key, {**doc, "namespace": namespace, "name": name, "incidentId": incident_id,
                           "mirroredAt": firestore.SERVER_TIMESTAMP})


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


class FirestoreClient(Protocol):
    """What the mirror calls on a Firestore client (google.cloud.firestore.Client); tests pass a fake."""

    def batch(self) -> Any: ...
    def collection(self, collection_path: str) -> Any: ...
    def close(self) -> None: ...


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
        self._collection = collection
        self._rate, self._max_batch, self._commit_timeout = max_writes_per_second, max_batch, commit_timeout
        self._client_factory = client_factory or (lambda: firestore.Client(project=project, database=database))
        self._state = MirrorState(max_agents=max_agents, max_incidents_per_agent=max_incidents_per_agent)
        self._metrics = _Metrics(registry if registry is not None else CollectorRegistry())
        self._wake = asyncio.Event()  # set by every put
        self._progress = asyncio.Event()  # set after every commit attempt, for flush()
        self._in_flight = 0  # writes of the commit on the wire
        self._bucket: TokenBucket | None = None  # while run() runs
        self._job: Future[list[tuple[DocKey, str]]] | None = None  # the worker thread's current commit
        self._client: Any = None  # only touched in the worker thread
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
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="firestore-mirror")
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
                if not await self._send(executor, self._state.take(n)):
                    await asyncio.sleep(BACKOFF.delay(self._failures))
        finally:
            # Not waited for: the worker ends a commit in flight within its gRPC deadline,
            # then closes the client and exits.
            executor.submit(self._close_client)
            executor.shutdown(wait=False)

    def _queued(self) -> None:
        self._metrics.pending.set(self.pending)
        self._wake.set()

    async def _send(self, executor: ThreadPoolExecutor, writes: list[Write]) -> bool:
        """Commit `writes`; False after a failure that calls for a backoff (the writes are queued again)."""
        if not writes:
            return True
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._in_flight = len(writes)
        error: Exception | None = None
        try:
            rejected = await self._commit_in_worker(executor, writes)
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

    async def _commit_in_worker(self, executor: ThreadPoolExecutor, writes: list[Write]) -> list[tuple[DocKey, str]]:
        if self._job is not None and not self._job.done():
            # Never queue a second job behind a stuck one.
            raise TimeoutError("the previous Firestore commit is still running in the worker thread")
        self._job = executor.submit(self._commit, writes)
        return await asyncio.wait_for(asyncio.wrap_future(self._job), self._commit_timeout + THREAD_GRACE_S)

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

    # --- the worker thread ---

    def _commit(self, writes: list[Write]) -> list[tuple[DocKey, str]]:
        """Commit one batch; return the writes that could not even be encoded (the rest were committed)."""
        try:
            if self._client is None:
                self._client = self._client_factory()
            batch = self._client.batch()
            rejected: list[tuple[DocKey, str]] = []
            for w in writes:
                try:
                    ref = self._ref(w.key)
                    if w.data is None:
                        batch.delete(ref)
                    else:
                        batch.set(ref, w.data)
                except (TypeError, ValueError) as exc:  # a value Firestore cannot store, an id with "/"
                    rejected.append((w.key, f"{type(exc).__name__}: {exc}"))
            if len(rejected) < len(writes):
                # retry=None: one attempt; the mirror's own backoff decides about the next.
                batch.commit(retry=None, timeout=self._commit_timeout)
            return rejected
        except api_exceptions.InvalidArgument:
            raise  # a bad document, not a bad connection
        except BaseException:
            self._close_client()  # the next commit gets a fresh channel (see the module docstring)
            raise

    def _ref(self, key: DocKey) -> Any:
        if any("/" in part for part in key if part is not None):
            # Firestore would take it as a deeper path and write somewhere else.
            raise ValueError(f"a document id may not contain '/': {key}")
        return self._client.collection(self._collection).document(doc_path(key))

    def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.close()
            # Client.close() closes only its HTTP session; the gRPC channel would stay
            # open until garbage collection, one more per outage.
            api = getattr(client, "_firestore_api_internal", None)
            if api is not None:
                api.transport.close()
        except Exception:  # closing is best-effort; the client is dropped either way
            log.debug("Firestore mirror: closing the client failed", exc_info=True)
