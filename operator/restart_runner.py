"""Runs runtime restarts off the event loop and hands each answer back to the reconciler.

The reconcile loop decides synchronously and never waits for I/O; a restart (a
Deployment patch, a Cloud Run rollout that can take minutes) runs here, in its own
bounded thread pool, so a slow Cloud Run operation never holds a status-write slot.
The concurrency limit itself is the healing policy's (restart slots); the pool only
has to be at least that large.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from agentops_operator.resources import Key, ObjectRef, RuntimeSpec
from agentops.api_types import HealingActionType
from agentops_operator.runtimes import RestartOutcome, RuntimeBackend

log = logging.getLogger(__name__)

Done = Callable[[Key, str, RestartOutcome], None]


class RestartRunner:
    def __init__(self, backends: dict[str, RuntimeBackend], *, max_workers: int) -> None:
        self.backends = backends
        self._pool = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="restart")
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_done: Done | None = None

    def submit(self, agent: ObjectRef, runtime: RuntimeSpec, token: str, action: HealingActionType = "Restart") -> None:
        task = asyncio.get_running_loop().create_task(self._run(agent, runtime, token, action), name=f"{action} {agent.key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, agent: ObjectRef, runtime: RuntimeSpec, token: str, action: HealingActionType) -> None:
        backend = self.backends.get(runtime.type)
        call = None if backend is None else backend.restart if action == "Restart" else getattr(backend, "scale_to_zero", None)
        if backend is None:
            outcome = RestartOutcome.failed("RuntimeUnavailable", f"this operator has no {runtime.type} runtime backend", retryable=False)
        elif call is None:
            outcome = RestartOutcome.failed("ScaleToZeroUnsupported", f"the {runtime.type} backend cannot scale an agent to zero",
                                            retryable=False)
        else:
            try:
                outcome = await asyncio.get_running_loop().run_in_executor(self._pool, call, agent, runtime, token)
            except Exception as exc:  # a backend bug must not kill healing for every agent
                log.exception("restart of %s failed unexpectedly", agent.key)
                outcome = RestartOutcome.failed("RuntimeError", f"{exc.__class__.__name__}: {exc}", retryable=True)
        log.info("%s of %s (%s): %s %s", action, agent.key, runtime.describe(), outcome.reason, outcome.message)
        if self.on_done is not None:
            self.on_done(agent.key, token, outcome)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
