"""The prober's startup grace: a starting instance is not sick for being slow to start."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from agentops_sidecar.faults import FaultTable
from agentops_sidecar.instance import Instance
from agentops_sidecar.prober import Prober
from agentops_sidecar.proxy import Recorder


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _prober(session: aiohttp.ClientSession, grace: float, instance: Instance) -> Prober:
    closed = f"http://127.0.0.1:{_closed_port()}/healthz"  # nothing listens: every probe fails
    return Prober(session, closed, interval_s=1, timeout_s=0.5, startup_grace_s=grace, table=FaultTable(),
                  recorder=Recorder(0.0), instance=instance)


@pytest.mark.timeout(20)
async def test_failures_during_the_startup_grace_are_not_consecutive_failures() -> None:
    async with aiohttp.ClientSession() as session:
        instance = Instance("pod-1")
        prober = await _prober(session, 30.0, instance)
        for _ in range(3):
            assert not await prober.probe_once()
        assert prober.consecutive_failures == 0 and prober.totals["failed"] == 3

        strict = await _prober(session, 0.0, Instance("pod-2"))
        for _ in range(3):
            await strict.probe_once()
        assert strict.consecutive_failures == 3


@pytest.mark.timeout(20)
async def test_an_instance_that_passed_once_gets_no_grace_until_it_is_replaced() -> None:
    async with aiohttp.ClientSession() as session:
        instance = Instance("pod-1")
        prober = await _prober(session, 30.0, instance)
        prober._passed_once = True  # it served before, then fell over
        await prober.probe_once()
        assert prober.consecutive_failures == 1
        instance.supervised_start(1)
        instance.supervised_start(2)  # a restart: the new process starts with a grace again
        await prober.probe_once()
        assert prober.consecutive_failures == 0
