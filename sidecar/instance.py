"""Which agent instance the sidecar sits in front of.

The operator tells restarts apart by `instance.id` in the reports, and a crash fault
ends for an instance when it is replaced. The id is built from what the sidecar can
know: its own identity (the pod), the run number when it supervises the agent, and
the instance id the agent reports on its health endpoint when it does (the sample
agents report a fresh uuid per process, so a container restart inside the same pod
is seen too).
"""

from __future__ import annotations

import logging
from typing import Callable

log = logging.getLogger(__name__)


class Instance:
    def __init__(self, base: str) -> None:
        self.base = base
        self.run: int | None = None  # supervised process number, from 1
        self.reported: str | None = None  # what the agent says on its health endpoint
        self.restarts = 0
        self._listeners: list[Callable[[str, str], None]] = []

    @property
    def id(self) -> str:
        parts = [self.base]
        if self.run is not None:
            parts.append(f"run-{self.run}")
        if self.reported:
            parts.append(self.reported)
        return "/".join(parts)

    def on_replaced(self, listener: Callable[[str, str], None]) -> None:
        """`listener(old_id, new_id)` runs whenever the agent instance is replaced."""
        self._listeners.append(listener)

    def supervised_start(self, run: int) -> None:
        previous, old_id = self.run, self.id
        self.run, self.restarts, self.reported = run, run - 1, None
        if previous is not None:
            self._replaced(old_id)

    def agent_reported(self, value: str) -> None:
        if value == self.reported:
            return
        old_id = self.id
        previous, self.reported = self.reported, value[:100]
        if previous is not None:
            if self.run is None:
                self.restarts += 1  # restarted under us (container restart, no supervisor)
            self._replaced(old_id)

    def _replaced(self, old_id: str) -> None:
        log.info("agent instance is now %s", self.id, extra={"instance": self.id})
        for listener in self._listeners:
            listener(old_id, self.id)
