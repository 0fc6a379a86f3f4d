"""The healing loop's decisions: when to restart an agent, and when to stop trying.

A careful human restarts a sick service only when it has been sick for a while, not
again and again in a hurry, checks that the restart helped, and calls for help when it
did not. So, per agent:

    Idle ──Unhealthy──▶ Waiting ──unhealthyFor──▶ (Backoff) ──▶ (Queued) ──▶ Restarting
      ▲                                                                          │
      │ Healthy from a new instance (Healed)                            runtime answered
      └───────────────────────────── Verifying ◀──────────────────────────────────┘
                                         │ verifyTimeout passed, or the runtime refused
                                         ▼
                   budget left: Backoff → next restart;  else: Stalled (escalated)

* **Budget**: at most `maxRestarts` automatic restarts in any rolling `window`; the
  ledger of restart times is kept in status, so a restarted operator cannot forget it.
* **Backoff**: before the n-th restart in the window, `initial · 2^(n-2)` capped at
  `max` since the previous one — a flapping agent (restart helps, then it falls over
  again) slows down instead of cycling.
* **Verification**: a restart counts only when a *new* instance reports Healthy within
  `verifyTimeout`; the old instance recovering on its own is not proof.
* **Escalation** (`Stalled=True`): budget spent, a restart not verified with no budget
  left, or a runtime that answers "never" (403, 404, no credentials). No automatic
  restart follows until the agent is Healthy again, its spec changes, or a human asks
  (the recover/restart annotations, which bypass the budget and the backoff).
* The cluster-wide concurrency limit is the caller's (`slot_free`): a restart that
  would exceed it waits in Queued.
* **A runaway agent** (Unhealthy for TokenBurn) with `onTokenBurn: ScaleToZero` is not
  restarted: after `unhealthyFor` its Deployment is scaled to zero and healing
  escalates at once — spending more on restarts is not a cure for a spending loop.

The state it reads and writes is in `healing_state`; what goes in and comes out (and the
draft a step fills) in `healing_decision`.

Pure: the state and the time come in, the new state and what to do come out.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from agentops.backoff import Backoff
from agentops.times import format_time
from agentops.api_types import Incident, RestartRequestKind

from agentops_operator import incidents as inc
from agentops_operator.health import HEALTHY, UNHEALTHY
from agentops_operator.healing_decision import DecisionDraft, HealingDecision, Observation, Restart
from agentops_operator.healing_state import (
    BACKOFF, DISABLED, HOLDS_SLOT, IDLE, MANUAL_RECOVER, MANUAL_RESTART, OBSERVE_ONLY, QUEUED, RESTARTING, STALLED,
    VERIFYING, WAITING, HealingState,
)
from agentops_operator.resources import HealingPolicy
from agentops_operator.runtimes import RestartOutcome

MAX_LEDGER = 100  # the budget allows at most 100 restarts per window
TOKEN_BURN = "TokenBurn"  # the health reason of a runaway agent (model_health)


def _ledger(state: HealingState, policy: HealingPolicy, now: datetime) -> tuple[datetime, ...]:
    horizon = now - timedelta(seconds=policy.budget_window_s)
    return tuple(t for t in state.restarts if t > horizon)[-MAX_LEDGER:]


def backoff_s(policy: HealingPolicy, restarts_in_window: int) -> float:
    """Wait before the next restart after `restarts_in_window` ones: 0, initial, 2·initial, … ≤ max."""
    if restarts_in_window <= 0 or min(policy.backoff_initial_s, policy.backoff_max_s) <= 0:
        return 0.0
    # No jitter: the next restart time is shown in status and must be what happens.
    return Backoff(min(policy.backoff_initial_s, policy.backoff_max_s), policy.backoff_max_s).ceiling(restarts_in_window)


def step(
    state: HealingState,
    incidents: list[Incident],
    *,
    policy: HealingPolicy,
    runtime_type: str,
    runtime_name: str,
    obs: Observation,
    now: datetime,
    slot_free: bool,
    outcome: RestartOutcome | None = None,
    restart_annotation: str | None = None,
    recover_annotation: str | None = None,
    spec_changed: bool = False,
) -> HealingDecision:
    """One decision for one agent. `outcome` is the runtime's answer to the restart in
    flight (state Restarting), delivered once."""
    s = DecisionDraft(state, list(incidents), now)
    s.set(restarts=_ledger(state, policy, now))

    # --- the runtime answered the restart in flight
    if s.state.state == RESTARTING:
        if outcome is None:
            return s.freeze()  # still running; the answer wakes us
        _runtime_answered(s, policy, outcome, runtime_name)

    # --- manual requests (level-based: a new annotation value is a new request)
    if recover_annotation and recover_annotation != s.state.handled_recover:
        s.set(handled_recover=recover_annotation, pending_request=MANUAL_RECOVER)
        s.halt_faults = True
        _note_manual(s, obs, MANUAL_RECOVER, f"recover requested (agentops.dev/recover={recover_annotation}): active faults halted, restarting once")
    if restart_annotation and restart_annotation != s.state.handled_restart:
        s.set(handled_restart=restart_annotation)
        if s.state.pending_request is None:
            s.set(pending_request=MANUAL_RESTART)
            _note_manual(s, obs, MANUAL_RESTART, f"restart requested (agentops.dev/restart={restart_annotation})")

    if spec_changed and s.state.state == STALLED:
        s.set(state=IDLE, stalled_reason=None, message="spec changed; healing resumes")
        s.event("Normal", "HealingResumed", "the Agent's spec changed; automatic restarts resume")

    # --- health bookkeeping
    if obs.phase == UNHEALTHY:
        if s.state.unhealthy_since is None:
            s.set(unhealthy_since=now)
    elif obs.phase != "Unknown":  # silence neither starts nor breaks an unhealthy streak
        s.set(unhealthy_since=None)

    if s.state.state == VERIFYING:
        _verify(s, policy, obs, runtime_name)

    if s.state.state in HOLDS_SLOT:
        return s.freeze()

    if s.state.pending_request is not None:
        _manual_restart(s, obs, runtime_type, runtime_name, slot_free)
        return s.freeze()

    if obs.phase == HEALTHY:
        _healthy(s)
        return s.freeze()

    if obs.phase != UNHEALTHY:
        if s.state.state in (WAITING, BACKOFF, QUEUED):
            s.set(state=IDLE, next_restart=None, message=f"agent is {obs.phase}, not Unhealthy; no restart due")
        return s.freeze()

    # --- Unhealthy and no restart in progress
    if inc.current(s.incidents) is None and s.state.state != STALLED:
        s.open_incident("Unhealthy", obs.reason, obs.message, obs)
    if s.state.state == STALLED:
        return s.freeze()
    if runtime_type == "None":
        s.set(state=OBSERVE_ONLY, message="spec.runtime.type is None: the operator observes and never restarts")
        return s.freeze()
    if not policy.enabled:
        s.set(state=DISABLED, message="spec.healing.enabled is false: no automatic restart")
        return s.freeze()

    assert s.state.unhealthy_since is not None
    due = s.state.unhealthy_since + timedelta(seconds=policy.unhealthy_for_s)
    if now < due:
        s.set(state=WAITING, message=f"Unhealthy ({obs.reason}) since {format_time(s.state.unhealthy_since)}; restart at {format_time(due)} if it lasts")
        s.check_at(due)
        return s.freeze()

    if obs.reason == TOKEN_BURN and policy.on_token_burn == "ScaleToZero":
        _scale_to_zero(s, obs, runtime_type, runtime_name)
        return s.freeze()

    used = len(s.state.restarts)
    if used >= policy.max_restarts:
        _escalate(s, "RestartBudgetExhausted",
                  f"{used} restarts within {policy.budget_window_s:g}s (budget {policy.max_restarts}) did not make the agent healthy; "
                  f"no further automatic restart until it is Healthy, its spec changes or agentops.dev/recover is set")
        return s.freeze()

    if used:
        not_before = s.state.restarts[-1] + timedelta(seconds=backoff_s(policy, used))
        if now < not_before:
            s.set(state=BACKOFF, next_restart=not_before,
                  message=f"backing off: restart {used + 1} of {policy.max_restarts} not before {format_time(not_before)}")
            s.check_at(not_before)
            return s.freeze()

    if not slot_free:
        s.set(state=QUEUED, message="waiting for a free slot under the cluster-wide restart limit (--max-concurrent-restarts)")
        return s.freeze()

    unhealthy_for = (now - s.state.unhealthy_since).total_seconds()
    _begin_restart(s, obs, "Unhealthy", runtime_name,
                   f"Unhealthy ({obs.reason}) for {unhealthy_for:.0f}s; restart {used + 1} of {policy.max_restarts} within {policy.budget_window_s:g}s",
                   automatic=True)
    return s.freeze()


def _note_manual(s: DecisionDraft, obs: Observation, trigger: RestartRequestKind, message: str) -> None:
    if inc.current(s.incidents) is None:
        s.open_incident(trigger, trigger, message, obs)
    if s.state.state == STALLED:
        s.set(state=IDLE, stalled_reason=None)


def _manual_restart(s: DecisionDraft, obs: Observation, runtime_type: str, runtime_name: str, slot_free: bool) -> None:
    trigger = s.state.pending_request or MANUAL_RESTART
    if runtime_type == "None":
        s.set(pending_request=None, state=OBSERVE_ONLY, message="a restart was requested, but spec.runtime.type is None: nothing to restart")
        s.event("Warning", "RestartImpossible", "restart requested, but spec.runtime.type is None; nothing was restarted")
        s.end_incident(inc.OBSERVED, "restart requested, but spec.runtime.type is None: nothing to restart")
        return
    if not slot_free:
        s.set(state=QUEUED, message=f"{trigger}: waiting for a free slot under the cluster-wide restart limit")
        return
    s.set(pending_request=None)
    _begin_restart(s, obs, trigger, runtime_name, f"{trigger}: restarting {runtime_name}", automatic=False)


def _begin_restart(s: DecisionDraft, obs: Observation, trigger: str, runtime_name: str, why: str, *, automatic: bool) -> None:
    incident = inc.current(s.incidents)
    attempt = len(incident.get("actions", ())) + 1 if incident is not None else 1
    token = f"inc-{s.state.incident_seq}-{attempt}-{int(s.now.timestamp())}"
    s.set(state=RESTARTING, action=None, restart_token=token, instances_before=obs.instances, next_restart=None, verify_deadline=None,
          restarts=(s.state.restarts + (s.now,))[-MAX_LEDGER:] if automatic else s.state.restarts,
          message=f"restarting {runtime_name}: {why}")
    s.incidents = inc.add_action(s.incidents, started_at=s.stamp, message=why)
    s.restart = Restart(token, trigger)
    s.event("Normal", "RestartStarted", f"restarting {runtime_name}: {why}")


def _scale_to_zero(s: DecisionDraft, obs: Observation, runtime_type: str, runtime_name: str) -> None:
    """Stop a runaway agent's spend (spec.healing.onTokenBurn: ScaleToZero), then leave it to a human.

    No restart slot is waited for: the cluster-wide limit guards capacity against a
    restart storm, and scaling down frees capacity rather than taking it."""
    why = f"Unhealthy (TokenBurn): {obs.message}"
    if runtime_type != "Kubernetes":
        _escalate(s, "ScaleToZeroUnsupported",
                  f"{why}; spec.healing.onTokenBurn is ScaleToZero, but {runtime_name} cannot be scaled to zero by the "
                  f"operator (runtime Kubernetes only): stop it by hand")
        return
    token = f"stop-{s.state.incident_seq}-{int(s.now.timestamp())}"
    s.set(state=RESTARTING, action="ScaleToZero", restart_token=token, next_restart=None, verify_deadline=None,
          message=f"scaling {runtime_name} to zero replicas: {why}")
    s.incidents = inc.add_action(s.incidents, started_at=s.stamp, message=why, kind="ScaleToZero")
    s.restart = Restart(token, TOKEN_BURN, "ScaleToZero")
    s.event("Warning", "ScaleToZeroStarted", f"scaling {runtime_name} to zero replicas: {why}")


def _scaled_to_zero(s: DecisionDraft, outcome: RestartOutcome, runtime_name: str) -> None:
    s.set(action=None)
    if outcome.ok:
        s.incidents = inc.finish_action(s.incidents, finished_at=s.stamp, result="ScaledToZero", message=outcome.message)
        _escalate(s, TOKEN_BURN, f"{outcome.message} to stop its token burn; scale it up again once the cause is fixed "
                                 f"(automatic healing resumes when it is Healthy)")
        return
    s.incidents = inc.finish_action(s.incidents, finished_at=s.stamp, result=outcome.reason, message=outcome.message)
    _escalate(s, outcome.reason, f"scaling {runtime_name} to zero to stop its token burn failed: {outcome.message}")


def _runtime_answered(s: DecisionDraft, policy: HealingPolicy, outcome: RestartOutcome, runtime_name: str) -> None:
    if s.state.action == "ScaleToZero":
        _scaled_to_zero(s, outcome, runtime_name)
        return
    if outcome.ok:
        deadline = s.now + timedelta(seconds=policy.verify_timeout_s)
        s.set(state=VERIFYING, verify_deadline=deadline,
              message=f"{outcome.message}; waiting until {format_time(deadline)} for a Healthy report from a new instance")
        s.check_at(deadline)
        return
    s.restart_result = outcome.reason
    s.incidents = inc.finish_action(s.incidents, finished_at=s.stamp, result=outcome.reason, message=outcome.message)
    s.event("Warning", "RestartFailed", f"restarting {runtime_name} failed ({outcome.reason}): {outcome.message}")
    if not outcome.retryable:
        _escalate(s, outcome.reason, outcome.message)
    else:
        _after_failed_attempt(s, policy, f"restart failed ({outcome.reason})")


def _verify(s: DecisionDraft, policy: HealingPolicy, obs: Observation, runtime_name: str) -> None:
    fresh = [i for i in obs.instances if i not in s.state.instances_before]
    assert s.state.verify_deadline is not None
    at_deadline = s.now >= s.state.verify_deadline
    # Healthy on real traffic verifies at once; healthy on probes alone (too little
    # traffic to judge) only when the deadline comes and nothing contradicted it.
    if obs.phase == HEALTHY and (fresh or not s.state.instances_before) and (obs.judged or at_deadline):
        who = f"new instance {fresh[0]}" if fresh else "the agent"
        s.restart_result = "Verified"
        s.incidents = inc.finish_action(s.incidents, finished_at=s.stamp, result="Verified", message=f"{who} reports Healthy")
        s.end_incident(inc.HEALED)
        s.set(state=IDLE, verify_deadline=None, instances_before=(), unhealthy_since=None,
              message=f"restart of {runtime_name} verified: {who} reports Healthy")
        s.event("Normal", "AgentHealed", f"restart of {runtime_name} verified: {who} reports Healthy")
        return
    if not at_deadline:
        s.check_at(s.state.verify_deadline)
        return
    missing = "no new instance reported" if not fresh else f"new instance {fresh[0]} is {obs.phase}"
    message = f"not verified within {policy.verify_timeout_s:g}s: {missing}"
    s.restart_result = "NotVerified"
    s.incidents = inc.finish_action(s.incidents, finished_at=s.stamp, result="NotVerified", message=message)
    s.event("Warning", "RestartNotVerified", f"restart of {runtime_name} {message}")
    s.set(verify_deadline=None, instances_before=())
    if obs.phase == HEALTHY:
        # Healthy, but not visibly thanks to the restart (the old instance recovered).
        s.end_incident(inc.RECOVERED)
        s.set(state=IDLE, unhealthy_since=None, message=f"agent is Healthy; the restart was {message}")
        return
    _after_failed_attempt(s, policy, f"restart {message}")


def _after_failed_attempt(s: DecisionDraft, policy: HealingPolicy, what: str) -> None:
    used = len(s.state.restarts)
    if used >= policy.max_restarts:
        _escalate(s, "RestartBudgetExhausted", f"{what}, and the budget of {policy.max_restarts} restarts per {policy.budget_window_s:g}s is spent")
        return
    not_before = (s.state.restarts[-1] if s.state.restarts else s.now) + timedelta(seconds=backoff_s(policy, used))
    not_before = max(not_before, s.now)
    s.set(state=BACKOFF, next_restart=not_before, message=f"{what}; next restart not before {format_time(not_before)}")
    s.check_at(not_before)


def _escalate(s: DecisionDraft, reason: str, message: str) -> None:
    s.set(state=STALLED, stalled_reason=reason, next_restart=None, verify_deadline=None, pending_request=None, message=message)
    s.escalated = reason
    s.end_incident(inc.ESCALATED, message)
    s.event("Warning", "HealingEscalated", f"{reason}: {message}")


def _healthy(s: DecisionDraft) -> None:
    current = inc.current(s.incidents)
    if current is not None:
        s.end_incident(inc.OBSERVED if s.state.state in (OBSERVE_ONLY, DISABLED) else inc.RECOVERED)
    if s.state.state == STALLED:
        s.event("Normal", "HealingResumed", "the agent is Healthy again; automatic restarts resume")
    if s.state.state != IDLE:
        s.set(state=IDLE, stalled_reason=None, next_restart=None, message="agent is Healthy")

