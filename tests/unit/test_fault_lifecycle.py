"""agentops_operator.fault_lifecycle.decide: a Fault's life as pure decisions."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from agentops_operator.conditions import find
from agentops_operator.fault_lifecycle import (
    ACTIVE,
    ABORTED,
    EXPIRED,
    FAILED,
    HALTED,
    PENDING,
    EventSpec,
    FaultView,
    decide,
    invalid_spec,
    target_summary,
)
from agentops.api_types import FaultPhase, FaultStatus, LabelSelectorSpec
from agentops.times import parse_time
from agentops_operator.resources import FaultSpec

CREATED = datetime(2024, 5, 1, 10, 0, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return CREATED + timedelta(seconds=seconds)


def spec(duration: str = "5m", *, agent: str | None = "bot", selector: LabelSelectorSpec | None = None, type_: str = "Latency") -> FaultSpec:
    target: dict[str, Any] = {"selector": selector} if selector is not None else {"agent": agent}
    return FaultSpec.from_spec({"type": type_, "duration": duration, "target": target, "latency": {"delayMs": 2000}})


def view(status: FaultStatus | None = None, *, fault_spec: FaultSpec | None = None, generation: int = 1) -> FaultView:
    return FaultView("slow-bot", generation, CREATED, fault_spec or spec(), (status or FaultStatus()).copy())


def cond(status: FaultStatus, type_: str) -> tuple[str, str]:
    c = find(status["conditions"], type_)
    assert c is not None, type_
    return c["status"], c["reason"]


def test_target_summary() -> None:
    assert target_summary([]) == "<none>"
    assert target_summary(["a"]) == "a"
    assert target_summary(["a", "b", "c"]) == "a,b,c"
    assert target_summary(["a", "b", "c", "d", "e"]) == "a,b,c,+2"


# ---------------------------------------------------------------- Pending → Active


def test_pending_to_active() -> None:
    now = at(12.75)
    d = decide(view(), ["bot"], now)
    s = d.status
    assert s["phase"] == ACTIVE
    assert s["startedAt"] == "2024-05-01T10:00:12Z"  # floored to the second
    assert s["expiresAt"] == "2024-05-01T10:05:12Z"
    assert s["targets"] == ["bot"] and s["targetSummary"] == "bot"
    assert s["message"] == "Latency fault active on bot"
    assert s["observedGeneration"] == 1
    assert "endedAt" not in s
    assert cond(s, "TargetsResolved") == ("True", "TargetsFound")
    assert cond(s, "Active") == ("True", "Injecting")
    assert cond(s, "Ready") == ("True", "Active")
    assert all(c["lastTransitionTime"] == "2024-05-01T10:00:12Z" for c in s["conditions"])
    assert d.events == (EventSpec("Normal", "FaultActivated", "Latency fault active on bot until 2024-05-01T10:05:12Z"),)
    assert d.assign is True
    assert parse_time(d.status["expiresAt"]) == d.next_check == datetime(2024, 5, 1, 10, 5, 12, tzinfo=timezone.utc)


def test_fractional_duration_rounded_up() -> None:
    d = decide(view(fault_spec=spec("1.5s")), ["bot"], at(2.9))
    assert d.status["startedAt"] == "2024-05-01T10:00:02Z"
    assert d.status["expiresAt"] == "2024-05-01T10:00:04Z"  # startedAt + ceil(1.5)
    d = decide(view(fault_spec=spec("250ms")), ["bot"], at(0))
    assert d.status["expiresAt"] == "2024-05-01T10:00:01Z"


def test_selector_targets_sorted_and_summarised() -> None:
    fs = spec(selector={"matchLabels": {"tier": "prod"}})
    d = decide(view(fault_spec=fs), ["e", "c", "a", "d", "b"], at(1))
    assert d.status["targets"] == ["a", "b", "c", "d", "e"]
    assert d.status["targetSummary"] == "a,b,c,+2"
    assert d.events[0].message == "Latency fault active on a, b, c, d, e until 2024-05-01T10:05:01Z"
    assert d.status["message"] == "Latency fault active on a,b,c,+2"


def test_input_status_not_mutated() -> None:
    prev = decide(view(), [], at(1)).status
    snapshot = copy.deepcopy(prev)
    decide(view(prev), ["bot"], at(2))
    assert prev == snapshot


# ---------------------------------------------------------------- Active steady state


def test_active_steady_state_is_a_no_op() -> None:
    first = decide(view(), ["bot"], at(3))
    for t in (4, 100, 302.999):
        d = decide(view(first.status), ["bot"], at(t))
        assert d.status == first.status
        assert d.events == ()
        assert d.assign is True
        assert d.next_check == parse_time(first.status["expiresAt"])
        assert parse_time(d.status["expiresAt"]) == parse_time(first.status["expiresAt"])


def test_active_targets_change_updates_status_but_keeps_times() -> None:
    fs = spec(selector={"matchLabels": {"tier": "prod"}})
    first = decide(view(fault_spec=fs), ["a"], at(1))
    d = decide(view(first.status, fault_spec=fs), ["b", "a"], at(20))
    assert d.status["targets"] == ["a", "b"]
    assert d.status["targetSummary"] == "a,b"
    assert d.status["startedAt"] == first.status["startedAt"]
    assert d.status["expiresAt"] == first.status["expiresAt"]
    assert d.events == ()
    assert [c["lastTransitionTime"] for c in d.status["conditions"]] == ["2024-05-01T10:00:01Z"] * 5
    assert find(d.status["conditions"], "TargetsResolved")["message"] == "assigned to 2 agent(s)"  # type: ignore[index]  # find() is Optional: a missing condition fails the test with a TypeError


def test_target_lost_while_active() -> None:
    first = decide(view(), ["bot"], at(1))
    d = decide(view(first.status), [], at(30))
    assert d.status["phase"] == ACTIVE
    assert d.assign is False
    assert d.status["targets"] == [] and d.status["targetSummary"] == "<none>"
    assert d.events == (EventSpec("Warning", "TargetLost", "no agent 'bot' exists any more"),)
    assert cond(d.status, "TargetsResolved") == ("False", "TargetNotFound")
    assert cond(d.status, "Active") == ("True", "Injecting")
    assert cond(d.status, "Ready") == ("False", "TargetNotFound")
    assert find(d.status["conditions"], "Ready")["lastTransitionTime"] == "2024-05-01T10:00:30Z"  # type: ignore[index]  # find() is Optional: a missing condition fails the test with a TypeError
    assert find(d.status["conditions"], "Active")["lastTransitionTime"] == "2024-05-01T10:00:01Z"  # type: ignore[index]  # find() is Optional: a missing condition fails the test with a TypeError
    assert d.next_check == parse_time(first.status["expiresAt"])
    # Still lost: no second warning, no change.
    again = decide(view(d.status), [], at(40))
    assert again.events == () and again.status == d.status
    # Back again: assigned, same expiry, no event.
    back = decide(view(d.status), ["bot"], at(50))
    assert back.assign is True and back.events == ()
    assert back.status["targets"] == ["bot"]
    assert back.status["expiresAt"] == first.status["expiresAt"]
    assert cond(back.status, "Ready") == ("True", "Active")


def test_active_without_expiry_restarts_the_clock() -> None:
    d = decide(view({"phase": ACTIVE}), ["bot"], at(10))
    assert d.status["phase"] == ACTIVE
    assert d.status["expiresAt"] == "2024-05-01T10:05:10Z"
    assert [e.reason for e in d.events] == ["FaultActivated"]


# ---------------------------------------------------------------- Active → Expired


def test_expires_exactly_at_expires_at() -> None:
    active = decide(view(), ["bot"], at(0.4)).status
    assert active["expiresAt"] == "2024-05-01T10:05:00Z"
    just_before = decide(view(active), ["bot"], at(299.999))
    assert just_before.status["phase"] == ACTIVE
    d = decide(view(active), ["bot"], at(300))
    s = d.status
    assert s["phase"] == EXPIRED
    assert s["endedAt"] == "2024-05-01T10:05:00Z"
    assert s["message"] == "expired at 2024-05-01T10:05:00Z"
    assert d.events == (EventSpec("Normal", "FaultExpired", "Latency fault ended after 300s"),)
    assert cond(s, "Active") == ("False", "Expired")
    assert cond(s, "Ready") == ("True", "Expired")
    assert find(s["conditions"], "Ready")["lastTransitionTime"] == "2024-05-01T10:00:00Z"  # type: ignore[index]  # find() is Optional: a missing condition fails the test with a TypeError; status stayed True
    assert find(s["conditions"], "Active")["lastTransitionTime"] == "2024-05-01T10:05:00Z"  # type: ignore[index]  # find() is Optional: a missing condition fails the test with a TypeError
    assert d.assign is False and d.next_check is None
    assert s["startedAt"] == active["startedAt"] and s["expiresAt"] == active["expiresAt"]


def test_expired_even_without_targets() -> None:
    active = decide(view(), ["bot"], at(0)).status
    d = decide(view(active), [], at(301))
    assert d.status["phase"] == EXPIRED
    assert [e.reason for e in d.events] == ["FaultExpired"]


def test_operator_resumed_late() -> None:
    active = decide(view(), ["bot"], at(0)).status
    d = decide(view(active), ["bot"], at(300 + 3600))
    assert d.status["phase"] == EXPIRED
    assert d.status["endedAt"] == "2024-05-01T11:05:00Z"
    assert d.status["message"] == "expired at 2024-05-01T10:05:00Z (operator resumed 3600s after expiry)"
    assert d.events[0].message == "Latency fault ended after 300s (operator resumed 3600s after expiry)"
    assert d.assign is False
    # Under two seconds late is not worth a note.
    assert "resumed" not in decide(view(active), ["bot"], at(301.9)).status["message"]


# ---------------------------------------------------------------- Pending without a target


def test_pending_without_target_warns_once() -> None:
    d = decide(view(), [], at(2))
    s = d.status
    assert s["phase"] == PENDING
    assert s["targets"] == [] and s["targetSummary"] == "<none>"
    assert s["message"] == "waiting for agent 'bot' until 2024-05-01T10:05:02Z"
    assert d.events == (EventSpec("Warning", "TargetNotFound", "waiting for agent 'bot' until 2024-05-01T10:05:02Z"),)
    assert d.next_check == at(302)  # duration + PENDING_GRACE_S
    assert d.assign is False
    assert cond(s, "TargetsResolved") == ("False", "TargetNotFound")
    assert cond(s, "Active") == ("False", "WaitingForTarget")
    assert cond(s, "Ready") == ("False", "TargetNotFound")
    second = decide(view(s), [], at(60))
    assert second.events == ()
    assert second.status == s  # nothing moved, not even a transition time
    assert second.next_check == at(302)


def test_pending_then_target_appears() -> None:
    pending = decide(view(), [], at(2)).status
    d = decide(view(pending), ["bot"], at(90.5))
    assert d.status["phase"] == ACTIVE
    assert d.status["startedAt"] == "2024-05-01T10:01:30Z"
    assert d.status["expiresAt"] == "2024-05-01T10:06:30Z"  # clock starts at activation, not creation
    assert [e.reason for e in d.events] == ["FaultActivated"]
    # Every condition whose status moved transitioned now; Stalled stayed False since Pending.
    assert all(c["lastTransitionTime"] == "2024-05-01T10:01:30Z" for c in d.status["conditions"] if c["type"] != "Stalled")
    assert cond(d.status, "Stalled") == ("False", ACTIVE) and cond(d.status, "Reconciling") == ("False", ACTIVE)
    assert cond(pending, "Reconciling") == ("True", "WaitingForTarget")


def test_pending_selector_message() -> None:
    fs = spec(selector={"matchLabels": {"tier": "prod"}, "matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]})
    d = decide(view(fault_spec=fs), [], at(0))
    assert d.events[0].message == "waiting for agents matching tier=prod,!canary until 2024-05-01T10:05:02Z"


def test_pending_past_duration_fails() -> None:
    pending = decide(view(), [], at(2)).status
    assert decide(view(pending), [], at(301.9)).status["phase"] == PENDING  # within the grace
    d = decide(view(pending), [], at(302))  # duration + PENDING_GRACE_S after creation
    s = d.status
    assert s["phase"] == FAILED
    assert s["endedAt"] == "2024-05-01T10:05:02Z"
    assert s["message"] == "no agent 'bot' appeared within the fault's duration"
    assert d.events == (EventSpec("Warning", "FaultFailed", "no agent 'bot' appeared within 300s; the fault will not run"),)
    assert cond(s, "Active") == ("False", "NeverStarted")
    assert cond(s, "Ready") == ("False", "TargetNotFound")
    # Ready was False all along: its transition time is kept.
    assert find(s["conditions"], "Ready")["lastTransitionTime"] == "2024-05-01T10:00:02Z"  # type: ignore[index]  # find() is Optional: a missing condition fails the test with a TypeError
    assert d.assign is False and d.next_check is None


def test_forgotten_pending_fault_does_not_strike_a_late_target() -> None:
    # The fault was created two days ago; the operator never saw it Pending (it was
    # down); its target appeared only today. The module promises that a forgotten
    # fault must not strike an agent created weeks later.
    d = decide(view(), ["bot"], at(2 * 86400))
    assert d.status["phase"] == FAILED
    assert d.assign is False


# ---------------------------------------------------------------- ended phases


@pytest.mark.parametrize("phase", [EXPIRED, HALTED, ABORTED, FAILED])
def test_ended_phases_are_final(phase: FaultPhase) -> None:
    status: FaultStatus = {"phase": phase, "endedAt": "2024-05-01T10:01:00Z", "conditions": [], "expiresAt": "2024-05-01T10:02:00Z"}
    d = decide(view(status), ["bot"], at(30))
    assert d.status == status
    assert d.events == () and d.assign is False and d.next_check is None


def test_generation_recorded() -> None:
    d = decide(view(generation=4), ["bot"], at(0))
    assert d.status["observedGeneration"] == 4
    assert all(c["observedGeneration"] == 4 for c in d.status["conditions"])


# ---------------------------------------------------------------- invalid spec


def test_invalid_spec_fails_once() -> None:
    d = invalid_spec({}, 2, "spec.duration: 'x' is not a duration", at(5))
    s = d.status
    assert s["phase"] == FAILED
    assert s["endedAt"] == "2024-05-01T10:00:05Z"
    assert s["message"] == "invalid spec: spec.duration: 'x' is not a duration"
    assert s["observedGeneration"] == 2
    assert d.events == (EventSpec("Warning", "InvalidSpec", "spec.duration: 'x' is not a duration"),)
    assert cond(s, "Active") == ("False", "InvalidSpec")
    assert cond(s, "Ready") == ("False", "InvalidSpec")
    assert d.assign is False
    again = invalid_spec(s, 2, "spec.duration: 'x' is not a duration", at(50))
    assert again.events == ()
    assert again.status == s


def test_invalid_spec_stops_an_active_fault() -> None:
    active = decide(view(), ["bot"], at(0)).status
    d = invalid_spec(active, 2, "bad", at(10))
    assert d.status["phase"] == FAILED
    assert d.assign is False
    assert [e.reason for e in d.events] == ["InvalidSpec"]
    assert d.status["startedAt"] == active["startedAt"]


def test_an_ended_fault_still_observes_a_new_generation() -> None:
    status: FaultStatus = {"phase": "Expired", "observedGeneration": 1,
              "conditions": [{"type": "Ready", "status": "True", "reason": "Expired", "message": "", "observedGeneration": 1,
                              "lastTransitionTime": "2024-05-01T10:00:00Z"}]}
    decision = decide(view(status, generation=2), ["bot"], at(3600))
    assert decision.status["phase"] == "Expired" and decision.status["observedGeneration"] == 2
    assert decision.status["conditions"][0]["observedGeneration"] == 2
    assert decision.status["conditions"][0]["lastTransitionTime"] == "2024-05-01T10:00:00Z"
    assert not decision.assign and decision.events == ()


def test_a_failed_fault_is_stalled_for_kstatus() -> None:
    d = decide(view(), [], at(400))
    assert d.status["phase"] == FAILED
    assert cond(d.status, "Stalled") == ("True", "TargetNotFound")
    assert cond(d.status, "Reconciling") == ("False", FAILED)
