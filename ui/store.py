"""The UI's in-memory copy of the cluster: Agents, Faults, ResilienceChecks and Events.

Fed by `kube_watch` (on the event loop, one call per watch event or re-list) and read
by the views. It also keeps what the API server does not: a short history of each
agent's p95 latency for the overview's chart. Everything is bounded — the history per
agent, the Events per object — so a long-running UI does not grow without limit.

Pure and synchronous: time is passed in, changes are reported through `on_change`,
so tests drive it without a cluster, an event loop or a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from agentops_ui.time_text import parse_time

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)

AGENT = "Agent"
FAULT = "Fault"
CHECK = "ResilienceCheck"
EVENT = "Event"
SOURCE = "Source"  # a change in a watch's health (synced, failing), not in an object
WATCHED_KINDS = (AGENT, FAULT, CHECK)  # Events are kept only when they are about one of these

# About ten minutes of status updates at the operator's default 60 s metric heartbeat
# (more when phases change): enough for a trend, small enough to draw as a sparkline.
HISTORY_SIZE = 60
# `kubectl describe` shows far fewer; 200 covers a busy hour of one agent's incidents.
EVENTS_PER_OBJECT = 200


@dataclass(frozen=True)
class Change:
    kind: str  # Agent, Fault, ResilienceCheck, Event or Source
    namespace: str
    name: str
    type: str  # ADDED, MODIFIED, DELETED (objects); SYNCED, FAILED, ABSENT (sources)


@dataclass(frozen=True)
class Sample:
    time: float  # Unix seconds when the UI saw the status update
    latency_p95_ms: float


@dataclass
class SourceState:
    """One list+watch (a kind in a namespace, or in all of them when namespace is None)."""

    kind: str
    namespace: str | None
    synced: bool = False
    error: str | None = None
    since: float = 0.0  # when `error` (or the first sync) began
    # The API server does not serve the kind (its CRD is not installed): nothing to load,
    # so it counts as synced; the pages of that kind say so, the others stay quiet.
    absent: str | None = None


def key_of(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def event_time(event: Obj) -> float:
    """The latest moment an Event describes; old-style and new-style Events name it differently."""
    series = event.get("series") or {}
    meta = event.get("metadata") or {}
    for value in (series.get("lastObservedTime"), event.get("lastTimestamp"), event.get("eventTime"),
                  event.get("firstTimestamp"), meta.get("creationTimestamp")):
        stamp = parse_time(value)
        if stamp is not None:
            return stamp
    return 0.0


def event_order(event: Obj) -> tuple[float, int, str]:
    """Sort key for Events: time, then resourceVersion — Event times have whole seconds, and
    the operator often posts several in one second (Degraded, then Unhealthy). The version
    is opaque by contract but grows with etcd's revision; it only breaks ties here."""
    meta = event.get("metadata") or {}
    version = str(meta.get("resourceVersion") or "")
    return event_time(event), int(version) if version.isdigit() else 0, str(meta.get("name") or "")


def involved_of(event: Obj) -> tuple[str, str, str]:
    """(kind, namespace, name) of the object an Event is about."""
    inv = event.get("involvedObject") or event.get("regarding") or {}
    namespace = inv.get("namespace") or (event.get("metadata") or {}).get("namespace") or ""
    return str(inv.get("kind") or ""), str(namespace), str(inv.get("name") or "")


def _latency(obj: Obj) -> float | None:
    value = ((obj.get("status") or {}).get("metrics") or {}).get("latencyP95Ms")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class Store:
    def __init__(self, *, history_size: int = HISTORY_SIZE, events_per_object: int = EVENTS_PER_OBJECT,
                 on_change: Callable[[Change], None] | None = None) -> None:
        self.agents: dict[Key, Obj] = {}
        self.faults: dict[Key, Obj] = {}
        self.checks: dict[Key, Obj] = {}
        self._events: dict[Key, Obj] = {}
        # (kind, namespace, name) of the involved object → its Events' keys and times.
        self._events_by_object: dict[tuple[str, str, str], dict[Key, tuple[float, int, str]]] = {}
        self._history: dict[Key, deque[Sample]] = {}
        self._history_size = history_size
        self._events_per_object = events_per_object
        self.sources: dict[tuple[str, str | None], SourceState] = {}
        self.on_change = on_change

    # ------------------------------------------------------------------ feeding

    def apply(self, kind: str, type_: str, obj: Obj, now: float) -> Change | None:
        """One watch event (ADDED, MODIFIED, DELETED); returns the change, None if nothing changed."""
        key = key_of(obj)
        if not key[1]:
            return None
        if type_ != "DELETED" and self._unchanged(kind, key, obj):
            return None  # a re-list repeating what the watch already delivered
        if kind == EVENT:
            changed = self._apply_event(type_, key, obj)
        else:
            changed = self._apply_object(kind, type_, key, obj, now)
        if not changed:
            return None
        change = Change(kind, key[0], key[1], type_)
        if self.on_change is not None:
            self.on_change(change)
        return change

    def replace(self, kind: str, namespace: str | None, items: Iterable[Obj], now: float) -> list[Change]:
        """The result of a (re-)list: what is listed exists, anything else of that kind and scope is gone."""
        items = list(items)
        listed = {key_of(item) for item in items}
        held = self._held(kind)
        gone = [obj for key, obj in held.items()
                if key not in listed and (namespace is None or key[0] == namespace)]
        changes = [c for obj in gone if (c := self.apply(kind, "DELETED", obj, now)) is not None]
        for item in items:
            change = self.apply(kind, "ADDED" if key_of(item) not in held else "MODIFIED", item, now)
            if change is not None:
                changes.append(change)
        return changes

    def _unchanged(self, kind: str, key: Key, obj: Obj) -> bool:
        previous = self._held(kind).get(key)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        return bool(previous is not None and version and (previous.get("metadata") or {}).get("resourceVersion") == version)

    def _held(self, kind: str) -> dict[Key, Obj]:
        return {AGENT: self.agents, FAULT: self.faults, CHECK: self.checks, EVENT: self._events}[kind]

    def _apply_object(self, kind: str, type_: str, key: Key, obj: Obj, now: float) -> bool:
        held = self._held(kind)
        if type_ == "DELETED":
            self._history.pop(key, None)
            return held.pop(key, None) is not None
        previous = held.get(key)
        held[key] = obj
        if kind == AGENT:
            latency = _latency(obj)
            # One sample per distinct status update: a metadata-only change (a label)
            # is not a new measurement.
            if latency is not None and (previous is None or previous.get("status") != obj.get("status")):
                history = self._history.setdefault(key, deque(maxlen=self._history_size))
                history.append(Sample(now, latency))
        return True

    def _apply_event(self, type_: str, key: Key, event: Obj) -> bool:
        involved = involved_of(event)
        if involved[0] not in WATCHED_KINDS:
            return False
        if type_ == "DELETED":
            # Events expire on the API server (1 h by default); the UI mirrors that.
            if self._events.pop(key, None) is None:
                return False
            index = self._events_by_object.get(involved)
            if index is not None:
                index.pop(key, None)
                if not index:
                    del self._events_by_object[involved]
            return True
        index = self._events_by_object.setdefault(involved, {})
        self._events[key] = event
        index[key] = event_order(event)
        while len(index) > self._events_per_object:
            oldest = min(index, key=lambda k: index[k])
            del index[oldest]
            self._events.pop(oldest, None)
        return key in index

    # ------------------------------------------------------------------ sources

    def expect_source(self, kind: str, namespace: str | None, now: float) -> None:
        self.sources[(kind, namespace)] = SourceState(kind, namespace, since=now)

    def source_synced(self, kind: str, namespace: str | None, now: float) -> None:
        state = self.sources.setdefault((kind, namespace), SourceState(kind, namespace))
        if state.synced and state.error is None and state.absent is None:
            return
        state.synced, state.error, state.absent, state.since = True, None, None, now
        self._source_changed(state, "SYNCED")

    def source_absent(self, kind: str, namespace: str | None, message: str, now: float) -> None:
        """The kind is not served (404 on list): whatever was held of it is gone."""
        self.replace(kind, namespace, (), now)
        state = self.sources.setdefault((kind, namespace), SourceState(kind, namespace))
        if state.absent == message:
            return
        state.synced, state.error, state.absent, state.since = True, None, message, now
        self._source_changed(state, "ABSENT")

    def source_failed(self, kind: str, namespace: str | None, message: str, now: float) -> None:
        state = self.sources.setdefault((kind, namespace), SourceState(kind, namespace))
        if state.error == message:
            return
        if state.error is None:
            state.since = now
        state.error, state.absent = message, None
        self._source_changed(state, "FAILED")

    def _source_changed(self, state: SourceState, type_: str) -> None:
        if self.on_change is not None:
            self.on_change(Change(SOURCE, state.namespace or "", state.kind, type_))

    @property
    def synced(self) -> bool:
        """Every expected list has completed at least once."""
        return all(s.synced for s in self.sources.values())

    # ------------------------------------------------------------------ reading

    def events_for(self, kind: str, namespace: str, name: str) -> list[Obj]:
        """The Events about one object, oldest first."""
        index = self._events_by_object.get((kind, namespace, name), {})
        return [self._events[k] for k in sorted(index, key=lambda k: index[k])]

    def all_events(self) -> list[Obj]:
        """Every Event held, oldest first."""
        return sorted(self._events.values(), key=event_order)

    @property
    def event_count(self) -> int:
        return len(self._events)

    def history(self, key: Key) -> list[Sample]:
        return list(self._history.get(key, ()))
