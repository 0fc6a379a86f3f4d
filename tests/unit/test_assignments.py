"""agentops_operator.assignments.AssignmentBoard: level-based sets with long polls."""

from __future__ import annotations

import asyncio
from typing import Unpack

from agentops.wire import FaultAssignment
from agentops_operator.assignments import AssignmentBoard
from agentops_operator.resources import Key

A = Key("ns", "a")
B = Key("ns", "b")


def fa(uid: str, /, **extra: Unpack[FaultAssignment]) -> FaultAssignment:
    return {"uid": uid, "name": f"fault-{uid}", "type": "Latency", "expiresAt": "2024-05-01T10:00:00Z",
            "percentage": 100.0, "latency": {"delayMs": 500}, **extra}


def test_current_of_unknown_agent_is_empty_and_stable() -> None:
    board = AssignmentBoard()
    v, faults = board.current(A)
    assert faults == ()
    assert board.current(A) == (v, ())


def test_publish_changes_version_and_sorts_by_uid() -> None:
    board = AssignmentBoard()
    v0, _ = board.current(A)
    assert board.publish(A, [fa("2"), fa("1")]) is True
    v1, faults = board.current(A)
    assert v1 != v0
    assert [f["uid"] for f in faults] == ["1", "2"]
    # The same set, in any order: no change, same version.
    assert board.publish(A, [fa("1"), fa("2")]) is False
    assert board.current(A)[0] == v1
    # A parameter change is a change.
    assert board.publish(A, [fa("1"), fa("2", percentage=50.0)]) is True
    v2 = board.current(A)[0]
    assert v2 not in (v0, v1)
    assert board.publish(A, []) is True
    assert board.current(A)[1] == ()


def test_publish_empty_to_new_agent_is_no_change() -> None:
    board = AssignmentBoard()
    assert board.publish(A, []) is False


def test_versions_never_repeat_across_agents_and_recreation() -> None:
    board = AssignmentBoard()
    seen = {board.current(A)[0], board.current(B)[0]}
    board.publish(A, [fa("1")])
    seen.add(board.current(A)[0])
    board.remove(A)
    v_new = board.current(A)[0]
    assert v_new not in seen
    assert board.current(A)[1] == ()


async def test_wait_returns_at_once_on_different_version() -> None:
    board = AssignmentBoard()
    board.publish(A, [fa("1")])
    v, faults = board.current(A)
    assert await board.wait(A, v - 1, timeout=100) == (v, faults)
    assert await board.wait(A, None, timeout=100) == (v, faults)
    assert await board.wait(A, v, timeout=0) == (v, faults)
    assert board.waiters == 0


async def test_wait_blocks_until_publish() -> None:
    board = AssignmentBoard()
    v0, _ = board.current(A)
    task = asyncio.create_task(board.wait(A, v0, timeout=100))
    await asyncio.sleep(0)
    assert not task.done()
    assert board.waiters == 1
    # A no-op publish and a change for another agent do not wake it.
    assert board.publish(A, []) is False
    board.publish(B, [fa("9")])
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not task.done()
    board.publish(A, [fa("1")])
    v1, faults = await asyncio.wait_for(task, 1)
    assert v1 != v0
    assert [f["uid"] for f in faults] == ["1"]
    assert board.waiters == 0


async def test_many_waiters_all_woken() -> None:
    board = AssignmentBoard()
    v0, _ = board.current(A)
    tasks = [asyncio.create_task(board.wait(A, v0, timeout=100)) for _ in range(5)]
    await asyncio.sleep(0)
    assert board.waiters == 5
    board.publish(A, [fa("1")])
    results = await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert len({r[0] for r in results}) == 1 and results[0][0] != v0
    assert board.waiters == 0


async def test_wait_times_out_with_same_version() -> None:
    board = AssignmentBoard()
    board.publish(A, [fa("1")])
    v, faults = board.current(A)
    assert await board.wait(A, v, timeout=0.01) == (v, faults)
    assert board.waiters == 0


async def test_remove_wakes_waiters_with_empty_set() -> None:
    board = AssignmentBoard()
    board.publish(A, [fa("1")])
    v, _ = board.current(A)
    task = asyncio.create_task(board.wait(A, v, timeout=100))
    await asyncio.sleep(0)
    assert not task.done()
    board.remove(A)
    v2, faults = await asyncio.wait_for(task, 1)
    assert v2 != v
    assert faults == ()
    board.remove(A)  # removing twice is harmless


async def test_cancelled_wait_decrements_waiters() -> None:
    board = AssignmentBoard()
    v, _ = board.current(A)
    task = asyncio.create_task(board.wait(A, v, timeout=100))
    await asyncio.sleep(0)
    assert board.waiters == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert board.waiters == 0
