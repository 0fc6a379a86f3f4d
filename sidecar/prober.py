"""Active health probes of the agent, on the sidecar's own schedule.

A probe is a GET of the agent's health endpoint with a timeout; 2xx/3xx passes. When
the answer is JSON with an `instance` string, that identifies the agent process (see
`instance.py`). While a crash fault is enforced every probe fails — a crashed agent
answers nothing — whatever the agent itself says.

A starting instance gets a grace (`--startup-grace`, like a Kubernetes startupProbe):
until it first passes a probe, and for at most the grace after it started, its failed
probes are counted but are not consecutive failures — a process still importing its
libraries is not sick, and the operator must not restart it for being slow to start.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

import aiohttp

from agentops_sidecar.faults import FaultTable
from agentops_sidecar.instance import Instance
from agentops_sidecar.proxy import Recorder

log = logging.getLogger(__name__)


class Prober:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        interval_s: float,
        timeout_s: float,
        startup_grace_s: float = 0.0,
        table: FaultTable,
        recorder: Recorder,
        instance: Instance,
    ) -> None:
        self.session, self.url = session, url
        self.interval_s, self.timeout = interval_s, aiohttp.ClientTimeout(total=timeout_s)
        self.table, self.recorder, self.instance = table, recorder, instance
        self.consecutive_failures = 0
        self.startup_grace_s = startup_grace_s
        self._starting_since: float | None = None  # set at the first probe of an instance
        self._passed_once = False
        self.last_error: str | None = None
        self.last_ok: bool | None = None  # None: not probed yet
        # Called after every probe with (ok now, ok before); the operator link uses it
        # to report a change in health at once instead of at the next interval.
        self.on_result: Callable[[bool, bool | None], None] | None = None
        self.totals = {"ok": 0, "failed": 0}
        instance.on_replaced(self._instance_replaced)

    def _instance_replaced(self, _old: str, _new: str) -> None:
        self.last_ok = None  # a new process is not known to be healthy until probed
        self._starting_since, self._passed_once = None, False
        self.consecutive_failures = 0

    def in_startup(self, now: float) -> bool:
        """Whether the current instance has yet to pass a probe and is within its grace
        (which counts from its first probe)."""
        if self._passed_once:
            return False
        return self._starting_since is None or now - self._starting_since < self.startup_grace_s

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            await self.probe_once()
            next_at += self.interval_s
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at = max(next_at, loop.time() - self.interval_s)  # never burst to catch up

    async def probe_once(self) -> bool:
        now = asyncio.get_running_loop().time()
        if self._starting_since is None:
            self._starting_since = now  # the instance's startup grace counts from its first probe
        error = await self._ask_agent()
        crash = next((f for f in self.table.effective if f.type == "Crash"), None)
        if crash is not None:
            error = f"crash fault {crash.name} is enforced"
        window = self.recorder.window
        if error is None:
            window.probes_ok += 1
            self.totals["ok"] += 1
            self.consecutive_failures = 0
            self._passed_once = True
        else:
            window.probes_failed += 1
            self.totals["failed"] += 1
            if crash is not None or not self.in_startup(now):
                self.consecutive_failures += 1
            if self.last_ok is not False:
                log.warning("agent health probe failed: %s", error, extra={"probe": self.url})
        self.last_error = error
        previous, self.last_ok = self.last_ok, error is None
        if self.on_result is not None:
            self.on_result(error is None, previous)
        return error is None

    async def _ask_agent(self) -> str | None:
        """None when the agent passes, else why not."""
        try:
            async with self.session.get(self.url, timeout=self.timeout, allow_redirects=False) as response:
                if response.content_type == "application/json":
                    try:
                        body = await response.json()
                    except (ValueError, aiohttp.ContentTypeError):
                        body = None
                    if isinstance(body, dict) and isinstance(body.get("instance"), str) and body["instance"]:
                        self.instance.agent_reported(body["instance"])
                else:
                    await response.read()
                if response.status >= 400:
                    return f"{self.url} answered {response.status}"
                return None
        except asyncio.TimeoutError:
            return f"{self.url} did not answer within {self.timeout.total:g}s"
        except aiohttp.ClientError as exc:
            return f"{self.url}: {exc.__class__.__name__}: {exc}"[:500]
