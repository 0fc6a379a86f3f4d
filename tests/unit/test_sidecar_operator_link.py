"""What the sidecar keeps when the operator is unreachable: bounded, and never the faults."""

from __future__ import annotations

import json
import logging
from typing import Any

from agentops.logs import JsonFormatter
from agentops_sidecar.faults import FaultTable
from agentops_sidecar.instance import Instance
from agentops_sidecar.operator_link import MAX_CARRY_S, OperatorLink
from agentops_sidecar.proxy import Recorder
from agentops_sidecar.settings import SidecarSettings


class _Prober:
    consecutive_failures = 0
    last_error = None

    def in_startup(self, now: float) -> bool:
        return False


def link(recorder: Recorder) -> OperatorLink:
    settings = SidecarSettings(namespace="ns", agent="chat", operator_url="http://op:8080", upstream="http://127.0.0.1:8000",
                               token="t" * 32, sidecar_id="pod-1")
    return OperatorLink(settings, None, table=FaultTable(), recorder=recorder, instance=Instance("pod-1"),  # type: ignore[arg-type]
                        prober=_Prober(), restart=None)  # type: ignore[arg-type]


def test_undelivered_windows_merge_until_the_carry_limit_then_drop() -> None:
    recorder = Recorder(now=0.0)
    lk = link(recorder)
    t = 0.0
    delivered_requests = 0
    while t < MAX_CARRY_S * 3:
        for _ in range(10):
            recorder.record(200, 0.01, None)
        t += 5.0
        window = lk.cut_window(t)
        lk._carry(window, t, "operator down")  # every delivery fails
        delivered_requests = window.requests
    # What is held is one window of at most MAX_CARRY_S of traffic, whatever the outage.
    assert lk._carried is None or t - lk._carried.started <= MAX_CARRY_S
    assert delivered_requests <= (MAX_CARRY_S / 5.0 + 1) * 10
    assert lk.reports["dropped"] >= 2


def test_a_delivered_window_carries_the_undelivered_one() -> None:
    recorder = Recorder(now=0.0)
    lk = link(recorder)
    recorder.record(503, 0.01, "http5xx")
    lk._carry(lk.cut_window(5.0), 5.0, "timeout")
    recorder.record(200, 0.01, None)
    window = lk.cut_window(10.0)
    assert window.requests == 2 and window.errors["http5xx"] == 1 and window.started == 0.0
    assert lk._carried is None


def test_restart_requests_are_level_based() -> None:
    import asyncio

    calls: list[str] = []

    async def restart(reason: str) -> None:
        calls.append(reason)

    lk = link(Recorder(now=0.0))
    lk._restart = restart

    async def run(*tokens: Any) -> None:
        for token in tokens:
            await lk._maybe_restart(token)

    asyncio.run(run("a", "a", "b", "b", None, None, "c"))
    # "a" is adopted at start (the agent just started); "b" and "c" each restart once.
    assert len(calls) == 2 and "(b)" in calls[0] and "(c)" in calls[1]


def test_json_logs_carry_extra_fields() -> None:
    record = logging.LogRecord("agentops_sidecar", logging.INFO, __file__, 1, "fault %s enforced", ("slow",), None)
    record.fault = "slow"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "fault slow enforced" and entry["fault"] == "slow" and entry["level"] == "INFO"
    assert entry["time"].endswith("Z")
