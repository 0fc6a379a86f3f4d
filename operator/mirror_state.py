"""The Firestore mirror's memory: the newest version of every document, and which are unsent.

Pure state, no I/O and no clock: the mirror (firestore_mirror.FirestoreMirror) puts
documents in and takes writes out; tests drive it directly.

A put only records the newest document. While a document waits its turn, a newer
version replaces it (coalescing) and keeps its place in the send order, so a busy agent
costs one write per turn, not one per status change. The writes of a failed commit go
back to the front, unless a newer put already queued them.

Document layout (written with `set()`, i.e. whole-document replace, so every write is
idempotent and a re-send converges):

    {collection}/{namespace}:{name}
        the agent's state: the doc given to put_agent plus `namespace`, `name` and
        `mirroredAt` (server timestamp); deleted by remove_agent.
    {collection}/{namespace}:{name}/incidents/{incident_id}
        one incident: the doc given to put_incident plus `namespace`, `name` (the
        agent's), `incidentId` and `mirroredAt`; kept after the agent is removed
        (history).

Memory is bounded: at most `max_agents` agents (least recently updated
dropped first) and the latest `max_incidents_per_agent` incidents per agent. Unsent
documents given up that way are counted in `dropped`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from google.cloud import firestore

RESEND_CHUNK = 500  # agents marked for re-sending between yields to the event loop

DocKey = tuple[str, str, str | None]  # (namespace, agent name, incident id or None for the state doc)


@dataclass(frozen=True)
class Write:
    key: DocKey
    data: dict[str, Any] | None  # None: delete the document


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
