"""agentops_operator.conditions: Kubernetes-style condition lists."""

from __future__ import annotations

from agentops_operator.conditions import Condition, ConditionSpec, essence, find, merge_conditions

T0, T1, T2 = "2024-05-01T10:00:00Z", "2024-05-01T10:05:00Z", "2024-05-01T10:10:00Z"


def test_new_conditions_get_now_and_generation() -> None:
    out = merge_conditions(None, [ConditionSpec("Ready", "True", "Healthy", "ok")], generation=3, now=T0)
    assert out == [
        {"type": "Ready", "status": "True", "reason": "Healthy", "message": "ok", "observedGeneration": 3, "lastTransitionTime": T0}
    ]


def test_transition_time_moves_only_on_status_change() -> None:
    first = merge_conditions([], [ConditionSpec("Ready", "True", "Healthy", "ok")], generation=1, now=T0)
    # Reason and message change, status does not: no transition.
    second = merge_conditions(first, [ConditionSpec("Ready", "True", "StillFine", "fine")], generation=2, now=T1)
    assert second[0]["lastTransitionTime"] == T0
    assert second[0]["reason"] == "StillFine" and second[0]["message"] == "fine"
    assert second[0]["observedGeneration"] == 2
    third = merge_conditions(second, [ConditionSpec("Ready", "False", "ErrorRateHigh", "bad")], generation=2, now=T2)
    assert third[0]["lastTransitionTime"] == T2
    assert third[0]["status"] == "False"


def test_old_condition_without_transition_time_gets_now() -> None:
    # Deliberately outside the type: a condition as some other writer left it, without lastTransitionTime.
    prev: list[Condition] = [{"type": "Ready", "status": "True", "reason": "X", "message": ""}]  # type: ignore[typeddict-item]  # the missing key is the case under test
    out = merge_conditions(prev, [ConditionSpec("Ready", "True", "X", "")], generation=1, now=T1)
    assert out[0]["lastTransitionTime"] == T1


def test_unmentioned_types_kept_and_order_stable() -> None:
    prev: list[Condition] = [
        {"type": "A", "status": "True", "reason": "r", "message": "m", "observedGeneration": 1, "lastTransitionTime": T0},
        {"type": "Owned", "status": "False", "reason": "x", "message": "y", "lastTransitionTime": T0},
        {"type": "B", "status": "True", "reason": "r", "message": "m", "observedGeneration": 1, "lastTransitionTime": T0},
    ]
    out = merge_conditions(prev, [ConditionSpec("B", "True", "r", "m"), ConditionSpec("C", "Unknown", "q", ""), ConditionSpec("A", "True", "r", "m")], generation=1, now=T1)
    assert [c["type"] for c in out] == ["A", "Owned", "B", "C"]
    assert out[1] == prev[1]  # untouched
    assert out[:1] + out[2:3] == [prev[0], prev[2]]  # unchanged conditions compare equal
    assert out[3]["lastTransitionTime"] == T1


def test_previous_list_not_mutated() -> None:
    prev: list[Condition] = [{"type": "Ready", "status": "True", "reason": "r", "message": "m", "observedGeneration": 1, "lastTransitionTime": T0}]
    snapshot = [dict(c) for c in prev]
    merge_conditions(prev, [ConditionSpec("Ready", "False", "r2", "m2")], generation=2, now=T1)
    assert prev == snapshot


def test_idempotent() -> None:
    wanted = [ConditionSpec("Ready", "True", "Healthy", "ok"), ConditionSpec("TelemetryFresh", "True", "ReportsArriving", "1")]
    once = merge_conditions(None, wanted, generation=1, now=T0)
    twice = merge_conditions(once, wanted, generation=1, now=T2)
    assert twice == once


def test_find() -> None:
    conds = merge_conditions(None, [ConditionSpec("A", "True", "r", ""), ConditionSpec("B", "False", "s", "")], generation=1, now=T0)
    b = find(conds, "B")
    assert b is not None and b["reason"] == "s"
    assert find(conds, "C") is None
    assert find(None, "A") is None


def test_essence_ignores_message_and_times() -> None:
    a = merge_conditions(None, [ConditionSpec("Ready", "True", "Healthy", "one")], generation=1, now=T0)
    b = merge_conditions(None, [ConditionSpec("Ready", "True", "Healthy", "two")], generation=5, now=T1)
    c = merge_conditions(None, [ConditionSpec("Ready", "True", "Other", "one")], generation=1, now=T0)
    assert essence(a) == essence(b) == (("Ready", "True", "Healthy"),)
    assert essence(a) != essence(c)
    assert essence(None) == ()
