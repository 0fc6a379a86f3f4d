"""The healing loop's decisions, with the time passed in: no I/O, no sleeps."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from agentops.api_types import Incident
from agentops_operator import healing_decision as hd, healing_policy as hp, healing_state as hs
from agentops_operator.resources import HealingPolicy
from agentops_operator.runtimes import RestartOutcome

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=timezone.utc)
POLICY = HealingPolicy(unhealthy_for_s=10, verify_timeout_s=30, max_restarts=3, budget_window_s=600,
                       backoff_initial_s=20, backoff_max_s=60)


def obs(phase: str = "Unhealthy", instances: tuple[str, ...] = ("i-1",), faults: tuple[str, ...] = ()) -> hd.Observation:
    return hd.Observation(phase, "ProbeFailing" if phase == "Unhealthy" else "WithinThresholds", "probe failing", instances, faults, None)


class Agent:
    """One agent's healing state carried across steps, as the reconciler does."""

    def __init__(self, policy: HealingPolicy = POLICY, runtime: str = "Kubernetes") -> None:
        self.state = hs.HealingState()
        self.incidents: list[Incident] = []
        self.policy, self.runtime = policy, runtime
        self.last: hd.HealingDecision | None = None

    def step(self, at: float, o: hd.Observation, **kwargs: Any) -> hd.HealingDecision:
        kwargs.setdefault("slot_free", True)
        d = hp.step(self.state, self.incidents, policy=self.policy, runtime_type=self.runtime, runtime_name="Deployment bot",
                    obs=o, now=T0 + timedelta(seconds=at), **kwargs)
        self.state, self.incidents, self.last = d.state, d.incidents, d
        return d

    def restart_now(self, at: float, instance: str = "i-1") -> hd.Restart:
        d = self.step(at, obs(instances=(instance,)))
        assert d.restart is not None, self.state
        return d.restart

    def answer(self, at: float, outcome: RestartOutcome, o: hd.Observation | None = None) -> hd.HealingDecision:
        return self.step(at, o or obs(), outcome=outcome)


OK = RestartOutcome.done("rolled")


def test_waits_unhealthy_for_before_the_first_restart() -> None:
    a = Agent()
    d = a.step(0, obs())
    assert d.restart is None and a.state.state == hs.WAITING
    assert d.next_check == T0 + timedelta(seconds=10)
    assert a.incidents[-1]["state"] == "Open" and a.incidents[-1]["trigger"] == "Unhealthy"
    assert a.step(9.9, obs()).restart is None
    d = a.step(10, obs())
    assert d.restart is not None and a.state.state == hs.RESTARTING
    assert a.state.restarts == (T0 + timedelta(seconds=10),)
    assert [e.reason for e in d.events] == ["RestartStarted"]
    assert a.incidents[-1]["actions"][-1]["result"] == "Pending"


def test_a_break_in_unhealthiness_restarts_the_wait() -> None:
    a = Agent()
    a.step(0, obs())
    a.step(5, obs("Degraded"))
    assert a.state.unhealthy_since is None and a.state.state == hs.IDLE
    a.step(6, obs())
    assert a.step(15, obs()).restart is None  # only 9 s since it became Unhealthy again
    assert a.step(16, obs()).restart is not None


def test_silence_neither_starts_nor_breaks_the_streak() -> None:
    a = Agent()
    a.step(0, obs())
    a.step(5, obs("Unknown"))
    assert a.state.unhealthy_since == T0
    assert a.step(10, obs()).restart is not None


def test_exactly_one_restart_per_decision_while_it_runs() -> None:
    a = Agent()
    a.step(0, obs())
    a.restart_now(10)
    for t in (11, 12, 30):  # the runtime has not answered: nothing new happens
        assert a.step(t, obs()).restart is None
    assert len(a.state.restarts) == 1


def test_a_new_healthy_instance_verifies_the_restart() -> None:
    a = Agent()
    a.step(0, obs())
    a.restart_now(10, instance="i-1")
    d = a.answer(11, OK)
    assert a.state.state == hs.VERIFYING and d.next_check == T0 + timedelta(seconds=41)
    a.step(12, obs("Healthy", instances=("i-1",)))  # the old instance is not proof
    assert a.state.state == hs.VERIFYING
    d = a.step(13, obs("Healthy", instances=("i-2",)))
    assert a.state.state == hs.IDLE and d.restart_result == "Verified" and d.incident_ended == "Healed"
    assert a.incidents[-1]["state"] == "Healed" and a.incidents[-1]["actions"][-1]["result"] == "Verified"
    assert [e.reason for e in d.events] == ["AgentHealed"]


def test_a_restart_not_verified_backs_off_then_escalates_when_the_budget_is_spent() -> None:
    a = Agent()
    a.step(0, obs())
    starts = [a.restart_now(10)]
    a.answer(10, OK)
    # verifyTimeout 30 s passed, still Unhealthy, no new instance; the backoff (last
    # restart + 20 s) has already elapsed, so the next restart follows in the same step.
    d = a.step(40, obs())
    assert d.restart_result == "NotVerified" and d.restart is not None
    starts.append(d.restart)
    a.answer(40, OK)
    a.step(70, obs())
    assert a.state.state == hs.BACKOFF and a.state.next_restart == T0 + timedelta(seconds=80)  # 2 × 20 s
    assert a.step(79, obs()).restart is None
    starts.append(a.restart_now(80))
    a.answer(80, OK)
    d = a.step(110, obs())
    assert a.state.state == hs.STALLED and a.state.stalled_reason == "RestartBudgetExhausted"
    assert d.escalated == "RestartBudgetExhausted" and "HealingEscalated" in [e.reason for e in d.events]
    assert a.incidents[-1]["state"] == "Escalated" and len(a.incidents[-1]["actions"]) == 3
    assert len({r.token for r in starts}) == 3
    for t in (200, 400, 5000):  # stays stalled, even after the budget window has rolled on
        assert a.step(t, obs()).restart is None and a.state.state == hs.STALLED


def test_a_flapping_agent_is_held_to_its_backoff_and_budget() -> None:
    a = Agent(HealingPolicy(unhealthy_for_s=1, verify_timeout_s=30, max_restarts=3, budget_window_s=600,
                            backoff_initial_s=20, backoff_max_s=60))
    restarts: list[float] = []
    t = 0.0
    instance = 0
    while t < 600:
        d = a.step(t, obs(instances=(f"i-{instance}",)))
        if d.restart is not None:
            restarts.append(t)
            a.answer(t, OK)
            instance += 1
            a.step(t + 1, obs("Healthy", instances=(f"i-{instance}",)))  # healed ... and sick again
        t += 1
    assert len(restarts) == 3  # the budget
    gaps = [b - a_ for a_, b in zip(restarts, restarts[1:])]
    assert gaps[0] >= 20 and gaps[1] >= 40  # the backoff doubles
    assert a.state.state == hs.STALLED


def test_restarts_outside_the_budget_window_do_not_count() -> None:
    a = Agent()
    old = T0 - timedelta(seconds=601)
    a.state = hs.HealingState(restarts=(old, old, old))
    a.step(0, obs())
    assert a.step(10, obs()).restart is not None
    assert len(a.state.restarts) == 1


def test_a_runtime_that_says_never_escalates_at_once() -> None:
    a = Agent()
    a.step(0, obs())
    a.restart_now(10)
    d = a.answer(11, RestartOutcome.failed("DeploymentNotFound", "Deployment x does not exist", retryable=False))
    assert a.state.state == hs.STALLED and a.state.stalled_reason == "DeploymentNotFound"
    assert d.restart_result == "DeploymentNotFound" and d.escalated == "DeploymentNotFound"
    assert {"RestartFailed", "HealingEscalated"} <= {e.reason for e in d.events}


def test_a_retryable_runtime_failure_backs_off() -> None:
    a = Agent()
    a.step(0, obs())
    a.restart_now(10)
    a.answer(11, RestartOutcome.failed("CloudRunOperationTimeout", "timed out", retryable=True))
    assert a.state.state == hs.BACKOFF and a.state.next_restart == T0 + timedelta(seconds=30)


def test_no_free_slot_queues_the_restart() -> None:
    a = Agent()
    a.step(0, obs())
    d = a.step(10, obs(), slot_free=False)
    assert d.restart is None and a.state.state == hs.QUEUED and not a.state.restarts
    assert a.step(12, obs(), slot_free=True).restart is not None


def test_runtime_none_only_observes_and_records() -> None:
    a = Agent(runtime="None")
    a.step(0, obs())
    assert a.step(100, obs()).restart is None and a.state.state == hs.OBSERVE_ONLY
    d = a.step(101, obs("Healthy"))
    assert d.incident_ended == "Observed" and a.state.state == hs.IDLE


def test_disabled_healing_does_not_restart() -> None:
    a = Agent(HealingPolicy(enabled=False))
    a.step(0, obs())
    assert a.step(1000, obs()).restart is None and a.state.state == hs.DISABLED


def test_recovering_on_its_own_ends_the_incident_as_recovered() -> None:
    a = Agent()
    a.step(0, obs())
    d = a.step(5, obs("Healthy"))
    assert d.incident_ended == "Recovered" and a.incidents[-1]["state"] == "Recovered"


def test_manual_recover_halts_faults_and_restarts_once_past_the_budget() -> None:
    a = Agent()
    a.state = hs.HealingState(state=hs.STALLED, stalled_reason="RestartBudgetExhausted", restarts=(T0, T0, T0))
    d = a.step(1, obs("Unhealthy"), recover_annotation="1")
    assert d.halt_faults and d.restart is not None and d.restart.trigger == "ManualRecover"
    assert a.incidents[-1]["trigger"] == "ManualRecover"
    assert len(a.state.restarts) == 3  # a human's restart does not spend the automatic budget
    a.answer(2, OK, obs(instances=("i-1",)))
    d = a.step(3, obs("Healthy", instances=("i-2",)), recover_annotation="1")
    assert d.restart is None and d.incident_ended == "Healed" and a.state.handled_recover == "1"


def test_manual_restart_waits_for_a_slot_and_runs_once_per_value() -> None:
    a = Agent()
    d = a.step(0, obs("Healthy"), restart_annotation="a", slot_free=False)
    assert d.restart is None and a.state.state == hs.QUEUED and a.state.pending_request == "ManualRestart"
    d = a.step(1, obs("Healthy"), restart_annotation="a")
    assert d.restart is not None and d.restart.trigger == "ManualRestart"
    a.answer(2, OK, obs("Healthy"))
    a.step(3, obs("Healthy", instances=("i-9",)), restart_annotation="a")
    assert a.step(4, obs("Healthy"), restart_annotation="a").restart is None


def test_a_stalled_agent_that_recovers_resumes_healing() -> None:
    a = Agent()
    a.state = hs.HealingState(state=hs.STALLED, stalled_reason="RestartBudgetExhausted")
    d = a.step(0, obs("Healthy"))
    assert a.state.state == hs.IDLE and "HealingResumed" in [e.reason for e in d.events]


def test_a_spec_change_lifts_the_escalation() -> None:
    a = Agent()
    a.state = hs.HealingState(state=hs.STALLED, stalled_reason="DeploymentNotFound", unhealthy_since=T0)
    d = a.step(20, obs(), spec_changed=True)
    assert d.restart is not None


def test_conditions_follow_the_state() -> None:
    busy = {c.type: c for c in hs.conditions(hs.HealingState(state=hs.VERIFYING, message="waiting"))}
    assert busy["Reconciling"].status == "True" and busy["Reconciling"].reason == "Verifying"
    assert busy["Stalled"].status == "False"
    stalled = {c.type: c for c in hs.conditions(hs.HealingState(state=hs.STALLED, stalled_reason="RestartBudgetExhausted"))}
    assert stalled["Stalled"].status == "True" and stalled["Stalled"].reason == "RestartBudgetExhausted"
    assert stalled["Reconciling"].status == "False"


def test_state_survives_a_round_trip_through_status() -> None:
    a = Agent()
    a.step(0, obs())
    a.restart_now(10)
    a.answer(11, OK)
    again = hs.HealingState.from_status(a.state.to_status())
    assert again == a.state


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [hp.backoff_s(POLICY, n) for n in range(5)] == [0, 20, 40, 60, 60]


def test_healthy_on_probes_alone_verifies_only_at_the_deadline() -> None:
    a = Agent()
    a.step(0, obs())
    a.restart_now(10, instance="i-1")
    a.answer(11, OK)
    quiet = hd.Observation("Healthy", "WithinThresholds", "", ("i-2",), (), None, judged=False)
    a.step(12, quiet)
    assert a.state.state == hs.VERIFYING  # a handful of requests proves little yet
    d = a.step(41, quiet)
    assert d.restart_result == "Verified" and a.state.state == hs.IDLE


# ---------------------------------------------------------------- a runaway agent (TokenBurn)


def burning() -> hd.Observation:
    return hd.Observation("Unhealthy", "TokenBurn", "burning 90,000 tokens/min ≥ 50,000", ("i-1",), (), None)


def test_token_burn_with_scale_to_zero_stops_the_agent_and_escalates() -> None:
    a = Agent(HealingPolicy(unhealthy_for_s=10, on_token_burn="ScaleToZero"))
    assert a.step(0, burning()).restart is None  # unhealthyFor holds for a runaway too
    d = a.step(10, burning(), slot_free=False)  # no restart slot needed to stop spending
    assert d.restart == hd.Restart(d.restart.token if d.restart else "", "TokenBurn", "ScaleToZero")
    assert (a.state.state, a.state.action, a.state.restarts) == (hs.RESTARTING, "ScaleToZero", ())  # no budget spent
    assert a.incidents[-1]["actions"][-1]["type"] == "ScaleToZero"
    assert [e.reason for e in d.events] == ["ScaleToZeroStarted"]
    # The persisted state says what is in flight, so an operator restart resumes it as such.
    assert hs.HealingState.from_status(a.state.to_status()) == a.state
    d = a.answer(11, RestartOutcome.done("scaled Deployment ns/bot to zero replicas"), burning())
    assert (a.state.state, a.state.stalled_reason, a.state.action) == (hs.STALLED, "TokenBurn", None)
    assert d.escalated == "TokenBurn" and d.restart_result is None
    assert a.incidents[-1]["state"] == "Escalated" and a.incidents[-1]["actions"][-1]["result"] == "ScaledToZero"
    assert "scale it up again" in a.state.message
    assert a.step(100, burning()).restart is None  # stays stopped until a human acts


def test_token_burn_scale_to_zero_failure_escalates_with_its_reason() -> None:
    a = Agent(HealingPolicy(unhealthy_for_s=0, on_token_burn="ScaleToZero"))
    a.step(0, burning())
    a.answer(1, RestartOutcome.failed("DeploymentForbidden", "may not patch", retryable=False), burning())
    assert (a.state.state, a.state.stalled_reason) == (hs.STALLED, "DeploymentForbidden")


def test_token_burn_on_a_runtime_that_cannot_scale_to_zero_escalates_at_once() -> None:
    a = Agent(HealingPolicy(unhealthy_for_s=0, on_token_burn="ScaleToZero"), runtime="CloudRun")
    d = a.step(0, burning())
    assert d.restart is None and (a.state.state, a.state.stalled_reason) == (hs.STALLED, "ScaleToZeroUnsupported")


def test_token_burn_with_restart_is_an_ordinary_restart() -> None:
    a = Agent(HealingPolicy(unhealthy_for_s=0))
    d = a.step(0, burning())
    assert d.restart is not None and d.restart.action == "Restart" and a.state.restarts == (T0,)
