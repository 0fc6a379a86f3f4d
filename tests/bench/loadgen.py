"""The sidecar benchmark's load generator: open- and closed-loop requests, with CPU accounting.

Open loop fires each request at its scheduled time whatever the answers do, and times
it from then (no coordinated omission); closed loop keeps C clients each sending its
next request when the last is answered. `Usage` reads CPU seconds of this process, the
sidecar, the agent and the whole machine, so a reader can tell a saturated generator
or a busy machine from a slow sidecar.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from bench_common import cpu_s, machine_busy, percentile

CHAT = b'{"message": "hello"}'
JSON_HEADERS = {"Content-Type": "application/json"}
# A request is counted late when it started more than this after its scheduled time:
# asyncio's timers have about millisecond resolution, so less is noise, more is a busy generator.
LATE_S = 0.001


@dataclass
class Usage:
    """CPU seconds over an interval: this process (the load generator), sidecar, agent, machine."""

    wall: float = 0.0
    generator: float = 0.0
    sidecar: float = 0.0
    agent: float = 0.0
    busy: int = 0  # jiffies, all CPUs
    total: int = 0

    @classmethod
    def now(cls, sidecar_pid: int, agent_pid: int) -> Usage:
        busy, total = machine_busy()
        return cls(time.monotonic(), time.process_time(), cpu_s(sidecar_pid), cpu_s(agent_pid), busy, total)

    def __sub__(self, o: Usage) -> Usage:
        return Usage(self.wall - o.wall, self.generator - o.generator, self.sidecar - o.sidecar, self.agent - o.agent,
                     self.busy - o.busy, self.total - o.total)

    def __add__(self, o: Usage) -> Usage:
        return Usage(self.wall + o.wall, self.generator + o.generator, self.sidecar + o.sidecar, self.agent + o.agent,
                     self.busy + o.busy, self.total + o.total)

    def pct(self, cpu: float) -> float:
        """CPU seconds as % of one core over the interval."""
        return 100.0 * cpu / self.wall if self.wall else float("nan")

    @property
    def others(self) -> float:
        """CPU seconds of everything else: control plane, operator, the rest of the machine.

        The machine's and the children's figures come in clock ticks (10 ms), this
        process's in nanoseconds: a difference within a tick or two is noise, hence ≥ 0.
        """
        return max(0.0, self.busy / os.sysconf("SC_CLK_TCK") - self.generator - self.sidecar - self.agent)


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)  # seconds, answered with 200 only
    sent: int = 0
    late: int = 0  # started more than LATE_S after their scheduled time (open loop)
    errors: Counter[str] = field(default_factory=Counter)
    usage: Usage = field(default_factory=Usage)

    def merge(self, o: Sample) -> None:
        self.latencies += o.latencies
        self.sent += o.sent
        self.late += o.late
        self.errors += o.errors
        self.usage = self.usage + o.usage

    def ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


async def send(session: aiohttp.ClientSession, url: URL, since: float, out: Sample) -> None:
    """One chat request; its latency counts from `since` (its scheduled or actual start)."""
    loop = asyncio.get_running_loop()
    out.sent += 1
    try:
        async with session.post(url, data=CHAT, headers=JSON_HEADERS) as resp:
            await resp.read()
            status = resp.status
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        out.errors[exc.__class__.__name__] += 1
        return
    if status == 200:
        out.latencies.append(loop.time() - since)
    else:
        out.errors[f"HTTP {status}"] += 1


async def open_loop(session: aiohttp.ClientSession, url: URL, seconds: float, *, rate: float) -> Sample:
    """Fire requests at fixed times, whatever the answers do; latency from the scheduled time."""
    loop = asyncio.get_running_loop()
    out = Sample()
    tasks: set[asyncio.Task[None]] = set()

    async def scheduled(at: float) -> None:
        started = loop.time()
        if started - at > LATE_S:
            out.late += 1
        # Late: from the scheduled time (the wait is the server's doing or ours, and shows).
        # Early (by < 1 ms, see below): from the actual start.
        await send(session, url, max(at, started), out)

    first = loop.time() + 0.005
    for i in range(max(1, round(rate * seconds))):
        at = first + i / rate
        if (wait := at - loop.time()) >= 0.001:
            # Whole milliseconds: the selector rounds a timeout up to the next one, so an
            # exact sleep would wake up to 1 ms late; this wakes at or just before `at`.
            await asyncio.sleep(math.floor(wait * 1000) / 1000)
        task = asyncio.create_task(scheduled(at))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks)
    return out


async def closed_loop(session: aiohttp.ClientSession, url: URL, connections: int, seconds: float) -> Sample:
    """`connections` clients, each sending its next request when the last is answered."""
    loop = asyncio.get_running_loop()
    out = Sample()
    deadline = loop.time() + seconds

    async def client() -> None:
        while loop.time() < deadline:
            await send(session, url, loop.time(), out)

    await asyncio.gather(*(client() for _ in range(connections)))
    return out
