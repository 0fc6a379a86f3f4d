"""The Firestore mirror's pure parts (token bucket, backoff, coalescing and bounds) and
its send loop against an in-memory stand-in for Firestore; the real emulator is in
tests/integration/test_firestore_mirror.py."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

import pytest
from google.api_core import exceptions as api_exceptions
from google.cloud import firestore

from agentops.backoff import Backoff
from agentops_operator import firestore_mirror, mirror_state
from agentops_operator.firestore_mirror import BACKOFF, FirestoreMirror
from agentops_operator.mirror_state import MirrorState, Write, doc_path
from agentops_operator.token_bucket import TokenBucket


def test_token_bucket_starts_full_and_refills_at_its_rate_up_to_its_capacity() -> None:
    bucket = TokenBucket(rate=10.0, capacity=50, now=100.0)
    assert bucket.take(50, now=100.0) == 0
    assert bucket.take(5, now=100.0) == pytest.approx(0.5)  # nothing taken: 5 tokens at 10/s
    assert bucket.take(5, now=100.5) == 0
    assert bucket.take(50, now=200.0) == 0  # an hour idle saves up one burst, not more
    assert bucket.take(1, now=200.0) == pytest.approx(0.1)


def test_token_bucket_refunds_are_capped_at_its_capacity() -> None:
    bucket = TokenBucket(rate=1.0, capacity=10, now=0.0)
    assert bucket.take(10, now=0.0) == 0
    bucket.refund(10)
    bucket.refund(10)
    assert bucket.take(10, now=0.0) == 0
    assert bucket.take(1, now=0.0) > 0


@pytest.mark.parametrize(("rate", "capacity"), [(0.0, 10), (-1.0, 10), (1.0, 0)])
def test_token_bucket_rejects_a_rate_or_capacity_that_could_never_send(rate: float, capacity: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, capacity=capacity, now=0.0)


def test_backoff_doubles_from_half_a_second_to_thirty_with_jitter_below_the_ceiling() -> None:
    ceilings = [BACKOFF.delay(n, rand=lambda: 1.0) for n in range(1, 10)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert BACKOFF.delay(3, rand=lambda: 0.0) == 1.0  # at least half of the ceiling


def state(max_agents: int = 100, max_incidents: int = 20) -> MirrorState:
    return MirrorState(max_agents=max_agents, max_incidents_per_agent=max_incidents)


def keys(writes: list[Write]) -> list[str]:
    return [doc_path(w.key) for w in writes]


def test_only_the_newest_document_of_an_agent_waits_and_it_gets_the_mirror_fields() -> None:
    s = state()
    for i in range(1000):
        s.put_agent("ns", "a", {"seq": i})
    assert s.pending == 1
    [write] = s.take(10)
    assert write.data == {"seq": 999, "namespace": "ns", "name": "a", "mirroredAt": firestore.SERVER_TIMESTAMP}
    assert s.pending == 0


def test_an_incident_write_names_its_agent_and_itself() -> None:
    s = state()
    doc = {"state": "verified"}
    s.put_incident("ns", "a", "inc-1", doc)
    [write] = s.take(1)
    assert write.key == ("ns", "a", "inc-1") and doc_path(write.key) == "ns:a/incidents/inc-1"
    assert write.data == {"state": "verified", "namespace": "ns", "name": "a", "incidentId": "inc-1",
                          "mirroredAt": firestore.SERVER_TIMESTAMP}
    assert doc == {"state": "verified"}  # the caller's dict is not changed


def test_an_update_keeps_its_place_in_the_send_order() -> None:
    s = state()
    s.put_agent("ns", "a", {})
    s.put_agent("ns", "b", {})
    s.put_agent("ns", "a", {"newer": True})
    assert keys(s.take(1)) == ["ns:a"]
    assert keys(s.take(5)) == ["ns:b"]


def test_removal_deletes_the_state_and_a_later_put_wins() -> None:
    s = state()
    s.put_agent("ns", "a", {})
    s.remove_agent("ns", "a")
    assert [w.data for w in s.take(5)] == [None]
    s.remove_agent("ns", "a")
    s.put_agent("ns", "a", {"back": True})
    [write] = s.take(5)
    assert write.data is not None and write.data["back"] is True


def test_only_the_latest_incidents_of_an_agent_are_kept_and_unsent_ones_dropped_count() -> None:
    s = state(max_incidents=3)
    for i in range(3):
        s.put_incident("ns", "a", f"inc-{i}", {})
    s.take(10)  # inc-0..2 sent
    s.put_incident("ns", "a", "inc-0", {"updated": True})  # an update makes inc-0 the latest
    s.put_incident("ns", "a", "inc-3", {})  # drops inc-1, which was sent: nothing lost
    assert s.dropped == 0
    s.put_incident("ns", "a", "inc-4", {})  # drops inc-2
    s.put_incident("ns", "a", "inc-5", {})  # drops inc-0, unsent
    assert s.dropped == 1
    assert sorted(keys(s.take(10))) == ["ns:a/incidents/inc-3", "ns:a/incidents/inc-4", "ns:a/incidents/inc-5"]


def test_the_least_recently_updated_agent_is_forgotten_first_with_its_unsent_documents() -> None:
    s = state(max_agents=2)
    s.put_agent("ns", "a", {})
    s.put_agent("ns", "b", {})
    s.put_incident("ns", "b", "inc-1", {})
    s.put_agent("ns", "a", {"touched": True})
    s.put_agent("ns", "c", {})  # evicts b and its two unsent documents
    assert s.dropped == 2
    assert keys(s.take(10)) == ["ns:a", "ns:c"]


def test_a_failed_batch_goes_back_to_the_front_unless_something_newer_is_waiting() -> None:
    s = state(max_agents=3)
    for name in "abc":
        s.put_agent("ns", name, {})
    failed = s.take(2)  # a, b
    s.put_agent("ns", "b", {"newer": True})  # queued behind c
    s.requeue(failed)
    writes = s.take(10)
    assert keys(writes) == ["ns:a", "ns:c", "ns:b"]
    assert writes[2].data is not None and writes[2].data["newer"] is True


def test_a_failed_write_of_a_forgotten_agent_is_not_requeued() -> None:
    s = state(max_agents=1)
    s.put_agent("ns", "a", {})
    failed = s.take(1)
    s.put_agent("ns", "b", {})  # evicts a
    s.requeue(failed)
    assert keys(s.take(10)) == ["ns:b"]


def test_marking_all_unsent_covers_states_removals_and_incidents_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mirror_state, "RESEND_CHUNK", 2)
    s = state()
    s.put_agent("ns", "a", {})
    s.put_incident("ns", "a", "inc-1", {})
    s.remove_agent("ns", "b")
    s.put_incident("ns", "c", "inc-2", {})  # incidents only, no state document
    s.put_agent("ns", "d", {})
    s.take(100)
    assert sum(1 for _ in s.mark_all_unsent()) == 2  # 4 agents, a pause after every 2
    writes = s.take(100)
    assert sorted(keys(writes)) == ["ns:a", "ns:a/incidents/inc-1", "ns:b", "ns:c/incidents/inc-2", "ns:d"]
    assert [w.data for w in writes if w.key[1] == "b"] == [None]


@pytest.mark.parametrize("max_batch", [0, 501])
def test_a_batch_size_firestore_would_reject_is_refused_up_front(max_batch: int) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        FirestoreMirror(project="p", max_batch=max_batch)


# --- the send loop, against an in-memory stand-in for Firestore ---


class FakeFirestore:
    """Just enough of firestore.Client for the mirror: documents by path; fails while `down`."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.down = False

    def collection(self, name: str) -> Any:
        return _Ref(name)

    def batch(self) -> Any:
        return _Batch(self)

    def close(self) -> None:
        pass


class _Ref:
    def __init__(self, path: str) -> None:
        self.path = path

    def document(self, path: str) -> _Ref:
        return _Ref(f"{self.path}/{path}")


class _Batch:
    def __init__(self, store: FakeFirestore) -> None:
        self.store, self.ops = store, list[tuple[str, dict[str, Any] | None]]()

    def set(self, ref: _Ref, data: dict[str, Any]) -> None:
        self.ops.append((ref.path, data))

    def delete(self, ref: _Ref) -> None:
        self.ops.append((ref.path, None))

    def commit(self, *, retry: object, timeout: float) -> None:
        if self.store.down:
            raise api_exceptions.ServiceUnavailable("down")
        for path, data in self.ops:
            if data is None:
                self.store.docs.pop(path, None)
            else:
                self.store.docs[path] = data


@pytest.mark.timeout(10)
async def test_a_long_outage_counts_once_and_everything_known_is_resent_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firestore_mirror, "BACKOFF", Backoff(first_s=0.001, cap_s=0.001))
    store = FakeFirestore()
    mirror = FirestoreMirror(project="p", collection="c", client_factory=lambda: store)
    task = asyncio.create_task(mirror.run())
    try:
        mirror.put_agent("ns", "a", {"phase": "Healthy"})
        mirror.put_incident("ns", "a", "inc-1", {"state": "verified"})
        assert await mirror.flush(5)
        store.down = True
        store.docs.clear()  # Firestore lost what it had
        mirror.put_agent("ns", "b", {"phase": "Unhealthy"})
        while mirror.stats.commits_failed < 20:
            await asyncio.sleep(0.001)
        store.down = False
        assert await mirror.flush(5)
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
    assert sorted(store.docs) == ["c/ns:a", "c/ns:a/incidents/inc-1", "c/ns:b"]
    assert mirror.stats.outages == 1 and not mirror.stats.in_outage
