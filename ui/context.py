"""What every view gets from the application: the store, the change feed, the clock, the scope."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from agentops_ui.changes import ChangeFeed
from agentops_ui.store import Store


@dataclass(frozen=True)
class UIContext:
    store: Store
    feed: ChangeFeed
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    clock: Callable[[], float] = field(default=time.time)  # wall clock, injectable for tests

    @property
    def scope_text(self) -> str:
        if not self.namespaces:
            return "all namespaces"
        return ("namespace " if len(self.namespaces) == 1 else "namespaces ") + ", ".join(self.namespaces)


CONTEXT = web.AppKey("context", UIContext)


def context(request: web.Request) -> UIContext:
    return request.app[CONTEXT]
