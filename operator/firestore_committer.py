"""How the Firestore mirror's batches reach Firestore: one commit at a time, in a worker thread.

FirestoreMirror (firestore_mirror.py) decides on the event loop what to send and when;
FirestoreCommitter sends one batch: it opens the client, encodes the writes into a
Firestore WriteBatch (`set()` or `delete()` per document) and commits it with a gRPC
deadline, all in one dedicated thread, while the event loop only awaits a future.

Why the synchronous client in one dedicated thread rather than the async client:
the thread keeps everything the client library does off the event loop - finding
and refreshing credentials (google-auth is synchronous), creating channels, encoding
up to 500 documents per batch - so none of it can stall the reconcile loop, which
only awaits a future. Every commit carries a gRPC deadline (`commit_timeout`), so the
thread is never stuck longer than that, also after the mirror's run() is cancelled. The
async client would save the thread but encode on the event loop and tie its channel to
one loop. One thread is enough: commits are sequential by design (the rate is global).

Why a fresh client after every failure: gRPC keeps a channel whose server went away
in reconnect backoff (growing to 120 s), so after Firestore is back the old client
keeps failing fast with "failed to connect to all addresses" (measured against the
emulator: 5 s after a 40 s outage). A new client connects at once. A rejected document
(InvalidArgument) is not a failure of the connection and keeps the client.

A write that cannot even be encoded (an array in an array, an id with "/") is not sent;
`commit` returns it with the reason, and the rest of its batch is committed.

Credentials: real Firestore uses Application Default Credentials (a Workload Identity
service account in the cluster, `gcloud auth application-default login` on a laptop).
With `FIRESTORE_EMULATOR_HOST=host:port` set, the client library talks to the
emulator instead, with anonymous credentials.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from google.api_core import exceptions as api_exceptions

from agentops_operator.mirror_state import DocKey, Write, doc_path

log = logging.getLogger(__name__)

# The loop stops waiting this long after the gRPC deadline, in case the thread is
# stuck outside gRPC (e.g. looking up credentials); it is never given a second job then.
THREAD_GRACE_S = 5.0


class FirestoreClient(Protocol):
    """What the mirror calls on a Firestore client (google.cloud.firestore.Client); tests pass a fake."""

    def batch(self) -> Any: ...
    def collection(self, collection_path: str) -> Any: ...
    def close(self) -> None: ...


class FirestoreCommitter:
    """Commits batches of writes below `collection`, one at a time, in its own worker thread.

    `client_factory` is called in the worker thread, again after every failed commit.
    The thread runs between `start()` and `stop()`; the client outlives a stop and start.
    """

    def __init__(self, *, collection: str, client_factory: Callable[[], FirestoreClient], commit_timeout: float) -> None:
        self._collection, self._client_factory, self._commit_timeout = collection, client_factory, commit_timeout
        self._executor: ThreadPoolExecutor | None = None  # between start() and stop()
        self._job: Future[list[tuple[DocKey, str]]] | None = None  # the worker thread's current commit
        self._client: Any = None  # only touched in the worker thread

    def start(self) -> None:
        """Make the worker thread (it starts with the first commit)."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="firestore-mirror")

    def stop(self) -> None:
        """Let the worker thread end. Not waited for: the worker ends a commit in flight
        within its gRPC deadline, then closes the client and exits."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        executor.submit(self._close_client)
        executor.shutdown(wait=False)

    async def commit(self, writes: list[Write]) -> list[tuple[DocKey, str]]:
        """Commit one batch in the worker thread; return the writes that could not even be
        encoded (the rest were committed). Raises what the commit raised, or TimeoutError."""
        if self._executor is None:
            raise RuntimeError("FirestoreCommitter.commit() called outside start() and stop()")
        if self._job is not None and not self._job.done():
            # Never queue a second job behind a stuck one.
            raise TimeoutError("the previous Firestore commit is still running in the worker thread")
        self._job = self._executor.submit(self._commit, writes)
        return await asyncio.wait_for(asyncio.wrap_future(self._job), self._commit_timeout + THREAD_GRACE_S)

    # --- the worker thread ---

    def _commit(self, writes: list[Write]) -> list[tuple[DocKey, str]]:
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
