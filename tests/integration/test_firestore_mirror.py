"""The Firestore mirror against the real Firestore emulator.

Documents are read back with a separate client, always after `flush()` has reported
that everything is committed. Each test writes to its own collection, so the tests
can share one emulator; the outage test stops and starts an emulator of its own.
Blocking work (starting and stopping the emulator, polling) runs in a thread so the
mirror keeps running on the event loop meanwhile.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from typing import Any

import pytest
from firestore_emulator import FirestoreEmulator, firestore_emulator, own_firestore_emulator  # noqa: F401 (fixtures)
from google.cloud import firestore
from operator_harness import free_port, wait_for

from agentops_operator.firestore_mirror import FirestoreMirror

PROJECT = "agentops-test"
EMULATOR_ENV = "FIRESTORE_EMULATOR_HOST"


@pytest.fixture
def emulator(firestore_emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch) -> FirestoreEmulator:  # noqa: F811
    monkeypatch.setenv(EMULATOR_ENV, firestore_emulator.host)
    return firestore_emulator


@pytest.fixture
def collection() -> str:
    return f"agents-{uuid.uuid4().hex[:8]}"


def new_client() -> firestore.Client:
    return firestore.Client(project=PROJECT)  # the emulator, through FIRESTORE_EMULATOR_HOST


def make_mirror(collection: str, client_factory: Callable[[], firestore.Client] = new_client, **kwargs: Any) -> FirestoreMirror:
    return FirestoreMirror(project=PROJECT, collection=collection, client_factory=client_factory, **kwargs)


@asynccontextmanager
async def running(mirror: FirestoreMirror) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(mirror.run(), name="firestore-mirror")
    try:
        yield task
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def eventually(probe: Callable[[], Any], *, timeout: float, what: str) -> None:
    await asyncio.to_thread(wait_for, probe, timeout=timeout, what=what)


class Reader:
    """A separate client that reads back what the mirror wrote."""

    def __init__(self, collection: str) -> None:
        self.client, self.collection = new_client(), collection

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def agent(self, key: str) -> dict[str, Any] | None:
        doc: dict[str, Any] | None = self.client.collection(self.collection).document(key).get(timeout=10).to_dict()
        return doc

    def incident(self, key: str, incident_id: str) -> dict[str, Any] | None:
        ref = self.client.collection(self.collection).document(key).collection("incidents").document(incident_id)
        doc: dict[str, Any] | None = ref.get(timeout=10).to_dict()
        return doc


@pytest.mark.timeout(60)
async def test_agent_state_and_incidents_appear_with_their_fields(emulator: FirestoreEmulator, collection: str) -> None:
    mirror = make_mirror(collection)
    state = {"phase": "Degraded", "restartCount": 2, "activeFaults": ["slow-1"],
             "conditions": [{"type": "Ready", "status": "False", "reason": "HighLatency"}],
             "metrics": {"p95LatencyMs": 2600.0, "errorRate": 0.0}, "updatedAt": "2025-01-01T00:00:00Z"}
    async with running(mirror):
        mirror.put_agent("team-a", "planner", state)
        mirror.put_incident("team-a", "planner", "inc-1", {"state": "detected", "reason": "HighLatency"})
        assert await mirror.flush(30)

    with Reader(collection) as read:
        agent = read.agent("team-a:planner")
        incident = read.incident("team-a:planner", "inc-1")
    assert agent is not None and incident is not None
    assert {k: agent[k] for k in state} == state
    assert (agent["namespace"], agent["name"]) == ("team-a", "planner")
    assert isinstance(agent["mirroredAt"], datetime)  # the server's timestamp
    assert incident["state"] == "detected"
    assert (incident["namespace"], incident["name"], incident["incidentId"]) == ("team-a", "planner", "inc-1")
    assert isinstance(incident["mirroredAt"], datetime)
    assert mirror.stats.writes_ok == 2 and mirror.stats.outages == 0


@pytest.mark.timeout(60)
async def test_a_burst_of_updates_to_one_agent_is_coalesced(emulator: FirestoreEmulator, collection: str) -> None:
    mirror = make_mirror(collection)
    async with running(mirror):
        for i in range(1000):
            mirror.put_agent("team-a", "busy", {"phase": "Healthy", "seq": i})
        assert await mirror.flush(30)

    assert mirror.stats.writes_ok < 1000
    with Reader(collection) as read:
        assert (read.agent("team-a:busy") or {}).get("seq") == 999


@pytest.mark.timeout(60)
async def test_many_agents_go_out_in_rate_limited_batches(emulator: FirestoreEmulator, collection: str) -> None:
    commits: list[tuple[float, int]] = []  # (when, writes) per commit, as the client saw them

    def logging_client() -> firestore.Client:
        client = new_client()
        make_batch = client.batch

        def batch() -> Any:
            b = make_batch()
            commit = b.commit

            def logged_commit(**kwargs: Any) -> Any:
                commits.append((time.monotonic(), len(b)))
                return commit(**kwargs)

            setattr(b, "commit", logged_commit)  # noqa: B010 (mypy forbids assigning to a method)
            return b

        setattr(client, "batch", batch)  # noqa: B010
        return client

    rate, max_batch, agents = 100.0, 50, 300
    mirror = make_mirror(collection, logging_client, max_writes_per_second=rate, max_batch=max_batch)
    started = time.monotonic()
    async with running(mirror):
        for i in range(agents):
            mirror.put_agent("team-a", f"agent-{i:03d}", {"phase": "Healthy", "index": i})
        assert await mirror.flush(60)

    assert sum(n for _, n in commits) == agents == mirror.stats.writes_ok
    assert max(n for _, n in commits) <= max_batch
    assert len(commits) >= agents // max_batch
    # The token bucket's promise: by any commit, at most one burst plus `rate` per second were sent.
    sent = 0
    for at, n in commits:
        sent += n
        assert sent <= max_batch + rate * (at - started) + 1e-6, commits
    with Reader(collection) as read:
        assert (read.agent("team-a:agent-299") or {}).get("index") == 299


@pytest.mark.timeout(60)
async def test_puts_return_at_once_while_firestore_is_down(monkeypatch: pytest.MonkeyPatch, collection: str) -> None:
    monkeypatch.setenv(EMULATOR_ENV, f"127.0.0.1:{free_port()}")  # an emulator that is not running
    mirror = make_mirror(collection)
    async with running(mirror):
        for i in range(50):
            mirror.put_agent("team-a", f"agent-{i}", {"phase": "Unknown"})
            mirror.put_incident("team-a", f"agent-{i}", "inc-1", {"state": "detected"})
        assert mirror.pending == 100
        await eventually(lambda: mirror.stats.commits_failed >= 3, timeout=30, what="three failed commits")
        assert not await mirror.flush(0.2)
        mirror.put_agent("team-a", "agent-50", {"phase": "Unknown"})
        assert mirror.pending == 101

    stats = mirror.stats
    assert stats.outages == 1 and stats.in_outage and stats.writes_ok == 0
    assert stats.last_error is not None and "ServiceUnavailable" in stats.last_error


@pytest.mark.timeout(120)
async def test_the_mirror_recovers_by_itself_and_resends_everything_after_an_outage(
    own_firestore_emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch, collection: str,  # noqa: F811
) -> None:
    emu = own_firestore_emulator
    monkeypatch.setenv(EMULATOR_ENV, emu.host)
    mirror = make_mirror(collection)
    async with running(mirror):
        for name in ("a", "b", "c"):
            mirror.put_agent("team-a", name, {"phase": "Healthy"})
        mirror.put_incident("team-a", "a", "inc-1", {"state": "detected"})
        mirror.put_incident("team-a", "c", "inc-9", {"state": "verified"})
        assert await mirror.flush(30)

        port = emu.port
        await asyncio.to_thread(emu.stop)
        mirror.put_agent("team-a", "a", {"phase": "Unhealthy"})
        mirror.put_incident("team-a", "a", "inc-1", {"state": "restarted"})
        await eventually(lambda: mirror.stats.in_outage, timeout=30, what="the mirror to notice the outage")
        mirror.put_agent("team-a", "a", {"phase": "Healthy"})
        mirror.put_incident("team-a", "a", "inc-1", {"state": "verified"})
        mirror.put_agent("team-a", "d", {"phase": "Healthy"})
        mirror.remove_agent("team-a", "c")
        assert mirror.pending >= 4  # the puts returned at once; all four documents wait

        await asyncio.to_thread(emu.start)  # same port, and empty
        assert emu.port == port
        assert await mirror.flush(60)

    with Reader(collection) as read:  # a new client: the old one's channel may still be in reconnect backoff
        assert {name: (read.agent(f"team-a:{name}") or {}).get("phase") for name in "abcd"} == {
            "a": "Healthy", "b": "Healthy", "c": None, "d": "Healthy"}
        assert (read.incident("team-a:a", "inc-1") or {}).get("state") == "verified"
        assert (read.incident("team-a:c", "inc-9") or {}).get("state") == "verified"  # history outlives the agent
    assert mirror.stats.outages == 1 and not mirror.stats.in_outage


@pytest.mark.timeout(60)
async def test_remove_agent_deletes_its_state_but_keeps_its_incidents(emulator: FirestoreEmulator, collection: str) -> None:
    mirror = make_mirror(collection)
    async with running(mirror):
        mirror.put_agent("team-a", "gone", {"phase": "Healthy"})
        mirror.put_incident("team-a", "gone", "inc-1", {"state": "verified"})
        assert await mirror.flush(30)
        with Reader(collection) as read:
            assert read.agent("team-a:gone") is not None
        mirror.remove_agent("team-a", "gone")
        assert await mirror.flush(30)
        with Reader(collection) as read:
            assert read.agent("team-a:gone") is None
            assert read.incident("team-a:gone", "inc-1") is not None
        mirror.remove_agent("team-a", "back")
        mirror.put_agent("team-a", "back", {"phase": "Healthy"})  # a later put wins over the removal
        assert await mirror.flush(30)
        with Reader(collection) as read:
            assert read.agent("team-a:back") is not None


@pytest.mark.timeout(60)
async def test_flush_returns_true_once_everything_is_committed(emulator: FirestoreEmulator, collection: str) -> None:
    mirror = make_mirror(collection)
    async with running(mirror):
        assert await mirror.flush(1)  # nothing to send
        mirror.put_agent("team-a", "x", {"phase": "Healthy"})
        assert mirror.pending == 1
        assert await mirror.flush(30)
        assert mirror.pending == 0 and mirror.stats.writes_ok == 1


@pytest.mark.timeout(60)
async def test_documents_firestore_cannot_store_are_dropped_and_the_rest_written(
    emulator: FirestoreEmulator, collection: str,
) -> None:
    mirror = make_mirror(collection)
    async with running(mirror):
        mirror.put_agent("team-a", "ok-1", {"phase": "Healthy"})
        mirror.put_agent("team-a", "nested", {"matrix": [[1, 2]]})  # the server rejects arrays in arrays
        mirror.put_agent("team-a", "object", {"value": object()})  # the client cannot encode it
        mirror.put_incident("team-a", "ok-1", "a/b", {"state": "detected"})  # "/" is not allowed in an id
        mirror.put_agent("team-a", "ok-2", {"phase": "Healthy"})
        assert await mirror.flush(30)

    with Reader(collection) as read:
        assert read.agent("team-a:ok-1") is not None and read.agent("team-a:ok-2") is not None
        assert read.agent("team-a:nested") is None
    assert mirror.stats.dropped == 3 and mirror.stats.outages == 0


@pytest.mark.timeout(60)
async def test_cancelling_run_during_a_hanging_commit_leaves_no_thread_behind(
    monkeypatch: pytest.MonkeyPatch, collection: str,
) -> None:
    # A port that accepts connections and never answers: the commit hangs until its deadline.
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen()
        monkeypatch.setenv(EMULATOR_ENV, f"127.0.0.1:{blackhole.getsockname()[1]}")
        mirror = make_mirror(collection, commit_timeout=1.0)
        async with running(mirror) as task:
            mirror.put_agent("team-a", "x", {"phase": "Healthy"})
            await eventually(lambda: mirror_threads(), timeout=10, what="the worker thread to start")
        assert task.cancelled()
        await eventually(lambda: not mirror_threads(), timeout=10, what="the worker thread to end")
    assert mirror.pending == 1  # the unsent document was kept


def mirror_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("firestore-mirror")]


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    yield
    wait_for(lambda: not mirror_threads(), timeout=15, what="the mirror's worker threads to end")
