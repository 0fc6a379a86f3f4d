"""ResilienceChecks end to end: the real operator runs the experiments on a real agent.

The real operator on a real control plane; the real sample chat agent (its Gemini REST
client pointed at its sidecar's model gateway, which forwards to the local Gemini
stand-in), supervised by a real sidecar (runtime Process: a restart is the sidecar
restarting the agent's process); callers' traffic through the sidecar's proxy.

1. A suite of three, through the CI gate (`agentops check run --wait`): a crash (healed by a restart: Resilient), added latency (the agent
   degrades and recovers: Degraded, p95 above the expectation), and a rate-limit storm
   on its model calls (healing cannot cure it and escalates: Vulnerable) - each verdict
   and the score recomputed here from the numbers the run recorded.
2. Deleting a check in the middle of an experiment deletes its Fault.
3. The halt switch aborts a run; its Fault ends and the rest is Aborted.
4. An operator killed mid-experiment: the new one aborts that experiment (it missed
   what happened), never creates its Fault again, and goes on with the next.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from model_standins import Answer, StandIns
from operator_harness import Kube, OperatorProcess, wait_for
from sidecar_harness import Traffic, gemini_chat

KEY = "AIzaCheck-stand-in-key_0123456789"
MODEL = "gemini-2.0-flash"
CHECK_LABEL = "agentops.dev/resilience-check"


def agent_manifest() -> str:
    return json.dumps({
        "apiVersion": "agentops.dev/v1alpha1", "kind": "Agent", "metadata": {"name": "chat"},
        "spec": {
            "runtime": {"type": "Process"},
            "models": {"providers": ["Gemini"]},
            "health": {"heartbeatTimeout": "30s", "window": "5s", "minSamples": 3, "model": {"minCalls": 3},
                       "latencyP95Ms": {"degraded": 200, "unhealthy": 5000}},
            "healing": {"unhealthyFor": "1s", "verifyTimeout": "5s", "budget": {"maxRestarts": 2, "window": "10m"},
                        "backoff": {"initial": "1s", "max": "2s"}},
        },
    })


Experiment = dict[str, Any]


def check_manifest(name: str, experiments: list[Experiment], **spec: Any) -> str:
    body = {"agent": "chat", "steadyState": {"baseline": "4s", "settle": "3s", "timeout": "90s", "minRequests": 5,
                                             "maxErrorRate": 0.05},
            "experiments": experiments, **spec}
    return json.dumps({"apiVersion": "agentops.dev/v1alpha1", "kind": "ResilienceCheck", "metadata": {"name": name},
                       "spec": body})


CRASH: Experiment = {"name": "crash", "weight": 3, "fault": {"type": "Crash", "duration": "20s"},
         "expect": {"detectedWithin": "10s", "recoveredWithin": "25s", "maxErrorRate": 0.9, "recoveryDeadline": "40s"}}
LATENCY: Experiment = {"name": "latency", "weight": 1, "fault": {"type": "Latency", "latency": {"delayMs": 400}, "duration": "12s"},
           "expect": {"detectedWithin": "10s", "maxLatencyP95Ms": 250, "recoveryDeadline": "40s"}}
RATE_LIMIT: Experiment = {"name": "rate-limit", "weight": 2,
              "fault": {"type": "ModelRateLimit", "model": {"providers": ["Gemini"], "retryAfter": "2s"}, "duration": "20s"},
              "expect": {"recoveryDeadline": "40s"}}


@pytest.fixture
def providers() -> Iterator[StandIns]:
    with StandIns(keys={"gemini": KEY}) as p:
        p.answer("gemini", Answer(text="Mostly.", input_tokens=40, output_tokens=10))
        yield p


@pytest.fixture
def check_operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    return start_operator("--status-heartbeat", "1s")


@pytest.fixture
def chat(check_operator: OperatorProcess, kube: Kube, providers: StandIns, tmp_path: Path) -> Iterator[Traffic]:
    kube.apply(agent_manifest())
    sidecar = gemini_chat(namespace=kube.namespace, operator_url=check_operator.url, token=check_operator.token, ca_file=check_operator.ca_file,
                          gemini_origin=providers.origin, key=KEY, model=MODEL, log_path=tmp_path / "chat-sidecar.log")
    sidecar.start()
    try:
        wait_for(lambda: requests.get(f"{sidecar.admin_url}/readyz", timeout=2).status_code == 200, timeout=30,
                 what="agent ready")
        with Traffic(sidecar.url, "/v1/chat", {"message": "Which faults do you survive?"}, threads=2, pause=0.1) as callers:
            wait_for(lambda: kube.status("agent", "chat").get("phase") == "Healthy", timeout=60, what="chat Healthy")
            yield callers
    finally:
        sidecar.stop()


def check_status(kube: Kube, name: str) -> dict[str, Any]:
    return kube.status("resiliencecheck", name)


def run_of(kube: Kube, name: str) -> dict[str, Any]:
    runs = check_status(kube, name).get("runs") or []
    return runs[0] if runs else {}


def experiment(kube: Kube, name: str, exp: str) -> dict[str, Any]:
    return next((e for e in run_of(kube, name).get("experiments", []) if e["name"] == exp), {})


def check_faults(kube: Kube, check: str) -> list[dict[str, Any]]:
    out = kube.cluster.kubectl("get", "faults", "-n", kube.namespace, "-l", f"{CHECK_LABEL}={check}", "-o", "json").stdout
    return list(json.loads(out)["items"])


def expected_verdict(e: dict[str, Any], spec: dict[str, Any]) -> str:
    """The verdict computed by hand from what the run recorded (the rules of the CRD)."""
    expect = spec.get("expect", {})
    during = e.get("during", {})
    hard = soft = False
    if during.get("requests") and during["errors"] / during["requests"] > expect.get("maxErrorRate", 0.05):
        hard = True
    if e.get("escalated") and not expect.get("allowEscalation", False):
        hard = True
    if e.get("faultPhase") == "Aborted" or ("detectedAt" in e and "recoveredAt" not in e):
        hard = True
    def limit(text: str) -> float:  # only 's' and 'm' are used here
        return float(text[:-1]) * {"s": 1, "m": 60}[text[-1]]

    if "detectedWithin" in expect and e.get("detectionSeconds", 0) > limit(expect["detectedWithin"]):
        soft = True
    if "recoveredWithin" in expect and "detectedAt" in e and e.get("recoverySeconds", math.inf) > limit(expect["recoveredWithin"]):
        soft = True
    if "maxLatencyP95Ms" in expect and during.get("latencyP95Ms", 0) > expect["maxLatencyP95Ms"]:
        soft = True
    return "Vulnerable" if hard else "Degraded" if soft else "Resilient"


@pytest.mark.timeout(420)
def test_a_suite_is_run_judged_and_scored(chat: Traffic, kube: Kube, tmp_path: Path, check_operator: OperatorProcess) -> None:
    experiments = [CRASH, LATENCY, RATE_LIMIT]
    # Through the CI gate, as a pipeline runs it: apply, follow, report, exit by the result.
    suite = tmp_path / "suite.json"
    suite.write_text(check_manifest("suite", experiments))
    junit = tmp_path / "suite.xml"
    gate = subprocess.run([sys.executable, "-m", "agentops", "check", "run", "-f", str(suite), "-n", kube.namespace,
                           "--kubeconfig", str(kube.cluster.kubeconfig), "--wait", "--timeout", "6m", "--junit", str(junit)],
                          capture_output=True, text=True, timeout=400, env=kube.cluster.env())
    print(gate.stdout)  # the Markdown report (shown with -s)
    assert gate.returncode == 1, gate.stderr[-3000:]  # score 58 < the default passing score 80
    assert "score 58 is below 80" in gate.stderr
    assert "score = round(100 × (3×1 + 1×0.5 + 2×0) / 6) = 58" in gate.stdout
    assert junit.read_text().count("<testcase") == 3 and "<failure" in junit.read_text()
    status = check_status(kube, "suite")
    run = status["runs"][0]
    assert run["phase"] == "Completed", run
    assert run["trigger"] in ("Created", "Requested") and run["id"] == 1
    assert run["baseline"]["requests"] >= 5 and run["baseline"]["errorRate"] <= 0.05
    results = run["experiments"]
    assert [e["name"] for e in results] == ["crash", "latency", "rate-limit"]
    for e, spec in zip(results, experiments):
        assert e["verdict"] == expected_verdict(e, spec), e
    crash, latency, rate_limit = results
    assert [e["verdict"] for e in results] == ["Resilient", "Degraded", "Vulnerable"], results
    # The crash: detected, healed by one restart while the fault still ran, within budget.
    assert crash["restarts"] >= 1 and crash["incident"] and crash["recoverySeconds"] <= 25
    assert crash["during"]["errors"] > 0
    # The latency: p95 above the expectation, no errors, the agent Degraded and back.
    assert latency["during"]["latencyP95Ms"] > 250 and latency["worstPhase"] == "Degraded"
    assert any("p95 latency" in f for f in latency["findings"])
    # The rate-limit storm: healing escalated, which a rate limit it cannot cure.
    assert rate_limit["escalated"] is True and any("escalated" in f for f in rate_limit["findings"])
    # The score, by hand: round(100 x (3x1 + 1x0.5 + 2x0) / 6), half up.
    values = {"Resilient": 1.0, "Degraded": 0.5, "Vulnerable": 0.0}
    by_hand = math.floor(100 * sum(e["weight"] * values[e["verdict"]] for e in results) / sum(e["weight"] for e in results) + 0.5)
    assert run["score"] == status["score"] == by_hand == 58
    assert run["passed"] is False and status["progress"] == "3/3"
    assert status["summary"] == "1 Resilient, 1 Degraded, 1 Vulnerable"
    passed = kube.condition("resiliencecheck", "suite", "Passed")
    assert passed["status"] == "False" and passed["reason"] == "ScoreBelowPassing"
    assert kube.condition("resiliencecheck", "suite", "Ready")["status"] == "True"
    # The chart's series covers the run; every Fault is gone.
    assert len(run["series"]) >= 10 and any(p.get("requests") for p in run["series"])
    wait_for(lambda: check_faults(kube, "suite") == [], timeout=15, what="the suite's Faults deleted")
    assert [check_operator.metric("agentops_check_experiments_total", verdict=v) for v in ("Resilient", "Degraded", "Vulnerable")] \
        == [1, 1, 1]
    assert check_operator.metric("agentops_check_runs_total", phase="Completed") == 1
    assert {"RunStarted", "ExperimentStarted", "ExperimentResilient", "ExperimentDegraded", "ExperimentVulnerable",
            "RunCompleted"} <= kube.event_reasons("suite")


def _observing(kube: Kube, name: str, exp: str) -> bool:
    return experiment(kube, name, exp).get("state") == "Observing"


@pytest.mark.timeout(180)
def test_deleting_a_running_check_deletes_its_fault(chat: Traffic, kube: Kube) -> None:
    long = {**LATENCY, "fault": {**LATENCY["fault"], "duration": "5m"}}
    kube.apply(check_manifest("doomed", [long]))
    wait_for(lambda: _observing(kube, "doomed", "latency"), timeout=90, what="the latency experiment active")
    assert [f["metadata"]["name"] for f in check_faults(kube, "doomed")] == ["doomed-1-latency"]
    kube.delete("resiliencecheck", "doomed")
    wait_for(lambda: check_faults(kube, "doomed") == [], timeout=15, what="the check's Fault deleted with it")
    wait_for(lambda: kube.status("agent", "chat").get("activeFaultCount", 0) == 0, timeout=15, what="no fault on chat")


@pytest.mark.timeout(180)
def test_the_halt_switch_aborts_a_run(chat: Traffic, kube: Kube) -> None:
    long = {**LATENCY, "fault": {**LATENCY["fault"], "duration": "5m"}}
    kube.apply(check_manifest("halted", [long, CRASH]))
    wait_for(lambda: _observing(kube, "halted", "latency"), timeout=90, what="the latency experiment active")
    kube.cluster.kubectl("annotate", "namespace", kube.namespace, "agentops.dev/halt=check test")
    try:
        wait_for(lambda: run_of(kube, "halted").get("phase") == "Aborted", timeout=20, what="the run aborted")
        run = run_of(kube, "halted")
        assert [e["verdict"] for e in run["experiments"]] == ["Aborted", "Aborted"]
        assert "halt" in run["message"]
        assert check_status(kube, "halted")["phase"] == "Aborted"
        wait_for(lambda: check_faults(kube, "halted") == [], timeout=15, what="the halted run's Fault deleted")
        assert "score" not in run
    finally:
        kube.cluster.kubectl("annotate", "namespace", kube.namespace, "agentops.dev/halt-")


@pytest.mark.timeout(240)
def test_an_operator_killed_mid_experiment_never_runs_it_twice(chat: Traffic, kube: Kube,
                                                               check_operator: OperatorProcess) -> None:
    long = {**LATENCY, "fault": {**LATENCY["fault"], "duration": "2m"}}
    short = {**CRASH, "name": "crash"}
    kube.apply(check_manifest("restarted", [long, short]))
    wait_for(lambda: _observing(kube, "restarted", "latency"), timeout=90, what="the latency experiment active")
    (fault,) = check_faults(kube, "restarted")
    uid = fault["metadata"]["uid"]
    assert check_operator.proc is not None
    check_operator.proc.kill()  # SIGKILL: no shutdown, no last status write
    check_operator.proc.wait(10)
    check_operator.proc = None
    check_operator.start()
    wait_for(lambda: experiment(kube, "restarted", "latency").get("verdict") == "Aborted", timeout=30,
             what="the interrupted experiment aborted by the new operator")
    assert "operator restarted" in " ".join(experiment(kube, "restarted", "latency")["findings"])
    wait_for(lambda: run_of(kube, "restarted").get("phase") in ("Completed", "Aborted", "Failed"), timeout=150,
             what="the run to end")
    run = run_of(kube, "restarted")
    assert run["phase"] == "Completed" and run["experiments"][1]["verdict"] in ("Resilient", "Degraded", "Vulnerable")
    # The latency Fault was created once: its uid is the one recorded, and it never came back.
    assert run["experiments"][0]["faultUID"] == uid
    wait_for(lambda: check_faults(kube, "restarted") == [], timeout=15, what="every Fault deleted")
    created = [e for e in kube.events("restarted") if e["reason"] == "ExperimentStarted" and "latency" in e["message"]]
    assert len(created) == 1, created


def _apply_error(kube: Kube, manifest: str) -> str:
    try:
        kube.apply(manifest)
    except AssertionError as exc:  # the harness's kubectl failure, with kubectl's stderr
        return str(exc)
    raise AssertionError("the API server accepted an invalid check")


@pytest.mark.usefixtures("crds")
@pytest.mark.parametrize(("experiments", "spec", "field"), [
    ([{**CRASH, "weight": 0}], {}, "spec.experiments[0].weight"),
    ([{"name": "slow", "fault": {"type": "Latency", "duration": "10s"}}], {},
     "spec.experiments[0].fault.latency: Required value"),
    ([{"name": "x", "fault": {"type": "Latency", "latency": {"delayMs": 1}, "duration": "48h"}}], {},
     "spec.experiments[].fault.duration must be between 1s and 24h"),
    ([CRASH], {"schedule": ""}, "spec.schedule"),
    ([CRASH, CRASH], {}, "Duplicate value"),
    ([], {}, "spec.experiments"),
    ([CRASH], {"historyLimit": 11}, "spec.historyLimit"),
    ([{**CRASH, "expect": {"maxErrorRate": 2}}], {}, "spec.experiments[0].expect.maxErrorRate"),
])
def test_invalid_checks_are_rejected_naming_the_field(kube: Kube, experiments: list[dict[str, Any]],
                                                      spec: dict[str, Any], field: str) -> None:
    assert field in _apply_error(kube, check_manifest("bad", experiments, **spec))


@pytest.mark.usefixtures("crds")
def test_the_readme_example_is_accepted(kube: Kube) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = next(block for block in readme.split("```yaml\n")[1:] if "kind: ResilienceCheck" in block).split("```")[0]
    kube.cluster.kubectl("apply", "-n", kube.namespace, "--dry-run=server", "-f", "-", input=example)
