"""Healing, halts and stop conditions inside the reconcile loop (fake writer and clock)."""

from __future__ import annotations

from typing import Any

from test_reconciler import NS, Env, agent, fault, report

from agentops_operator.resources import Key, ObjectRef, RuntimeSpec
from agentops_operator.restart_runner import Done
from agentops_operator.runtimes import RestartOutcome

HEALING = {"unhealthyFor": "2s", "verifyTimeout": "30s", "budget": {"maxRestarts": 3, "window": "10m"},
           "backoff": {"initial": "5s", "max": "1m"}}


def spec(runtime: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"runtime": runtime or {"type": "Kubernetes", "deployment": {"name": "dep"}},
            "health": {"heartbeatTimeout": "30s", "window": "60s", "probeFailureThreshold": 3}, "healing": HEALING}


class FakeRunner:
    """Stands in for RestartRunner: records what would run; the test answers."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, str]] = []
        self.actions: list[str] = []
        self.on_done: Done | None = None  # set by the Reconciler, as on RestartRunner

    def submit(self, agent_ref: ObjectRef, runtime: RuntimeSpec, token: str, action: str = "Restart") -> None:
        self.submitted.append((agent_ref.key.name, token))
        self.actions.append(action)


def healing_env(max_concurrent: int = 3) -> tuple[Env, FakeRunner]:
    runner = FakeRunner()
    env = Env(restarts=runner, max_concurrent_restarts=max_concurrent)
    return env, runner


def sick(env: Env, name: str, instance: str = "i-1") -> None:
    env.r.ingest(report(name, sidecar=f"{name}-pod", consecutive=5, instance=instance))


def healthy(env: Env, name: str, instance: str) -> None:
    env.r.ingest(report(name, sidecar=f"{name}-pod", instance=instance))


def test_an_unhealthy_agent_is_restarted_once_and_verified_by_a_new_instance() -> None:
    env, runner = healing_env()
    env.r.agent_event("ADDED", agent("bot", spec=spec()))
    sick(env, "bot")
    env.r.process()
    assert runner.submitted == []
    env.clock.advance(2)
    env.r.process()
    assert [n for n, _ in runner.submitted] == ["bot"]
    env.clock.advance(1)
    sick(env, "bot")
    env.r.process()
    assert len(runner.submitted) == 1  # one decision, one restart
    env.r.restart_finished(Key(NS, "bot"), runner.submitted[0][1], RestartOutcome.done("rolled"))
    env.r.process()
    status = env.writer.writes_for("Agent", "bot")[-1]
    assert status["healing"]["state"] == "Verifying" and status["restartCount"] == 1
    healthy(env, "bot", "i-2")
    env.r.process()
    status = env.writer.writes_for("Agent", "bot")[-1]
    assert status["healing"]["state"] == "Idle" and status["incidents"][-1]["state"] == "Healed"
    assert "AgentHealed" in env.writer.reasons("Agent", "bot")


def test_the_cluster_wide_limit_queues_restarts() -> None:
    env, runner = healing_env(max_concurrent=2)
    for n in ("a", "b", "c", "d"):
        env.r.agent_event("ADDED", agent(n, spec=spec()))
        sick(env, n)
    env.r.process()
    env.clock.advance(2)
    env.r.process()
    assert len(runner.submitted) == 2
    queued = [n for n in "abcd" if env.r.agents[Key(NS, n)].healing.state == "Queued"]
    assert len(queued) == 2
    first, token = runner.submitted[0]
    env.r.restart_finished(Key(NS, first), token, RestartOutcome.failed("DeploymentNotFound", "gone", retryable=False))
    env.r.process()
    env.r.process()
    assert len(runner.submitted) == 3  # the freed slot went to a queued agent


def test_a_process_agent_is_restarted_through_its_sidecar_and_its_crash_fault_is_cured() -> None:
    env, runner = healing_env()
    env.r.agent_event("ADDED", agent("bot", spec=spec({"type": "Process"})))
    env.r.fault_event("ADDED", fault("boom", spec={"type": "Crash", "duration": "5m", "target": {"agent": "bot"}, "crash": {}}))
    env.r.process()
    assert env.faults_on("bot") == ["boom"]
    sick(env, "bot")
    env.r.process()
    env.clock.advance(2)
    env.r.process()
    env.r.process()
    key = Key(NS, "bot")
    assert runner.submitted == [] and env.r.board.restart_request(key) is not None
    assert env.faults_on("bot") == []  # a restart cures a crash; the fault stays Active until it expires
    assert env.fault_status("boom")["phase"] == "Active"
    assert env.writer.writes_for("Fault", "boom")[-1]["curedTargets"] == ["bot"]
    # An operator restart reads the cure back from status: the crash is not enforced again.
    again, _ = healing_env()
    again.r.agent_event("ADDED", agent("bot", spec=spec({"type": "Process"})))
    again.r.fault_event("ADDED", fault("boom", spec={"type": "Crash", "duration": "5m", "target": {"agent": "bot"}, "crash": {}},
                                       status=env.fault_status("boom")))
    again.r.process()
    assert again.faults_on("bot") == []


def test_latency_faults_are_not_cured_by_a_restart() -> None:
    env, _ = healing_env()
    env.r.agent_event("ADDED", agent("bot", spec=spec({"type": "Process"})))
    env.r.fault_event("ADDED", fault("slow"))
    env.r.process()
    sick(env, "bot")
    env.r.process()
    env.clock.advance(2)
    env.r.process()
    env.r.process()
    assert env.faults_on("bot") == ["slow"]


def test_recover_annotation_halts_the_agents_faults() -> None:
    env, runner = healing_env()
    env.r.agent_event("ADDED", agent("bot", spec=spec()))
    env.r.fault_event("ADDED", fault("slow"))
    env.r.process()
    body = agent("bot", spec=spec())
    body["metadata"]["annotations"] = {"agentops.dev/recover": "now"}
    env.r.agent_event("MODIFIED", body)
    env.r.process()
    env.r.process()
    assert env.fault_status("slow")["phase"] == "Halted" and env.faults_on("bot") == []
    assert [n for n, _ in runner.submitted] == ["bot"]
    assert "FaultHalted" in env.writer.reasons("Fault", "slow")


def namespace(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "annotations": annotations}}


def test_namespace_halt_ends_active_faults_and_refuses_new_ones() -> None:
    env, _ = healing_env()
    env.r.agent_event("ADDED", agent("bot"))
    env.r.fault_event("ADDED", fault("slow"))
    env.r.process()
    env.r.namespace_event("MODIFIED", namespace(NS, {"agentops.dev/halt": "incident 42"}))
    env.r.process()
    assert env.fault_status("slow")["phase"] == "Halted" and env.faults_on("bot") == []
    env.r.fault_event("ADDED", fault("later", uid="u-later"))
    env.r.process()
    later = env.fault_status("later")
    assert later["phase"] == "Halted" and "incident 42" in later["message"]
    assert "FaultRefused" in env.writer.reasons("Fault", "later")
    env.r.namespace_event("MODIFIED", namespace(NS, {}))
    env.r.fault_event("ADDED", fault("after", uid="u-after"))
    env.r.process()
    assert env.fault_status("after")["phase"] == "Active"


def test_cluster_halt_comes_from_the_control_namespace_only() -> None:
    env, _ = healing_env()
    env.r.agent_event("ADDED", agent("bot"))
    env.r.fault_event("ADDED", fault("slow"))
    env.r.process()
    env.r.namespace_event("MODIFIED", namespace("elsewhere", {"agentops.dev/halt-all": "x"}))
    env.r.process()
    assert env.fault_status("slow")["phase"] == "Active"
    env.r.namespace_event("MODIFIED", namespace(env.r.halts.control_namespace, {"agentops.dev/halt-all": "game day over"}))
    env.r.process()
    assert env.fault_status("slow")["phase"] == "Halted"
    assert "game day over" in env.fault_status("slow")["message"]


def test_a_tripped_stop_condition_aborts_the_fault() -> None:
    env, _ = healing_env()
    env.r.agent_event("ADDED", agent("bot"))
    env.r.fault_event("ADDED", fault("errs", spec={"type": "Error", "duration": "5m", "target": {"agent": "bot"}, "error": {},
                                                   "stopConditions": [{"errorRateAbove": 0.5}]}))
    env.r.process()
    env.r.ingest(report("bot", requests=20, errors={"http5xx": 8}))
    env.r.process()
    assert env.fault_status("errs")["phase"] == "Active"  # 40% is not above 50%
    env.r.ingest(report("bot", requests=20, errors={"http5xx": 20}))
    env.r.process()
    env.r.process()
    status = env.fault_status("errs")
    assert status["phase"] == "Aborted" and "errorRateAbove" in status["message"]
    assert "FaultAborted" in env.writer.reasons("Fault", "errs") and env.faults_on("bot") == []


def test_unhealthy_for_stop_condition_trips_with_time_alone() -> None:
    env, _ = healing_env()
    env.r.agent_event("ADDED", agent("bot", spec=spec({"type": "None"})))
    env.r.fault_event("ADDED", fault("crash", spec={"type": "Crash", "duration": "5m", "target": {"agent": "bot"}, "crash": {},
                                                    "stopConditions": [{"unhealthyFor": "10s"}]}))
    env.r.process()
    sick(env, "bot")
    env.r.process()
    env.clock.advance(9)
    env.r.process()
    assert env.fault_status("crash")["phase"] == "Active"
    env.clock.advance(1.1)
    env.r.process()  # the deadline heap wakes the agent; no new telemetry needed
    env.r.process()
    assert env.fault_status("crash")["phase"] == "Aborted"


def test_queued_restarts_are_first_come_first_served() -> None:
    env, runner = healing_env(max_concurrent=1)
    for n in ("a", "b", "c"):
        env.r.agent_event("ADDED", agent(n, spec=spec()))
    sick(env, "a")
    env.r.process()
    env.clock.advance(2)
    env.r.process()
    assert [n for n, _ in runner.submitted] == ["a"]
    sick(env, "b")
    env.r.process()
    env.clock.advance(2)
    env.r.process()  # b queues first
    sick(env, "c")
    env.r.process()
    env.clock.advance(2)
    env.r.process()  # then c
    assert [env.r.agents[Key(NS, n)].healing.state for n in "bc"] == ["Queued", "Queued"]
    for _ in range(3):
        sick(env, "c")  # c keeps reporting; it must not jump the queue
        env.r.process()
    first, token = runner.submitted[0]
    env.r.restart_finished(Key(NS, first), token, RestartOutcome.failed("DeploymentNotFound", "gone", retryable=False))
    sick(env, "c")
    env.r.process()
    env.r.process()
    assert [n for n, _ in runner.submitted] == ["a", "b"]
