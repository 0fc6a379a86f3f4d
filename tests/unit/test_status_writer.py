"""StatusWriter ordering: two writes of one object never race; the newest lands last."""

from __future__ import annotations

import asyncio
from typing import Any

from agentops_operator.metrics import OperatorMetrics
from agentops_operator.resources import Key, ObjectRef
from agentops_operator.status_writer import StatusWriter


class SlowKube:
    """Records PATCH order; the first write of each object is slow, so a racing second
    write would overtake it."""

    def __init__(self) -> None:
        self.applied: list[tuple[str, int]] = []
        self.concurrent: dict[str, int] = {}
        self.max_concurrent = 0

    async def run(self, fn: Any, *args: Any) -> Any:
        return await fn(*args)

    async def patch_status(self, ref: ObjectRef, status: dict[str, Any]) -> None:
        name = ref.key.name
        self.concurrent[name] = self.concurrent.get(name, 0) + 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent[name])
        await asyncio.sleep(0.05 if status["n"] == 1 else 0)
        self.applied.append((name, status["n"]))
        self.concurrent[name] -= 1


async def test_newer_status_waits_for_the_write_in_flight() -> None:
    kube = SlowKube()
    writer = StatusWriter(kube, OperatorMetrics(), max_in_flight=4)  # type: ignore[arg-type]
    task = asyncio.create_task(writer.run())
    ref = ObjectRef("Agent", "agents", Key("ns", "a"), "uid-a")
    writer.write_status(ref, {"n": 1})
    await asyncio.sleep(0.01)  # n=1 is now on the wire
    writer.write_status(ref, {"n": 2})
    writer.write_status(ref, {"n": 3})  # coalesces with n=2
    assert await writer.flushed(5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert kube.applied == [("a", 1), ("a", 3)]
    assert kube.max_concurrent == 1
