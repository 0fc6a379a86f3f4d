"""The ResilienceCheck runner, verdicts and meter as pure logic: time injected, no cluster."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from agentops.api_types import CheckRun, CheckStatus, ExperimentResult, Verdict
from agentops.wire import TelemetryReport
from agentops_operator import check_verdict
from agentops_operator.check_meter import BIN_S, Meter
from agentops_operator.check_io import AgentView, CreateFault, DeleteFault, FaultView, PostEvent, Seen
from agentops_operator.check_runner import CheckRunner, fault_name
from agentops_operator.check_settings import CheckSettings, Expectations, Limits

T0 = datetime(2026, 12, 6, 12, 0, 0, tzinfo=timezone.utc)


def report(requests: int, errors: int = 0, p_ms: str = "100") -> TelemetryReport:
    return {"agent": {"namespace": "ns", "name": "chat"}, "sidecar": "s", "instance": {"id": "i", "restarts": 0},
            "windowSeconds": 1.0, "requests": requests, "errors": {"http5xx": errors},
            "latencyMs": {"buckets": {p_ms: requests}}, "appliedFaults": [],
            "probes": {"ok": 1, "failed": 0, "consecutiveFailures": 0, "lastError": None, "starting": False}}


def spec(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "agent": "chat",
        "steadyState": {"baseline": "10s", "settle": "5s", "timeout": "60s", "minRequests": 5, "maxErrorRate": 0.05},
        "experiments": [
            {"name": "crash", "weight": 3, "fault": {"type": "Crash", "duration": "20s"},
             "expect": {"detectedWithin": "10s", "recoveredWithin": "30s", "maxErrorRate": 0.5}},
            {"name": "slow", "fault": {"type": "Latency", "latency": {"delayMs": 500}, "duration": "10s"},
             "expect": {"maxLatencyP95Ms": 200}},
        ],
    }
    base.update(over)
    return base


class World:
    """Drives a runner through time: the agent's phase, the check's Faults, traffic."""

    def __init__(self, raw: dict[str, Any] | None = None, status: CheckStatus | None = None) -> None:
        self.settings = CheckSettings.from_spec(raw or spec())
        self.runner = CheckRunner("ns", "check", "uid-1", status or CheckStatus())
        self.now = T0
        self.phase = "Healthy"
        self.stalled = False
        self.restarts = 0
        self.faults: dict[str, FaultView] = {}
        self.halted: str | None = None
        self.actions: list[Any] = []

    def tick(self, seconds: float = 1.0, *, requests: int = 10, errors: int = 0, p_ms: str = "100") -> list[Any]:
        self.now += timedelta(seconds=seconds)
        self.runner.meter.add(report(requests, errors, p_ms), self.now.timestamp())
        seen = Seen(now=self.now, agent=AgentView(self.phase, self.stalled, self.restarts),  # type: ignore[arg-type]
                    faults=dict(self.faults), halted=self.halted)
        actions = self.runner.step(self.settings, 1, seen)
        self.actions += actions
        return actions

    def until(self, predicate: Any, limit: int = 200, **traffic: Any) -> None:
        for _ in range(limit):
            if predicate():
                return
            self.tick(**traffic)
        raise AssertionError(f"not reached: {self.runner.status}")

    def exp(self, i: int) -> ExperimentResult:
        runs = self.runner.status.get("runs") or [CheckRun(id=0, experiments=[ExperimentResult(name="")] * 2)]
        return runs[0]["experiments"][i]

    def activate(self, name: str) -> None:
        self.faults[name] = FaultView("f-uid", "Active", self.now.isoformat(), None)

    def end(self, name: str, phase: str = "Expired", message: str = "") -> None:
        self.faults[name] = FaultView("f-uid", phase, self.faults[name].started_at, self.now.isoformat(), message)  # type: ignore[arg-type]


def test_a_run_goes_through_its_experiments_and_is_scored() -> None:
    w = World()
    w.tick()
    run = w.runner.status["runs"][0]
    assert run["trigger"] == "Created" and run["phase"] == "Baseline" and w.exp(0)["state"] == "Settling"
    w.until(lambda: w.exp(0).get("state") == "Injecting")
    creates = [a for a in w.actions if isinstance(a, CreateFault)]
    assert creates == [] or len(creates) == 1
    w.tick()
    (create,) = [a for a in w.actions if isinstance(a, CreateFault)]
    assert create.name == fault_name("check", 1, "crash") == "check-1-crash"
    assert create.body["spec"] == {"type": "Crash", "duration": "20s", "target": {"agent": "chat"}}
    assert create.body["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert run["baseline"]["requests"] >= 50 and w.runner.status["runs"][0]["phase"] == "Running"
    w.tick()
    assert [a for a in w.actions if isinstance(a, CreateFault)] == [create]  # never twice
    w.activate("check-1-crash")
    w.tick()
    assert w.exp(0)["state"] == "Observing"
    w.tick(2)
    w.phase, w.restarts = "Unhealthy", 1
    w.tick(requests=10, errors=10)
    w.tick(requests=10, errors=10)
    w.phase = "Healthy"
    w.tick(2)
    w.tick(10)
    w.end("check-1-crash")
    w.tick()
    crash = w.exp(0)
    assert crash["verdict"] == "Resilient", crash
    assert crash["detectionSeconds"] == 4.0 and crash["recoverySeconds"] == 7.0 and crash["restarts"] == 1
    assert DeleteFault("check-1-crash") in w.actions
    assert w.exp(1)["state"] == "Settling"
    w.until(lambda: w.exp(1).get("state") == "Injecting")
    w.tick()
    w.activate("check-1-slow")
    w.tick(p_ms="500")
    w.phase = "Degraded"
    for _ in range(8):
        w.tick(p_ms="500")
    w.end("check-1-slow")
    w.tick()
    assert w.exp(1)["state"] == "Recovering"
    w.phase = "Healthy"
    w.tick()
    slow = w.exp(1)
    assert slow["verdict"] == "Degraded" and "p95 latency" in slow["findings"][0]
    run = w.runner.status["runs"][0]
    assert run["phase"] == "Completed" and run["score"] == 88  # round(100 x (3 + 0.5) / 4) = 87.5, half up
    assert w.runner.status["summary"] == "1 Resilient, 1 Degraded" and w.runner.status["progress"] == "2/2"
    assert run["passed"] is True and {c["type"]: c["status"] for c in w.runner.status["conditions"]}["Passed"] == "True"
    assert run["series"] and run["series"][0]["offsetSeconds"] >= 0
    assert any(isinstance(a, PostEvent) and a.reason == "RunCompleted" for a in w.actions)


def test_steady_state_never_held_fails_the_run_before_any_fault() -> None:
    w = World()
    w.phase = "Degraded"
    w.until(lambda: (w.runner.status.get("runs") or [CheckRun(id=0)])[0].get("phase") == "Failed", limit=100)
    assert not [a for a in w.actions if isinstance(a, CreateFault)]
    assert w.runner.status["phase"] == "Failed"
    assert {c["type"]: c["status"] for c in w.runner.status["conditions"]}["Stalled"] == "True"
    assert "steady state not met" in w.runner.status["runs"][0]["message"]


def test_too_few_requests_is_no_steady_state() -> None:
    w = World()
    w.tick(requests=0)
    for _ in range(15):
        w.tick(requests=0)
    assert w.exp(0)["state"] == "Settling"
    assert "fewer than 5" in w.runner.status["message"]


def test_the_halt_switch_aborts_and_deletes_the_fault() -> None:
    w = World()
    w.until(lambda: w.exp(0).get("state") == "Injecting")
    w.tick()
    w.activate("check-1-crash")
    w.tick()
    w.halted = "namespace ns is halted"
    w.tick()
    run = w.runner.status["runs"][0]
    assert run["phase"] == "Aborted" and [e["verdict"] for e in run["experiments"]] == ["Aborted", "Aborted"]
    assert DeleteFault("check-1-crash") in w.actions and "score" not in run


def test_a_restarted_operator_aborts_the_experiment_in_flight_and_goes_on() -> None:
    w = World()
    w.until(lambda: w.exp(0).get("state") == "Injecting")
    w.tick()
    w.activate("check-1-crash")
    w.tick()
    assert w.exp(0)["state"] == "Observing"
    # A new process: the same status, no memory.
    w.runner = CheckRunner("ns", "check", "uid-1", w.runner.status)
    actions = w.tick()
    assert w.exp(0)["verdict"] == "Aborted" and "operator restarted" in w.exp(0)["findings"][0]
    assert DeleteFault("check-1-crash") in actions and not [a for a in actions if isinstance(a, CreateFault)]
    assert w.exp(1)["state"] == "Settling"


def test_a_check_deleted_mid_experiment_deletes_its_fault() -> None:
    w = World()
    w.until(lambda: w.exp(0).get("state") == "Injecting")
    w.tick()
    actions = w.runner.abort("the ResilienceCheck was deleted", w.now)
    assert DeleteFault("check-1-crash") in actions


def test_another_check_holding_the_agent_keeps_this_one_pending() -> None:
    w = World()
    seen = Seen(now=T0, agent=AgentView("Healthy", False, 0), faults={}, held_by="other")
    w.runner.step(w.settings, 1, seen)
    assert w.runner.status["phase"] == "Pending" and "check other" in w.runner.status["message"]
    assert not w.runner.status.get("runs")


def test_a_new_run_request_starts_another_run_keeping_history() -> None:
    status = CheckStatus(runs=[CheckRun(id=1, phase="Completed")], runRequest="a")
    w = World(status=status)
    seen = Seen(now=T0, agent=AgentView("Healthy", False, 0), faults={}, run_request="a")
    w.runner.step(w.settings, 1, seen)
    assert len(w.runner.status["runs"]) == 1
    w.runner.step(w.settings, 1, Seen(now=T0, agent=AgentView("Healthy", False, 0), faults={}, run_request="b"))
    runs = w.runner.status["runs"]
    assert [r["id"] for r in runs] == [2, 1] and runs[0]["trigger"] == "Requested" and w.runner.status["runRequest"] == "b"


# ------------------------------------------------------------------ verdicts


def result(**over: Any) -> ExperimentResult:
    base: dict[str, Any] = {"name": "e", "faultStartedAt": "2026-12-06T12:00:00Z", "faultEndedAt": "2026-12-06T12:00:20Z",
                            "faultPhase": "Expired", "during": {"requests": 100, "errors": 2, "latencyP95Ms": 90.0}}
    base.update(over)
    return base  # type: ignore[return-value]


@pytest.mark.parametrize(("over", "expect", "verdict", "finding"), [
    ({}, Expectations(), "Resilient", None),
    ({"during": {"requests": 100, "errors": 6}}, Expectations(), "Vulnerable", "error budget spent: 6/100"),
    ({"escalated": True}, Expectations(), "Vulnerable", "healing escalated"),
    ({"escalated": True}, Expectations(allow_escalation=True), "Resilient", None),
    ({"detectedAt": "2026-12-06T12:00:03Z"}, Expectations(), "Vulnerable", "not Healthy again"),
    ({"faultPhase": "Aborted", "faultMessage": "errorRateAbove 0.5 tripped"}, Expectations(), "Vulnerable", "stop condition"),
    ({"detectedAt": "x", "detectionSeconds": 12.0, "recoveredAt": "2026-12-06T12:00:30Z", "recoverySeconds": 30.0},
     Expectations(detected_within_s=10, recovered_within_s=60), "Degraded", "detected after 12.0s"),
    ({"detectedAt": "x", "detectionSeconds": 2.0, "recoveredAt": "2026-12-06T12:03:00Z", "recoverySeconds": 180.0},
     Expectations(), "Vulnerable", "Healthy again only 160.0s after the fault ended"),
    ({}, Expectations(soft=Limits(max_latency_p95_ms=50)), "Degraded", "p95 latency 90ms"),
])
def test_judge(over: dict[str, Any], expect: Expectations, verdict: str, finding: str | None) -> None:
    j = check_verdict.judge(result(**over), expect)
    assert j.verdict == verdict
    if finding is None:
        assert j.findings == ()
    else:
        assert finding in " ".join(j.findings)


def test_score_is_weighted_half_up_and_leaves_aborted_out() -> None:
    def e(verdict: Verdict, weight: int) -> ExperimentResult:
        return ExperimentResult(name="x", verdict=verdict, weight=weight)

    assert check_verdict.score([e("Resilient", 3), e("Degraded", 1), e("Vulnerable", 2)]) == 58  # 350/6 = 58.3
    assert check_verdict.score([e("Resilient", 1), e("Degraded", 1), e("Vulnerable", 2), e("Aborted", 50)]) == 38  # 37.5
    assert check_verdict.score([e("Aborted", 1)]) is None
    assert not check_verdict.passed([e("Vulnerable", 100), e("Resilient", 900)], 90, passing_score=80, fail_on_vulnerable_weight=100)
    assert check_verdict.passed([e("Vulnerable", 1), e("Resilient", 9)], 90, passing_score=80, fail_on_vulnerable_weight=2)


def test_the_meter_sums_fixed_windows_and_bounds_the_series() -> None:
    m = Meter()
    start = T0.timestamp()
    for s in range(0, 3000):
        m.add(report(2, 1 if s % 2 else 0), start + s)
    w = m.window(start, start + 100)
    assert w["requests"] == 200 and w["errors"] == 50 and w["errorRate"] == 0.25
    series = m.series(start - BIN_S, start + 3000)
    assert 200 <= len(series) <= 240 and sum(p["requests"] for p in series) == 6000


def test_a_schedule_runs_at_its_times_and_keeps_the_last_runs() -> None:
    w = World(spec(schedule="*/10 * * * *", historyLimit=2,
                   experiments=[{"name": "crash", "fault": {"type": "Crash", "duration": "1s"}}]))
    w.tick()
    assert not w.runner.status.get("runs") and w.runner.status["phase"] == "Scheduled"
    assert w.runner.status["nextRunAt"] == "2026-12-06T12:10:00Z"  # T0 is 12:00:00; the first tick is 12:00:01
    for expected_id in (1, 2, 3):
        due = datetime.fromisoformat(w.runner.status["nextRunAt"].replace("Z", "+00:00"))
        w.tick((due - w.now).total_seconds())
        run = w.runner.status["runs"][0]
        assert run["id"] == expected_id and run["trigger"] == "Schedule"
        # Run it through: settle, inject, the fault active and over, the agent untouched.
        w.until(lambda: w.exp(0).get("state") == "Injecting")
        w.tick()
        w.activate(f"check-{expected_id}-crash")
        w.tick()
        w.end(f"check-{expected_id}-crash")
        w.tick()
        assert run["phase"] == "Completed" and w.exp(0)["verdict"] == "Resilient"
    assert [r["id"] for r in w.runner.status["runs"]] == [3, 2]
    assert w.runner.status["nextRunAt"] == "2026-12-06T12:40:00Z"


def test_a_suspended_schedule_starts_nothing() -> None:
    w = World(spec(schedule="@hourly", suspend=True))
    for _ in range(5):
        w.tick(3600)
    assert not w.runner.status.get("runs") and "nextRunAt" not in w.runner.status


def test_a_stalled_left_over_from_before_the_fault_is_not_this_experiments_escalation() -> None:
    w = World(spec(experiments=[{"name": "crash", "fault": {"type": "Crash", "duration": "5s"}}]))
    w.stalled = True  # healing gave up on an earlier fault and has not cleared
    w.until(lambda: w.exp(0).get("state") == "Injecting")
    w.tick()
    w.activate("check-1-crash")
    w.tick()
    w.tick()
    assert "escalated" not in w.exp(0)
    w.stalled = False
    w.tick()
    w.stalled = True  # escalated again, during this experiment
    w.tick()
    assert w.exp(0)["escalated"] is True
