"""The faults a sidecar enforces right now, and which ones hit a given request.

The operator hands out complete sets (level-based, see `agentops.wire`). This table
turns the last set into what the proxy consults on every request, and it is where
the two local safety rules live, so that they hold even when the operator is gone:

* every fault stops at its own `expiresAt`, read relative to the operator's
  `serverTime` and turned into a local monotonic deadline (a sidecar clock that is
  off by minutes neither shortens nor lengthens a fault);
* every fault is dropped when the operator has not been reached for a lease period
  (the dead man's switch).

Two kinds of fault share the table and its safety rules: traffic faults (Latency,
Error, Crash) strike requests *into* the agent and are enforced by the proxy only
(`traffic`); Model* faults strike the agent's own calls *out* to its model provider
and are enforced by the model gateway only (`model`). Neither ever applies the other's.

A crash fault is "cured" once the agent instance it was crashing is replaced: it stays
assigned but is no longer enforced until the operator withdraws it.

The request path reads `effective` (a tuple, usually empty) and calls `choose` only
when it is not empty; all bookkeeping happens on updates and at deadlines. Time is
passed in, so the table is tested without sleeps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, get_args

from agentops.api_types import DEFAULT_CRASH_STATUS, DEFAULT_ERROR_STATUS, DEFAULT_JITTER_MS, DEFAULT_PERCENTAGE, FaultType
from agentops_sidecar.model_faults import BadModelBlock, ModelSpec, parse_model_block

log = logging.getLogger(__name__)

# The types this sidecar knows. An unknown type in an assignment (a newer operator)
# is skipped with a warning; the others are still enforced.
FAULT_TYPES: tuple[str, ...] = get_args(FaultType)


class BadAssignment(ValueError):
    """A fault in an assignment this sidecar cannot enforce (named in the message)."""


@dataclass(frozen=True)
class Fault:
    uid: str
    name: str
    type: str
    fraction: float  # share of requests hit, 0..1
    expires_at: float  # local monotonic seconds
    delay_s: float = 0.0
    jitter_s: float = 0.0
    status: int = 503
    body: bytes = b""
    content_type: str = "application/json"
    model: ModelSpec | None = None  # a Model* fault's calls and parameters; None for traffic faults


@dataclass(frozen=True)
class Effect:
    """What the matching faults do to one request."""

    delay_s: float
    status: int | None  # answer with this instead of calling the agent; None: forward
    body: bytes
    content_type: str
    hits: tuple[Fault, ...]


def _time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise BadAssignment(f"{field} must be an RFC 3339 time")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadAssignment(f"{field} {value!r} is not an RFC 3339 time") from None


def _number(block: dict[str, Any], key: str, field: str, default: float, low: float, high: float) -> float:
    value = block.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise BadAssignment(f"{field}.{key} must be a number between {low:g} and {high:g}")
    return float(value)


def parse_fault(item: dict[str, Any], *, server_time: datetime, now: float) -> Fault:
    """One assignment entry → a Fault with a local deadline, or BadAssignment."""
    uid, name, kind = item.get("uid"), item.get("name"), item.get("type")
    if not isinstance(uid, str) or not uid or not isinstance(name, str):
        raise BadAssignment("fault without uid or name")
    if kind not in FAULT_TYPES:
        raise BadAssignment(f"fault {name}: unknown type {kind!r}; this sidecar knows {', '.join(FAULT_TYPES)}")
    remaining = (_time(item.get("expiresAt"), f"fault {name}: expiresAt") - server_time).total_seconds()
    percentage = _number(item, "percentage", f"fault {name}", DEFAULT_PERCENTAGE, 0, 100)
    common: dict[str, Any] = {"uid": uid, "name": name, "type": kind, "fraction": percentage / 100, "expires_at": now + remaining}
    if kind.startswith("Model"):
        try:
            return Fault(**common, model=parse_model_block(kind, item.get("model", {}), f"fault {name}: model"))
        except BadModelBlock as exc:
            raise BadAssignment(str(exc)) from None
    if kind == "Latency":
        block = item.get("latency") or {}
        return Fault(**common,
                     delay_s=_number(block, "delayMs", f"fault {name}: latency", 0, 0, 3_600_000) / 1000,
                     jitter_s=_number(block, "jitterMs", f"fault {name}: latency", DEFAULT_JITTER_MS, 0, 3_600_000) / 1000)
    if kind == "Error":
        block = item.get("error") or {}
        status = int(_number(block, "statusCode", f"fault {name}: error", DEFAULT_ERROR_STATUS, 400, 599))
        body = block.get("body")
        if body is None:
            return Fault(**common, status=status, body=_json_error(f"injected by fault {name}", name))
        if not isinstance(body, str):
            raise BadAssignment(f"fault {name}: error.body must be a string")
        return Fault(**common, status=status, body=body.encode(), content_type="text/plain; charset=utf-8")
    block = item.get("crash") or {}
    status = int(_number(block, "statusCode", f"fault {name}: crash", DEFAULT_CRASH_STATUS, 500, 599))
    return Fault(**common, status=status, body=_json_error(f"agent crashed (fault {name})", name))


def _json_error(message: str, fault: str) -> bytes:
    return json.dumps({"error": message, "fault": fault}).encode()


def choose(faults: tuple[Fault, ...], rnd: Callable[[], float] = random.random) -> Effect | None:
    """Which of `faults` hit this request, and what that does to it.

    Each fault draws independently against its own percentage. Latencies of all
    hitting latency faults add up; a crash answers before an error (a crashed agent
    answers nothing else), and either answers after the delay.
    """
    delay = 0.0
    answer: Fault | None = None
    hits: list[Fault] = []
    for fault in faults:
        if fault.fraction < 1.0 and rnd() >= fault.fraction:
            continue
        hits.append(fault)
        if fault.type == "Latency":
            delay += fault.delay_s + (fault.jitter_s * (2 * rnd() - 1) if fault.jitter_s else 0.0)
        elif answer is None or (fault.type == "Crash" and answer.type != "Crash"):
            answer = fault
    if not hits:
        return None
    if answer is None:
        return Effect(max(delay, 0.0), None, b"", "", tuple(hits))
    return Effect(max(delay, 0.0), answer.status, answer.body, answer.content_type, tuple(hits))


class FaultTable:
    def __init__(self) -> None:
        self.assigned: tuple[Fault, ...] = ()
        self.effective: tuple[Fault, ...] = ()  # what the sidecar enforces now, both kinds
        self.traffic: tuple[Fault, ...] = ()  # of those, what the proxy applies
        self.model: tuple[Fault, ...] = ()  # of those, what the model gateway applies
        self.version: int | None = None
        self.lease_s: float | None = None
        self.last_contact: float | None = None  # monotonic
        self.next_deadline = math.inf  # monotonic; refresh() is due then
        self.cured: set[str] = set()  # crash faults whose instance was replaced
        self.lease_expired = False
        self.expirations = 0  # faults stopped at their own expiresAt (for metrics)
        self.lease_expirations = 0
        self._expired: set[str] = set()
        self._listeners: list[Callable[[tuple[Fault, ...]], None]] = []
        self._changed = asyncio.Event()  # set (and replaced) whenever the enforced set changes

    def on_change(self, listener: Callable[[tuple[Fault, ...]], None]) -> None:
        """Call `listener(effective)` whenever the enforced set changes."""
        self._listeners.append(listener)

    def contact(self, now: float) -> None:
        """The operator answered: the lease starts again."""
        self.last_contact = now
        if self.lease_expired:
            self.lease_expired = False
            log.info("operator reachable again; enforcing assigned faults")
        self.refresh(now)

    def replace(self, assignment: dict[str, Any], now: float) -> list[str]:
        """Take a complete assignment set; return the problems with faults it skipped."""
        problems: list[str] = []
        server_time = _time(assignment.get("serverTime"), "serverTime")
        faults = []
        for item in assignment.get("faults") or ():
            try:
                faults.append(parse_fault(item, server_time=server_time, now=now))
            except BadAssignment as exc:
                problems.append(str(exc))
        self.assigned = tuple(faults)
        self.version = assignment.get("version")
        lease = assignment.get("leaseSeconds")
        if isinstance(lease, (int, float)) and lease > 0:
            self.lease_s = float(lease)
        uids = {f.uid for f in faults}
        self.cured &= uids
        self._expired &= uids
        self.contact(now)
        return problems

    def instance_replaced(self, now: float) -> list[Fault]:
        """The agent instance changed: crash faults enforced on the old one are cured."""
        cured = [f for f in self.effective if f.type == "Crash"]
        self.cured.update(f.uid for f in cured)
        self.refresh(now)
        return cured

    def lease_deadline(self) -> float:
        if self.last_contact is None or self.lease_s is None:
            return math.inf
        return self.last_contact + self.lease_s

    def refresh(self, now: float) -> None:
        """Recompute the enforced set at `now` and when it must be recomputed next."""
        lease_deadline = self.lease_deadline()
        if now >= lease_deadline and not self.lease_expired and self.assigned:
            self.lease_expired = True
            self.lease_expirations += 1
            log.warning("operator not reached for %.0f s (lease): dropping all %d fault(s)", self.lease_s or 0, len(self.assigned))
        live = []
        # A lease already past with nothing to drop needs no wake-up (else every
        # request would find the table due for a refresh).
        deadline = lease_deadline if not self.lease_expired and lease_deadline > now else math.inf
        for fault in self.assigned:
            if now >= fault.expires_at:
                if fault.uid not in self._expired:
                    self._expired.add(fault.uid)
                    self.expirations += 1
                    log.info("fault %s reached its expiresAt; no longer enforced", fault.name)
                continue
            if fault.uid in self.cured:
                continue
            deadline = min(deadline, fault.expires_at)
            live.append(fault)
        effective = () if self.lease_expired else tuple(live)
        self.next_deadline = deadline
        if effective != self.effective:
            self.effective = effective
            self.traffic = tuple(f for f in effective if f.model is None)
            self.model = tuple(f for f in effective if f.model is not None)
            for listener in self._listeners:
                listener(effective)
            self._changed.set()
            self._changed = asyncio.Event()

    async def hold(self, uids: frozenset[str], seconds: float | None) -> bool:
        """Wait `seconds` (None: for ever) while any fault of `uids` is enforced.

        True when the wait ran its course; False when those faults stopped being enforced
        first (withdrawn, expired, dropped with the lease), so that a delay or a hang
        injected by a fault ends the moment the fault does."""
        loop = asyncio.get_running_loop()
        deadline = math.inf if seconds is None else loop.time() + seconds
        while any(f.uid in uids for f in self.effective):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return True
            try:
                await asyncio.wait_for(self._changed.wait(), None if math.isinf(remaining) else remaining)
            except asyncio.TimeoutError:
                return True
        return False

    def clear(self, now: float) -> None:
        """The operator says this agent has no faults (or does not exist)."""
        self.assigned = ()
        self.cured.clear()
        self._expired.clear()
        self.contact(now)
