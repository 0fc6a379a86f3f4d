"""Supervisor mode: the sidecar runs the agent process itself (local runs, the demo).

It starts the command, restarts it when it exits (with exponential backoff, reset once
a run has lasted `STABLE_AFTER_S`, so a crash-looping agent costs little), and
restarts it at once when the operator asks. The agent runs in its own process group
(its children are stopped with it) and dies with the sidecar (PR_SET_PDEATHSIG), so a
killed sidecar leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

from agentops.backoff import Backoff
from agentops.processes import set_pdeathsig
from agentops_sidecar.instance import Instance

log = logging.getLogger(__name__)

# Before a restart after an exit: a one-off crash costs half a second of downtime; a
# crash loop settles at one start per 30 s, cheap for the machine and the logs. No
# jitter: one supervisor per agent, nothing to spread out.
RESTART_BACKOFF = Backoff(first_s=0.5, cap_s=30.0)
# A run this long counts as healthy: the next exit restarts without accumulated backoff.
STABLE_AFTER_S = 60.0


class Supervisor:
    def __init__(self, command: tuple[str, ...], instance: Instance, *, grace_s: float) -> None:
        self.command, self.instance, self.grace_s = command, instance, grace_s
        self.runs = 0
        self.restarts = {"exited": 0, "requested": 0}
        self._proc: asyncio.subprocess.Process | None = None
        self._requested = False
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()  # cuts a backoff short when a restart is requested

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._stopping.is_set():
            started = loop.time()
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *self.command, start_new_session=True, preexec_fn=set_pdeathsig)
            except OSError as exc:
                log.error("cannot start the agent %r: %s", self.command[0], exc)
                rc: Any = None
            else:
                self.runs += 1
                self.instance.supervised_start(self.runs)
                log.info("agent started (pid %d, run %d)", self._proc.pid, self.runs, extra={"pid": self._proc.pid, "run": self.runs})
                rc = await self._proc.wait()
            if self._stopping.is_set():
                break
            if self._requested:
                self._requested = False
                self.restarts["requested"] += 1
                failures = 0
                continue
            self.restarts["exited"] += 1
            failures = 0 if loop.time() - started >= STABLE_AFTER_S else failures + 1
            delay = RESTART_BACKOFF.delay(failures)  # 0 failures (after a stable run): the first delay
            log.warning("agent exited with %s; restarting in %.1fs", rc, delay, extra={"returncode": rc})
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass
            if self._requested:  # asked for while it was down: the start below is that restart
                self._requested = False
                self.restarts["requested"] += 1

    async def restart(self, reason: str) -> None:
        """Stop the running agent so that `run` starts a fresh one at once."""
        log.info("restarting the agent: %s", reason)
        self._requested = True
        self._wake.set()
        await self._terminate()

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        await self._terminate()

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.grace_s)
        except asyncio.TimeoutError:
            log.warning("agent did not stop within %.0fs of SIGTERM; killing it", self.grace_s)
            _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
