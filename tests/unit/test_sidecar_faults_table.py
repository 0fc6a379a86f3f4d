"""The sidecar's fault table: local expiry, the lease, crash cures, and fault choice."""

from __future__ import annotations

from typing import Any

import pytest

from agentops_sidecar.faults import FaultTable, choose, parse_fault, BadAssignment
from datetime import datetime, timezone

SERVER_TIME = "2026-01-01T00:00:00Z"


def fault(name: str, type_: str = "Latency", *, expires_in: int = 60, percentage: float = 100, **params: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"uid": f"uid-{name}", "name": name, "type": type_, "percentage": percentage,
                            "expiresAt": f"2026-01-01T00:{expires_in // 60:02d}:{expires_in % 60:02d}Z"}
    item[type_.lower()] = params
    return item


def assignment(*faults: dict[str, Any], version: int = 1, lease: float = 30) -> dict[str, Any]:
    return {"version": version, "leaseSeconds": lease, "serverTime": SERVER_TIME, "faults": list(faults), "restart": None}


def names(table: FaultTable) -> list[str]:
    return [f.name for f in table.effective]


def test_expiry_is_read_against_the_operator_clock_not_ours() -> None:
    table = FaultTable()
    # Our monotonic clock is at 1000 s; the fault has 10 s left by the operator's clock.
    table.replace(assignment(fault("a", expires_in=10)), now=1000.0)
    assert names(table) == ["a"] and table.next_deadline == 1010.0
    table.refresh(1009.9)
    assert names(table) == ["a"]
    table.refresh(1010.0)
    assert names(table) == [] and table.expirations == 1
    table.refresh(1011.0)
    assert table.expirations == 1  # counted once


def test_lease_drops_every_fault_and_contact_restores_them() -> None:
    table = FaultTable()
    table.replace(assignment(fault("a", expires_in=600), fault("b", "Error", expires_in=600), lease=5), now=0.0)
    assert names(table) == ["a", "b"] and table.next_deadline == 5.0
    table.refresh(4.9)
    assert names(table) == ["a", "b"]
    table.refresh(5.0)
    assert names(table) == [] and table.lease_expired and table.lease_expirations == 1
    assert table.next_deadline == 600.0  # only the faults' own expiry is left to watch
    table.contact(7.0)  # the operator answers again (same set)
    assert names(table) == ["a", "b"] and not table.lease_expired


def test_an_expired_lease_with_no_faults_is_not_due_forever() -> None:
    table = FaultTable()
    table.replace(assignment(lease=5), now=0.0)
    table.refresh(6.0)
    assert table.next_deadline == float("inf") and not table.lease_expired


def test_a_crash_is_cured_by_a_new_instance_until_it_is_withdrawn() -> None:
    table = FaultTable()
    table.replace(assignment(fault("boom", "Crash"), fault("slow", delayMs=100)), now=0.0)
    cured = table.instance_replaced(1.0)
    assert [f.name for f in cured] == ["boom"] and names(table) == ["slow"]
    table.replace(assignment(fault("boom", "Crash"), fault("slow", delayMs=100), version=2), now=2.0)
    assert names(table) == ["slow"]  # still cured while assigned
    table.replace(assignment(fault("slow", delayMs=100), version=3), now=3.0)
    assert table.cured == set()
    table.replace(assignment(fault("boom", "Crash"), version=4), now=4.0)
    assert names(table) == ["boom"]  # a crash fault assigned again applies again


def test_listeners_hear_only_real_changes() -> None:
    table = FaultTable()
    seen: list[list[str]] = []
    table.on_change(lambda eff: seen.append([f.name for f in eff]))
    table.replace(assignment(fault("a")), now=0.0)
    table.replace(assignment(fault("a"), version=2), now=0.0)  # same set, same deadline
    table.refresh(2.0)
    table.clear(3.0)
    assert seen == [["a"], []]


def test_bad_or_unknown_faults_are_skipped_not_fatal() -> None:
    table = FaultTable()
    problems = table.replace(assignment(fault("ok"), fault("new", "Partition"), {"name": "x"},
                                        fault("bad", delayMs=-5)), now=0.0)
    assert names(table) == ["ok"] and len(problems) == 3
    assert any("unknown type 'Partition'" in p for p in problems)
    assert any("delayMs" in p for p in problems)


def test_parse_fault_reads_each_type() -> None:
    server = datetime(2026, 1, 1, tzinfo=timezone.utc)
    lat = parse_fault(fault("l", delayMs=2500, jitterMs=100), server_time=server, now=0.0)
    assert (lat.delay_s, lat.jitter_s, lat.expires_at) == (2.5, 0.1, 60.0)
    err = parse_fault(fault("e", "Error", statusCode=429, body="busy"), server_time=server, now=0.0)
    assert (err.status, err.body, err.content_type) == (429, b"busy", "text/plain; charset=utf-8")
    crash = parse_fault(fault("c", "Crash"), server_time=server, now=0.0)
    assert crash.status == 503 and b"crashed" in crash.body
    with pytest.raises(BadAssignment, match="statusCode"):
        parse_fault(fault("e", "Error", statusCode=200), server_time=server, now=0.0)


def test_choose_combines_hits() -> None:
    server = datetime(2026, 1, 1, tzinfo=timezone.utc)
    slow = parse_fault(fault("slow", delayMs=100), server_time=server, now=0.0)
    slower = parse_fault(fault("slower", delayMs=200, jitterMs=50), server_time=server, now=0.0)
    err = parse_fault(fault("err", "Error", statusCode=500), server_time=server, now=0.0)
    crash = parse_fault(fault("crash", "Crash", statusCode=503), server_time=server, now=0.0)
    effect = choose((slow, slower), rnd=lambda: 0.5)  # jitter term: 2*0.5-1 = 0
    assert effect is not None and effect.delay_s == pytest.approx(0.3) and effect.status is None
    effect = choose((err, crash, slow), rnd=lambda: 0.5)
    assert effect is not None and effect.status == 503 and effect.delay_s == pytest.approx(0.1)  # crash wins, after the delay


def test_choose_draws_per_fault_percentage() -> None:
    server = datetime(2026, 1, 1, tzinfo=timezone.utc)
    quarter = parse_fault(fault("q", "Error", percentage=25, statusCode=500), server_time=server, now=0.0)
    assert choose((quarter,), rnd=lambda: 0.24) is not None
    assert choose((quarter,), rnd=lambda: 0.25) is None
    never = parse_fault(fault("n", "Error", percentage=0, statusCode=500), server_time=server, now=0.0)
    assert choose((never,), rnd=lambda: 0.0) is None
