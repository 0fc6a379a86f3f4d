"""agentops_operator.reconciler.Reconciler driven with raw bodies, a fake clock and a fake writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Sequence, overload

import pytest

from agentops.api_types import AgentStatus, FaultStatus
from agentops.wire import TelemetryReport, validate_report
from agentops_operator.metrics import OperatorMetrics
from agentops_operator.reconciler import Reconciler
from agentops_operator.records import Clock, UnknownAgent
from agentops_operator.resources import AGENTS, FAULTS, Key, ObjectRef

NS = "team-a"
T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=timezone.utc)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0  # monotonic seconds; wall = T0 + (t - 1000)

    def mono(self) -> float:
        return self.t

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.t - 1000.0)

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class FakeWriter:
    statuses: list[tuple[ObjectRef, AgentStatus | FaultStatus]] = field(default_factory=list)
    events: list[tuple[ObjectRef, str, str, str]] = field(default_factory=list)
    forgotten: list[tuple[str, Key]] = field(default_factory=list)

    def write_status(self, ref: ObjectRef, status: AgentStatus | FaultStatus) -> None:
        self.statuses.append((ref, status))

    def post_event(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None:
        self.events.append((ref, type_, reason, message))

    def forget(self, plural: str, key: Any) -> None:
        self.forgotten.append((plural, key))

    # --- helpers for assertions
    # An Agent's ref comes with an AgentStatus, a Fault's with a FaultStatus: the
    # overloads state that pairing, which the union in write_status cannot.
    @overload
    def writes_for(self, kind: Literal["Agent"], name: str) -> list[AgentStatus]: ...
    @overload
    def writes_for(self, kind: Literal["Fault"], name: str) -> list[FaultStatus]: ...
    def writes_for(self, kind: str, name: str) -> Sequence[AgentStatus | FaultStatus]:
        return [s for r, s in self.statuses if r.kind == kind and r.key.name == name]

    def reasons(self, kind: str | None = None, name: str | None = None) -> list[str]:
        return [reason for r, _, reason, _ in self.events
                if (kind is None or r.kind == kind) and (name is None or r.key.name == name)]

    def clear(self) -> None:
        self.statuses.clear()
        self.events.clear()
        self.forgotten.clear()


class Env:
    def __init__(self, heartbeat_s: float = 60.0, restarts: Any = None, max_concurrent_restarts: int = 3) -> None:
        self.clock = FakeClock()
        self.writer = FakeWriter()
        self.metrics = OperatorMetrics()
        self.r = Reconciler(self.writer, self.metrics, heartbeat_s=heartbeat_s, restarts=restarts,
                            max_concurrent_restarts=max_concurrent_restarts,
                            clock=Clock(wall=self.clock.wall, mono=self.clock.mono))

    def faults_on(self, name: str) -> list[str]:
        return [f["name"] for f in self.r.board.current(Key(NS, name))[1]]

    def version(self, name: str) -> int:
        return self.r.board.current(Key(NS, name))[0]

    def agent_phase(self, name: str) -> str | None:
        return self.r.agents[Key(NS, name)].status.get("phase")

    def fault_status(self, name: str) -> FaultStatus:
        return self.r.faults[Key(NS, name)].status


def agent(name: str, *, labels: dict[str, str] | None = None, uid: str | None = None, generation: int = 1,
          spec: dict[str, Any] | None = None, status: AgentStatus | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "agentops.dev/v1alpha1", "kind": "Agent",
        "metadata": {"namespace": NS, "name": name, "uid": uid or f"uid-agent-{name}", "generation": generation,
                     "labels": labels or {}, "creationTimestamp": "2024-05-01T09:00:00Z"},
        "spec": spec if spec is not None else {"health": {"heartbeatTimeout": "30s", "window": "60s"}},
    }
    if status is not None:
        body["status"] = status
    return body


def fault(name: str, *, target: str | None = "bot", selector: dict[str, Any] | None = None, duration: str = "5m",
          uid: str | None = None, generation: int = 1, created: str = "2024-05-01T10:00:00Z",
          status: FaultStatus | None = None, delay_ms: int = 2000, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "agentops.dev/v1alpha1", "kind": "Fault",
        "metadata": {"namespace": NS, "name": name, "uid": uid or f"uid-fault-{name}", "generation": generation,
                     "creationTimestamp": created},
        "spec": spec if spec is not None else {
            "type": "Latency", "duration": duration,
            "target": {"selector": selector} if selector is not None else {"agent": target},
            "match": {"percentage": 50}, "latency": {"delayMs": delay_ms},
        },
    }
    if status is not None:
        body["status"] = status
    return body


def report(name: str = "bot", *, requests: int = 50, errors: dict[str, int] | None = None, slow: int = 0,
           sidecar: str = "bot-pod-1", consecutive: int = 0, applied: list[str] | None = None,
           instance: str | None = None) -> TelemetryReport:
    """A 5-second window: `requests` answered in ≤100 ms except `slow` of them at ~8 s."""
    buckets = {"100": requests - slow}
    if slow:
        buckets["8000"] = slow
    return validate_report({
        "agent": {"namespace": NS, "name": name}, "sidecar": sidecar,
        "instance": {"id": instance or f"{sidecar}-uid", "restarts": 0}, "windowSeconds": 5.0,
        "requests": requests, "errors": errors or {}, "latencyMs": {"buckets": buckets},
        "probes": {"ok": 1, "failed": 0, "consecutiveFailures": consecutive, "lastError": None},
        "appliedFaults": applied or [],
    })


@pytest.fixture
def env() -> Env:
    return Env()


# ---------------------------------------------------------------- agents


def test_new_agent_gets_initial_unknown_status(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.process()
    [status] = env.writer.writes_for("Agent", "bot")
    assert status["phase"] == "Unknown"
    assert status["activeFaultCount"] == 0
    assert env.writer.events == []  # no previous phase: no transition event
    # Nothing changed: another pass writes nothing.
    env.clock.advance(1)
    env.r.process()
    assert len(env.writer.statuses) == 1


def test_own_status_echo_does_not_trigger_work(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.process()
    env.writer.clear()
    # The watch sees our write come back (same generation).
    env.r.agent_event("MODIFIED", agent("bot", status={"phase": "Unknown"}))
    env.r.process()
    assert env.writer.statuses == [] and env.writer.events == []


def test_unknown_agent_telemetry_rejected(env: Env) -> None:
    with pytest.raises(UnknownAgent, match="team-a/ghost"):
        env.r.ingest(report("ghost"))
    assert env.r.telemetry.summary(Key(NS, "ghost"), now=env.clock.t, window_s=60) is None


def test_telemetry_moves_phase_and_writes_only_on_meaningful_change() -> None:
    env = Env(heartbeat_s=60.0)
    env.r.agent_event("ADDED", agent("bot"))
    env.r.process()
    assert len(env.writer.statuses) == 1  # the initial write
    for _ in range(50):
        env.clock.advance(1)
        env.r.ingest(report())
        env.r.process()
    # Exactly one more write: Unknown → Healthy. The other 49 only moved metrics.
    writes = env.writer.writes_for("Agent", "bot")
    assert len(writes) == 2
    assert writes[1]["phase"] == "Healthy"
    assert writes[1]["metrics"]["requests"] == 50
    assert env.writer.reasons() == ["AgentHealthy"]
    assert env.writer.events[0][1] == "Normal"
    assert env.writer.events[0][3].startswith("Unknown → Healthy: ")
    # The heartbeat (60 s after the Healthy write at t+1) carries the new metrics.
    for _ in range(10):
        env.clock.advance(1)
        env.r.ingest(report())
        env.r.process()
    assert len(env.writer.writes_for("Agent", "bot")) == 2  # t+60: 59 s since the write, not yet
    env.clock.advance(1)
    env.r.ingest(report())
    env.r.process()
    writes = env.writer.writes_for("Agent", "bot")
    assert len(writes) == 3
    assert writes[2]["phase"] == "Healthy"
    assert writes[2]["metrics"]["requests"] == 50 * 61  # reports at t+1 .. t+61, all within the 60 s window
    assert env.writer.reasons() == ["AgentHealthy"]


def test_heartbeat_write_comes_from_the_deadline_without_new_input() -> None:
    env = Env(heartbeat_s=20.0)
    env.r.agent_event("ADDED", agent("bot"))
    env.r.process()
    env.r.ingest(report())
    env.r.process()  # Healthy write at t0
    env.clock.advance(5)
    env.r.ingest(report())
    env.r.process()  # metrics moved: heartbeat deadline at t0 + 20
    assert len(env.writer.statuses) == 2
    env.clock.advance(14.9)  # t0 + 19.9
    env.r.process()
    assert len(env.writer.statuses) == 2
    env.clock.advance(0.1)  # t0 + 20, no ingest, nothing dirty but the deadline
    env.r.process()
    assert len(env.writer.statuses) == 3
    assert env.writer.statuses[-1][1]["metrics"]["requests"] == 100  # type: ignore[typeddict-item]  # the Agent bot is the only object: its AgentStatus


def test_unhealthy_and_recovery(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.process()
    env.r.ingest(report(requests=100, errors={"http5xx": 40}))
    env.r.process()
    assert env.agent_phase("bot") == "Unhealthy"
    assert env.r.agents[Key(NS, "bot")].status["conditions"][0]["reason"] == "ErrorRateHigh"
    assert env.writer.events[-1][1:3] == ("Warning", "AgentUnhealthy")
    # A 4xx storm does not count; the 5xx leave the window after 60 s.
    env.clock.advance(61)
    env.r.ingest(report(requests=100, errors={"http4xx": 100}))
    env.r.process()
    assert env.agent_phase("bot") == "Healthy"
    assert env.writer.reasons() == ["AgentUnhealthy", "AgentHealthy"]


def test_degraded_by_latency(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot", spec={"health": {"latencyP95Ms": {"degraded": 500, "unhealthy": 100000}}}))
    env.r.process()
    env.r.ingest(report(requests=100, slow=10))
    env.r.process()
    assert env.agent_phase("bot") == "Degraded"
    assert env.writer.events[-1][1:3] == ("Warning", "AgentDegraded")


def test_stale_telemetry_turns_unknown_via_deadline(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.process()
    env.r.ingest(report())
    env.r.process()
    assert env.agent_phase("bot") == "Healthy"
    env.clock.advance(10)
    env.r.ingest(report())
    env.r.process()
    # Last report at +10; heartbeatTimeout is 30 s.
    env.clock.advance(30.0)
    env.r.process()
    assert env.agent_phase("bot") == "Healthy"
    env.clock.advance(0.02)
    env.r.process()
    status = env.r.agents[Key(NS, "bot")].status
    assert status["phase"] == "Unknown"
    fresh = next(c for c in status["conditions"] if c["type"] == "TelemetryFresh")
    assert (fresh["status"], fresh["reason"]) == ("False", "TelemetryStale")
    assert env.writer.reasons() == ["AgentHealthy", "AgentUnknown"]
    assert env.writer.events[-1][1] == "Warning"
    # No further work once stale.
    n = len(env.writer.statuses)
    env.clock.advance(1000)
    env.r.process()
    assert len(env.writer.statuses) == n


def test_agent_spec_change_applies_new_thresholds(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.ingest(report(requests=100, errors={"http5xx": 6}))
    env.r.process()
    assert env.agent_phase("bot") == "Degraded"
    env.r.agent_event("MODIFIED", agent("bot", generation=2, spec={"health": {"errorRate": {"degraded": 0.1, "unhealthy": 0.5}}}))
    env.r.process()
    assert env.agent_phase("bot") == "Healthy"
    assert env.r.agents[Key(NS, "bot")].status["observedGeneration"] == 2


def test_invalid_agent_thresholds_fall_back_to_defaults(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot", spec={"health": {"window": "soon"}}))
    assert env.r.agents[Key(NS, "bot")].thresholds.window_s == 60.0


def test_deleting_agent(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.fault_event("ADDED", fault("slow"))
    env.r.ingest(report())
    env.r.process()
    assert env.faults_on("bot") == ["slow"]
    v = env.version("bot")
    env.writer.clear()
    env.r.agent_event("DELETED", agent("bot"))
    assert Key(NS, "bot") not in env.r.agents
    assert (AGENTS, Key(NS, "bot")) in env.writer.forgotten
    assert env.r.telemetry.summary(Key(NS, "bot"), now=env.clock.t, window_s=60) is None
    assert env.version("bot") != v and env.faults_on("bot") == []
    with pytest.raises(UnknownAgent):
        env.r.ingest(report())
    env.r.process()
    # The fault lost its target.
    assert env.writer.reasons("Fault", "slow") == ["TargetLost"]
    st = env.fault_status("slow")
    assert (st["phase"], st["targets"]) == ("Active", [])
    assert env.r.faults[Key(NS, "slow")].assigned_to == ()
    assert env.writer.writes_for("Agent", "bot") == []
    # Deleting again is harmless.
    env.r.agent_event("DELETED", agent("bot"))


def test_recreated_agent_starts_fresh(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot", uid="u1"))
    env.r.ingest(report())
    env.r.process()
    assert env.agent_phase("bot") == "Healthy"
    env.r.agent_event("ADDED", agent("bot", uid="u2"))  # deletion missed, new object
    assert env.r.agents[Key(NS, "bot")].ref.uid == "u2"
    assert env.r.telemetry.summary(Key(NS, "bot"), now=env.clock.t, window_s=60) is None
    env.r.process()
    assert env.agent_phase("bot") == "Unknown"


# ---------------------------------------------------------------- faults


def test_fault_becomes_active_and_is_published(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.agent_event("ADDED", agent("other"))
    env.r.process()
    v = env.version("bot")
    v_other = env.version("other")
    env.writer.clear()
    env.clock.advance(0.5)  # 10:00:00.5
    env.r.fault_event("ADDED", fault("slow"))
    env.r.process()
    st = env.fault_status("slow")
    assert st["phase"] == "Active"
    assert (st["startedAt"], st["expiresAt"]) == ("2024-05-01T10:00:00Z", "2024-05-01T10:05:00Z")
    assert env.writer.writes_for("Fault", "slow") == [st]
    assert env.writer.reasons("Fault") == ["FaultActivated"]
    version, faults = env.r.board.current(Key(NS, "bot"))
    assert version != v
    assert faults == ({"uid": "uid-fault-slow", "name": "slow", "type": "Latency", "expiresAt": "2024-05-01T10:05:00Z",
                       "percentage": 50.0, "latency": {"delayMs": 2000}},)
    assert env.version("other") == v_other and env.faults_on("other") == []
    # The agent's status shows the fault as assigned, not yet applied.
    a = env.r.agents[Key(NS, "bot")].status
    assert a["activeFaults"] == [{"name": "slow", "type": "Latency", "expiresAt": "2024-05-01T10:05:00Z", "applied": False}]
    fa = next(c for c in a["conditions"] if c["type"] == "FaultActive")
    assert (fa["status"], fa["reason"]) == ("True", "FaultsAssigned")
    assert env.metrics.assignment_changes._value.get() == 1
    # The sidecar confirms: a meaningful change, written at once.
    n = len(env.writer.writes_for("Agent", "bot"))
    env.clock.advance(1)
    env.r.ingest(report(applied=["uid-fault-slow"]))
    env.r.process()
    writes = env.writer.writes_for("Agent", "bot")
    assert len(writes) == n + 1
    assert writes[-1]["activeFaults"][0]["applied"] is True
    assert next(c for c in writes[-1]["conditions"] if c["type"] == "FaultActive")["reason"] == "FaultsApplied"


def test_fault_steady_state_writes_nothing(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.fault_event("ADDED", fault("slow"))
    env.r.process()
    env.writer.clear()
    v = env.version("bot")
    # Our own write echoes back, the agent's labels are unchanged, time passes.
    env.r.fault_event("MODIFIED", fault("slow", status=env.fault_status("slow")))
    env.r.agent_event("MODIFIED", agent("bot"))
    env.clock.advance(10)
    env.r.process()
    assert env.writer.writes_for("Fault", "slow") == [] and env.writer.events == []
    assert env.version("bot") == v


def test_fault_spec_change_republishes(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.fault_event("ADDED", fault("slow", delay_ms=2000))
    env.r.process()
    v = env.version("bot")
    env.r.fault_event("MODIFIED", fault("slow", delay_ms=4000, generation=2))
    env.r.process()
    assert env.version("bot") != v
    assert env.r.board.current(Key(NS, "bot"))[1][0]["latency"] == {"delayMs": 4000}
    assert env.fault_status("slow")["observedGeneration"] == 2


def test_fault_waits_for_target_then_activates(env: Env) -> None:
    env.r.fault_event("ADDED", fault("slow"))
    env.r.process()
    assert env.fault_status("slow")["phase"] == "Pending"
    assert env.writer.reasons() == ["TargetNotFound"]
    env.clock.advance(30)
    env.r.agent_event("ADDED", agent("bot"))
    env.r.process()
    st = env.fault_status("slow")
    assert st["phase"] == "Active"
    assert st["expiresAt"] == "2024-05-01T10:05:30Z"
    assert env.faults_on("bot") == ["slow"]
    assert env.writer.reasons("Fault") == ["TargetNotFound", "FaultActivated"]


def test_pending_fault_fails_after_duration(env: Env) -> None:
    env.r.fault_event("ADDED", fault("slow", duration="1m"))
    env.r.process()
    env.clock.advance(61.9)  # duration + most of the 2 s grace for whole-second creationTimestamps
    env.r.process()
    assert env.fault_status("slow")["phase"] == "Pending"
    env.clock.advance(0.1)
    env.r.process()  # the give-up deadline
    assert env.fault_status("slow")["phase"] == "Failed"
    assert env.writer.reasons() == ["TargetNotFound", "FaultFailed"]
    # A late agent is not struck.
    env.r.agent_event("ADDED", agent("bot"))
    env.r.process()
    assert env.faults_on("bot") == []
    assert env.fault_status("slow")["phase"] == "Failed"


def test_fault_expires_when_clock_passes_expiry(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.fault_event("ADDED", fault("slow", duration="2m"))
    env.r.process()
    assert env.faults_on("bot") == ["slow"]
    env.clock.advance(119.99)
    env.r.process()
    assert env.faults_on("bot") == ["slow"]
    env.clock.advance(0.01)
    env.r.process()  # nothing dirty: the expiry deadline does it
    st = env.fault_status("slow")
    assert st["phase"] == "Expired"
    assert st["endedAt"] == "2024-05-01T10:02:00Z"
    assert env.faults_on("bot") == []
    assert env.writer.reasons("Fault") == ["FaultActivated", "FaultExpired"]
    a = env.r.agents[Key(NS, "bot")].status
    assert a["activeFaults"] == [] and a["activeFaultCount"] == 0
    # Expired is final: more passes, and even a new matching agent, do nothing.
    n = len(env.writer.statuses)
    env.r.agent_event("ADDED", agent("bot2"))
    env.clock.advance(5)
    env.r.process()
    assert len(env.writer.writes_for("Fault", "slow")) == 2
    assert env.faults_on("bot2") == []
    assert len(env.writer.statuses) == n + 1  # only bot2's initial status


def test_fault_expired_while_operator_was_down(env: Env) -> None:
    env.clock.advance(3600)
    env.r.resync(
        [agent("bot")],
        [fault("slow", status={"phase": "Active", "startedAt": "2024-05-01T10:00:00Z", "expiresAt": "2024-05-01T10:05:00Z",
                               "targets": ["bot"], "conditions": []})],
        listed_at=env.clock.t,
    )
    env.r.process()
    st = env.fault_status("slow")
    assert st["phase"] == "Expired"
    assert "operator resumed 3300s after expiry" in st["message"]
    assert env.faults_on("bot") == []
    assert env.writer.reasons("Fault") == ["FaultExpired"]


def test_active_fault_resumed_after_restart_keeps_its_expiry(env: Env) -> None:
    env.clock.advance(60)  # 10:01:00
    status: FaultStatus = {"phase": "Active", "startedAt": "2024-05-01T10:00:00Z", "expiresAt": "2024-05-01T10:05:00Z", "targets": ["bot"]}
    env.r.resync([agent("bot")], [fault("slow", status=status)], listed_at=env.clock.t)
    env.r.process()
    assert env.faults_on("bot") == ["slow"]
    assert env.fault_status("slow")["expiresAt"] == "2024-05-01T10:05:00Z"
    assert "FaultActivated" not in env.writer.reasons()
    env.clock.advance(240)
    env.r.process()
    assert env.fault_status("slow")["phase"] == "Expired"


def test_deleting_fault_clears_board_at_once(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.fault_event("ADDED", fault("slow"))
    env.r.fault_event("ADDED", fault("other-fault"))
    env.r.process()
    assert env.faults_on("bot") == ["other-fault", "slow"]
    env.r.fault_event("DELETED", fault("slow"))
    # Before any process(): the sidecar's next poll already sees the smaller set.
    assert env.faults_on("bot") == ["other-fault"]
    assert (FAULTS, Key(NS, "slow")) in env.writer.forgotten
    assert Key(NS, "slow") not in env.r.faults
    env.r.process()
    assert env.r.agents[Key(NS, "bot")].status["activeFaults"][0]["name"] == "other-fault"
    # The expiry deadline of the deleted fault is gone.
    env.clock.advance(400)
    env.r.process()
    assert Key(NS, "slow") not in env.r.faults


def test_selector_targets_follow_labels(env: Env) -> None:
    env.r.agent_event("ADDED", agent("a", labels={"tier": "prod"}))
    env.r.agent_event("ADDED", agent("b", labels={"tier": "dev"}))
    env.r.fault_event("ADDED", fault("sel", selector={"matchLabels": {"tier": "prod"}}))
    env.r.process()
    assert env.fault_status("sel")["targets"] == ["a"]
    assert (env.faults_on("a"), env.faults_on("b")) == (["sel"], [])
    # b joins.
    env.clock.advance(10)
    env.r.agent_event("MODIFIED", agent("b", labels={"tier": "prod"}))
    env.r.process()
    assert env.fault_status("sel")["targets"] == ["a", "b"]
    assert env.fault_status("sel")["expiresAt"] == "2024-05-01T10:05:00Z"  # unchanged
    assert (env.faults_on("a"), env.faults_on("b")) == (["sel"], ["sel"])
    # a leaves.
    env.r.agent_event("MODIFIED", agent("a", labels={}))
    env.r.process()
    assert env.fault_status("sel")["targets"] == ["b"]
    assert (env.faults_on("a"), env.faults_on("b")) == ([], ["sel"])
    assert env.r.agents[Key(NS, "a")].status["activeFaultCount"] == 0
    # b leaves too: the fault has lost every target.
    env.r.agent_event("MODIFIED", agent("b", labels={}))
    env.r.process()
    assert env.faults_on("b") == []
    assert env.writer.reasons("Fault") == ["FaultActivated", "TargetLost"]


def test_selector_ignores_other_namespaces(env: Env) -> None:
    other = agent("x", labels={"tier": "prod"})
    other["metadata"]["namespace"] = "team-b"
    env.r.agent_event("ADDED", other)
    env.r.fault_event("ADDED", fault("sel", selector={"matchLabels": {"tier": "prod"}}))
    env.r.process()
    assert env.fault_status("sel")["phase"] == "Pending"
    assert env.r.board.current(Key("team-b", "x"))[1] == ()


def test_invalid_fault_spec_fails_and_is_not_enforced(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.fault_event("ADDED", fault("bad", spec={"type": "Latency", "duration": "a while", "target": {"agent": "bot"}}))
    env.r.process()
    st = env.fault_status("bad")
    assert st["phase"] == "Failed"
    assert st["message"].startswith("invalid spec: spec.duration")
    assert env.writer.reasons("Fault") == ["InvalidSpec"]
    assert env.faults_on("bot") == []


def test_active_fault_spec_turning_invalid_is_withdrawn(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.fault_event("ADDED", fault("slow"))
    env.r.process()
    env.r.fault_event("MODIFIED", fault("slow", generation=2, spec={"type": "Latency", "duration": "", "target": {"agent": "bot"}}))
    env.r.process()
    assert env.fault_status("slow")["phase"] == "Failed"
    assert env.faults_on("bot") == []


def test_deleting_a_fault_next_to_one_with_an_unreadable_new_spec(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.fault_event("ADDED", fault("one"))
    env.r.fault_event("ADDED", fault("two"))
    env.r.process()
    env.r.fault_event("MODIFIED", fault("one", generation=2, spec={"type": "Latency", "duration": "", "target": {"agent": "bot"}}))
    env.r.fault_event("DELETED", fault("two"))  # raises AssertionError inside _assignment
    env.r.process()
    assert env.faults_on("bot") == []


def test_recreated_fault_is_a_new_fault(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.fault_event("ADDED", fault("slow", uid="f1"))
    env.r.process()
    env.clock.advance(400)
    env.r.process()
    assert env.fault_status("slow")["phase"] == "Expired"
    env.r.fault_event("ADDED", fault("slow", uid="f2", created="2024-05-01T10:06:40Z"))
    env.r.process()
    st = env.fault_status("slow")
    assert st["phase"] == "Active"
    assert st["startedAt"] == "2024-05-01T10:06:40Z"
    assert env.r.board.current(Key(NS, "bot"))[1][0]["uid"] == "f2"


# ---------------------------------------------------------------- resync


def test_resync_drops_objects_deleted_while_down_keeps_newer_ones(env: Env) -> None:
    env.r.agent_event("ADDED", agent("kept"))
    env.r.agent_event("ADDED", agent("gone"))
    env.r.fault_event("ADDED", fault("stale-fault", target="gone"))
    env.r.fault_event("ADDED", fault("kept-fault", target="kept"))
    env.r.process()
    assert env.faults_on("gone") == ["stale-fault"]
    env.clock.advance(100)
    listed_at = env.clock.t
    env.clock.advance(1)  # during the list, new objects arrive through the watch
    env.r.agent_event("ADDED", agent("fresh"))
    env.r.fault_event("ADDED", fault("fresh-fault", target="fresh"))
    env.writer.clear()
    env.r.resync([agent("kept")], [fault("kept-fault", target="kept")], listed_at=listed_at)
    assert env.r.synced is True
    assert set(env.r.agents) == {Key(NS, "kept"), Key(NS, "fresh")}
    assert set(env.r.faults) == {Key(NS, "kept-fault"), Key(NS, "fresh-fault")}
    assert (AGENTS, Key(NS, "gone")) in env.writer.forgotten
    assert (FAULTS, Key(NS, "stale-fault")) in env.writer.forgotten
    assert env.faults_on("gone") == []
    env.r.process()
    assert env.faults_on("kept") == ["kept-fault"]
    assert env.faults_on("fresh") == ["fresh-fault"]


def test_resync_of_unchanged_world_writes_nothing(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.fault_event("ADDED", fault("slow"))
    env.r.process()
    env.writer.clear()
    env.clock.advance(5)
    a = agent("bot", status=env.r.agents[Key(NS, "bot")].status)
    f = fault("slow", status=env.fault_status("slow"))
    env.r.resync([a], [f], listed_at=env.clock.t)
    env.r.process()
    assert env.writer.statuses == [] and env.writer.events == [] and env.writer.forgotten == []


def test_resync_rebuilds_from_lists_after_restart(env: Env) -> None:
    env.r.resync([agent("bot", status={"phase": "Healthy"})], [fault("slow")], listed_at=env.clock.t)
    env.r.process()
    assert env.fault_status("slow")["phase"] == "Active"
    assert env.faults_on("bot") == ["slow"]
    # Telemetry is soft state and starts empty: the recorded phase stands for one
    # heartbeat timeout (30 s here), then silence makes it Unknown.
    assert env.agent_phase("bot") == "Healthy"
    assert env.writer.reasons("Agent") == []
    env.clock.advance(30)
    env.r.process()
    assert env.agent_phase("bot") == "Unknown"
    assert env.writer.reasons("Agent") == ["AgentUnknown"]


def test_resync_does_not_resurrect_fault_deleted_during_the_list(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.fault_event("ADDED", fault("slow"))
    env.r.process()
    listed_at = env.clock.t
    listed_agents, listed_faults = [agent("bot")], [fault("slow", status=env.fault_status("slow"))]
    env.clock.advance(1)
    env.r.fault_event("DELETED", fault("slow"))  # arrives while the list is in flight
    assert env.faults_on("bot") == []
    env.r.resync(listed_agents, listed_faults, listed_at=listed_at)
    env.r.process()
    assert Key(NS, "slow") not in env.r.faults
    assert env.faults_on("bot") == []


def test_resync_does_not_revert_newer_spec_from_watch(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.fault_event("ADDED", fault("slow", delay_ms=2000))
    env.r.process()
    listed_at = env.clock.t
    stale_list = [fault("slow", delay_ms=2000, generation=1)]
    env.clock.advance(1)
    env.r.fault_event("MODIFIED", fault("slow", delay_ms=4000, generation=2))
    env.r.process()
    assert env.r.board.current(Key(NS, "bot"))[1][0]["latency"] == {"delayMs": 4000}
    env.r.resync([agent("bot")], stale_list, listed_at=listed_at)
    env.r.process()
    assert env.r.board.current(Key(NS, "bot"))[1][0]["latency"] == {"delayMs": 4000}


# ---------------------------------------------------------------- gauges


def test_phase_gauges(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.agent_event("ADDED", agent("idle"))
    env.r.fault_event("ADDED", fault("slow"))
    env.r.fault_event("ADDED", fault("waiting", target="nobody"))
    env.r.ingest(report())
    env.r.process()
    reg = env.metrics.registry
    assert reg.get_sample_value("agentops_agents", {"phase": "Healthy"}) == 1
    assert reg.get_sample_value("agentops_agents", {"phase": "Unknown"}) == 1
    assert reg.get_sample_value("agentops_faults", {"phase": "Active"}) == 1
    assert reg.get_sample_value("agentops_faults", {"phase": "Pending"}) == 1


def test_restart_keeps_recorded_health_until_the_sidecars_had_time_to_report(env: Env) -> None:
    recorded: AgentStatus = {"phase": "Healthy", "observedGeneration": 1, "conditions": [
        {"type": "Ready", "status": "True", "reason": "Healthy", "message": "", "observedGeneration": 1,
         "lastTransitionTime": "2024-05-01T09:00:00Z"}]}
    env.r.agent_event(None, agent("bot", status=recorded))
    env.r.process()
    assert env.writer.writes_for("Agent", "bot") == []  # no flip to Unknown on restart
    env.clock.advance(5)
    env.r.ingest(report())
    env.r.process()
    # Telemetry arrived within the grace: still Healthy, with the transition time kept.
    (written,) = env.writer.writes_for("Agent", "bot")
    assert written["phase"] == "Healthy"
    assert written["conditions"][0]["lastTransitionTime"] == "2024-05-01T09:00:00Z"


def test_restart_grace_ends_after_one_heartbeat_timeout_without_reports(env: Env) -> None:
    env.r.agent_event(None, agent("bot", status={"phase": "Healthy"}))
    env.r.process()
    assert env.writer.writes_for("Agent", "bot") == []
    env.clock.advance(30)  # heartbeatTimeout of the test agent
    env.r.process()
    assert env.agent_phase("bot") == "Unknown"
    assert env.writer.writes_for("Agent", "bot")[-1]["conditions"][0]["reason"] == "NoTelemetry"


def test_restart_annotation_restarts_a_process_agent_once_per_value(env: Env) -> None:
    spec = {"runtime": {"type": "Process"}, "health": {"heartbeatTimeout": "30s", "window": "60s"}}
    env.r.agent_event("ADDED", agent("bot", spec=spec))
    env.r.process()
    key = Key(NS, "bot")
    v0 = env.version("bot")
    assert env.r.board.restart_request(key) is None

    annotated = agent("bot", spec=spec)
    annotated["metadata"]["annotations"] = {"agentops.dev/restart": "2024-05-01T10:00:00Z"}
    env.r.agent_event("MODIFIED", annotated)
    env.r.process()
    token = env.r.board.restart_request(key)
    v1 = env.version("bot")
    assert v1 != v0 and token is not None
    assert env.writer.writes_for("Agent", "bot")[-1]["restartCount"] == 1
    assert env.writer.writes_for("Agent", "bot")[-1]["incidents"][-1]["trigger"] == "ManualRestart"
    env.r.agent_event("MODIFIED", annotated)  # the same value again: no second restart
    env.r.process()
    assert env.r.board.restart_request(key) == token and env.version("bot") == v1

    # Removing the annotation asks for nothing; the sidecar keeps the token it acted on.
    annotated["metadata"]["annotations"] = {}
    env.r.agent_event("MODIFIED", annotated)
    env.r.process()
    assert env.r.board.restart_request(key) == token

def sidecar_missing(status: AgentStatus) -> dict[str, Any] | None:
    return next((dict(c) for c in status.get("conditions") or () if c["type"] == "SidecarMissing"), None)


def test_pods_without_the_injected_sidecar_are_reported_on_their_agent(env: Env) -> None:
    env.r.agent_event("ADDED", agent("bot"))
    env.r.agent_event("ADDED", agent("other"))
    env.r.process()
    assert sidecar_missing(env.writer.writes_for("Agent", "bot")[-1]) is None  # injection does not concern it yet
    env.writer.clear()
    env.r.sidecars_missing({Key(NS, "bot"): ["bot-7d9-abcde", "bot-7d9-fghij"]})
    env.r.process()
    condition = sidecar_missing(env.writer.writes_for("Agent", "bot")[-1])
    assert condition is not None and (condition["status"], condition["reason"]) == ("True", "PodsWithoutSidecar")
    assert "bot-7d9-abcde, bot-7d9-fghij" in condition["message"]
    assert env.writer.reasons("Agent", "bot") == ["SidecarMissing"]
    assert env.writer.writes_for("Agent", "other") == []  # not concerned: untouched
    # The same finding again: no new Event, no write.
    env.writer.clear()
    env.r.sidecars_missing({Key(NS, "bot"): ["bot-7d9-fghij", "bot-7d9-abcde"]})
    env.r.process()
    assert env.writer.events == [] and env.writer.statuses == []
    # Re-created with the sidecar: the condition clears.
    env.r.sidecars_missing({Key(NS, "bot"): []})
    env.r.process()
    condition = sidecar_missing(env.writer.writes_for("Agent", "bot")[-1])
    assert condition is not None and (condition["status"], condition["reason"]) == ("False", "SidecarsInjected")
    assert env.writer.events == []
