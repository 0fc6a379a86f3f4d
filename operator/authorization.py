"""Who may speak for which Agent (pure rules; the API applies them to every /v1 call).

* A Kubernetes ServiceAccount speaks only for Agents in its own namespace and, when the
  Agent lists `spec.identity.serviceAccounts`, only as one of them.
* A Google service account speaks only for the Agent whose Cloud Run runtime names it
  (`spec.runtime.cloudRun.serviceAccount`).
* The static token (opt-in, weaker) speaks for every Agent, as the shared token did.

A refusal is a 403 naming what did not match; it changes nothing. A ServiceAccount of
the right namespace asking for an Agent that does not exist learns that (404, as
before); a Google caller does not, since it has no namespace to scope what it may learn.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from agentops_operator.callers import Caller, Refused, RefusalReason
from agentops_operator.resources import Key


@dataclass(frozen=True)
class AgentIdentity:
    """What of an Agent's spec decides who may speak for it."""

    service_accounts: frozenset[str] = frozenset()
    google_service_account: str | None = None  # set only for runtime CloudRun


def authorize(caller: Caller, key: Key, agent: AgentIdentity | None) -> None:
    """Return if `caller` may report for and read the faults of Agent `key` (None: no such Agent); else raise Refused(403)."""
    if caller.kind == "static":
        return
    if caller.kind == "kubernetes":
        if caller.namespace != key.namespace:
            raise Refused(403, "namespace_mismatch",
                          f"{caller} may not speak for agent {key}: a ServiceAccount speaks only for Agents in its own "
                          f"namespace ({caller.namespace!r} is not {key.namespace!r})")
        if agent is not None and agent.service_accounts and caller.name not in agent.service_accounts:
            allowed = ", ".join(sorted(agent.service_accounts))
            raise Refused(403, "service_account_not_allowed",
                          f"{caller} may not speak for agent {key}: not in its spec.identity.serviceAccounts [{allowed}]")
        return
    if agent is None or agent.google_service_account != caller.name:
        raise Refused(403, "google_account_mismatch",
                      f"{caller} may not speak for agent {key}: it does not exist or its "
                      f"spec.runtime.cloudRun.serviceAccount is not {caller.name!r}")


class RefusalLog:
    """Which refusals deserve a Kubernetes Event now: one per (agent, caller, reason) per `every_s`.

    A misconfigured sidecar retries every few seconds; one Event a minute says it as
    clearly without flooding the API server. Bounded: entries older than `every_s` go.
    """

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic, max_entries: int = 4096) -> None:
        self.every_s, self.clock, self.max_entries = every_s, clock, max_entries
        self._last: dict[tuple[Key, Caller, RefusalReason], float] = {}

    def due(self, key: Key, caller: Caller, reason: RefusalReason) -> bool:
        now = self.clock()
        if len(self._last) >= self.max_entries:
            self._last = {k: t for k, t in self._last.items() if now - t < self.every_s}
            if len(self._last) >= self.max_entries:
                return False  # a flood of distinct callers: the metric still counts them
        entry = (key, caller, reason)
        last = self._last.get(entry)
        if last is not None and now - last < self.every_s:
            return False
        self._last[entry] = now
        return True
