"""`agentops check run` and `agentops report` against a real kube-apiserver, without an operator.

The CLI runs as a subprocess with the control plane's kubeconfig, exactly as a CI job
runs it. No operator runs here: where the operator would answer a run request, the
test writes the check's status itself through the status subresource (so the API
server's schema checks what it writes, as it checks the operator's), and the CLI's
exit code is checked for a passing, a failing, an aborted and a timed-out run.

The operator-driven end-to-end run of the CLI - a real operator running the
experiments the CLI asked for - is in the lead's test,
tests/integration/test_resilience_checks.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from operator_harness import Kube, wait_for

ANNOTATION = "agentops.dev/run-requested"
JUNIT_SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "junit.xsd"
pytestmark = pytest.mark.usefixtures("crds")


def check_file(tmp_path: Path, name: str = "suite", **spec: Any) -> Path:
    body = {"agent": "chat", "experiments": [
        {"name": "crash", "weight": 3, "fault": {"type": "Crash", "duration": "20s"},
         "expect": {"detectedWithin": "10s", "recoveredWithin": "25s", "maxErrorRate": 0.9}},
        {"name": "latency", "weight": 1, "fault": {"type": "Latency", "latency": {"delayMs": 400}, "duration": "12s"},
         "expect": {"maxLatencyP95Ms": 250}},
        {"name": "rate-limit", "weight": 2, "fault": {"type": "ModelRateLimit", "model": {}, "duration": "20s"}},
    ]}
    body.update(spec)
    path = tmp_path / f"{name}.yaml"
    # JSON is YAML; a check file is read as YAML.
    path.write_text(json.dumps({"apiVersion": "agentops.dev/v1alpha1", "kind": "ResilienceCheck",
                                "metadata": {"name": name}, "spec": body}))
    return path


def cli(kube: Kube, *args: str) -> list[str]:
    return [sys.executable, "-m", "agentops", *args, "-n", kube.namespace, "--kubeconfig", str(kube.cluster.kubeconfig)]


def run_cli(kube: Kube, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(kube, *args), capture_output=True, text=True, timeout=60, env=kube.cluster.env())


def start_cli(kube: Kube, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(cli(kube, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=kube.cluster.env())


def requested(kube: Kube, name: str) -> str | None:
    """The check's run request, None while there is no check or no request."""
    shown = kube.cluster.kubectl("get", "-n", kube.namespace, "resiliencecheck", name, "--ignore-not-found", "-o", "json")
    if not shown.stdout.strip():
        return None
    value = (json.loads(shown.stdout)["metadata"].get("annotations") or {}).get(ANNOTATION)
    return str(value) if value else None


def write_status(kube: Kube, name: str, status: dict[str, Any]) -> None:
    """What the operator does: a merge patch of .status through the status subresource."""
    kube.cluster.kubectl("patch", "-n", kube.namespace, "resiliencecheck", name, "--subresource=status",
                         "--type=merge", "-p", json.dumps({"status": status}))


def result(name: str, weight: int, verdict: str, *findings: str) -> dict[str, Any]:
    return {"name": name, "faultType": "Latency", "weight": weight, "state": "Done", "verdict": verdict,
            "findings": list(findings), "startedAt": "2025-01-01T12:00:05Z", "finishedAt": "2025-01-01T12:00:45Z",
            "detectionSeconds": 3.0, "recoverySeconds": 9.5, "restarts": 1,
            "during": {"seconds": 20, "requests": 40, "errors": 2, "errorRate": 0.05, "latencyP95Ms": 180}}


def run_status(request: str, phase: str, experiments: list[dict[str, Any]], **run: Any) -> dict[str, Any]:
    body = {"id": 1, "trigger": "Created", "phase": phase, "generation": 1, "startedAt": "2025-01-01T12:00:00Z",
            "baseline": {"seconds": 5, "requests": 20, "errors": 0, "errorRate": 0.0, "latencyP95Ms": 30},
            "experiments": experiments, **run}
    if phase in ("Completed", "Aborted", "Failed"):
        body["finishedAt"] = "2025-01-01T12:02:00Z"
    return {"phase": phase, "runRequest": request, "runs": [body]}


PASSING = [result("crash", 3, "Resilient"), result("latency", 1, "Resilient"), result("rate-limit", 2, "Resilient")]
FAILING = [result("crash", 3, "Resilient"), result("latency", 1, "Degraded", "p95 latency 412ms during the fault is above 250ms"),
           result("rate-limit", 2, "Vulnerable", "healing escalated (Stalled): restart budget spent")]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("experiment", "field"), [
    ({"name": "crash", "weight": 0, "fault": {"type": "Crash", "duration": "20s"}}, "spec.experiments[0].weight"),
    ({"name": "slow", "fault": {"type": "Latency", "duration": "10s"}}, "spec.experiments[0].fault.latency"),
])
def test_a_check_the_api_server_rejects_exits_2_naming_the_field(kube: Kube, tmp_path: Path,
                                                                  experiment: dict[str, Any], field: str) -> None:
    proc = run_cli(kube, "check", "run", "-f", str(check_file(tmp_path, "bad", experiments=[experiment])), "--wait")
    assert proc.returncode == 2, proc.stderr
    assert field in proc.stderr and "rejected ResilienceCheck" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""


def test_a_file_that_is_not_a_check_exits_2(kube: Kube, tmp_path: Path) -> None:
    agent = tmp_path / "agent.yaml"
    agent.write_text("apiVersion: agentops.dev/v1alpha1\nkind: Agent\nmetadata: {name: chat}\n")
    proc = run_cli(kube, "check", "run", "-f", str(agent))
    assert proc.returncode == 2 and "kind must be ResilienceCheck" in proc.stderr
    proc = run_cli(kube, "check", "run", "-f", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr


# ------------------------------------------------------------------ asking for runs


def test_each_check_run_applies_the_check_and_asks_for_a_new_run(kube: Kube, tmp_path: Path) -> None:
    path = check_file(tmp_path)
    first = run_cli(kube, "check", "run", "-f", str(path))
    assert first.returncode == 0, first.stderr
    assert requested(kube, "suite") == first.stdout.strip()
    # Again, with an edited file: the spec is replaced and a new value asks for another run.
    edited = check_file(tmp_path, passingScore=50, experiments=[{"name": "crash", "fault": {"type": "Crash", "duration": "5s"}}])
    second = run_cli(kube, "check", "run", "-f", str(edited))
    assert second.returncode == 0, second.stderr
    check = kube.get("resiliencecheck", "suite")
    assert requested(kube, "suite") == second.stdout.strip() != first.stdout.strip()
    assert [e["name"] for e in check["spec"]["experiments"]] == ["crash"] and check["spec"]["passingScore"] == 50
    shown = kube.cluster.kubectl("get", "-n", kube.namespace, "resiliencecheck", "suite", "--show-managed-fields", "-o", "json")
    assert [f["manager"] for f in json.loads(shown.stdout)["metadata"]["managedFields"]] == ["agentops-cli"]


# ------------------------------------------------------------------ following a run to the gate


def start_following(kube: Kube, tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """`check run --wait` started, and the run request it wrote (a new value, not the one before)."""
    before = requested(kube, "suite")
    proc = start_cli(kube, "check", "run", "-f", str(check_file(tmp_path)), "--wait", "--timeout", "60s", *args)

    def new_request() -> str | None:
        value = requested(kube, "suite") if proc.poll() is None else None
        return value if value != before else None

    try:
        return proc, wait_for(new_request, timeout=30, what="the run requested")
    except BaseException:
        proc.kill()
        raise


def follow(kube: Kube, tmp_path: Path, *statuses: dict[str, Any], args: tuple[str, ...] = ()) -> tuple[int, str, str]:
    """Start `check run --wait`, answer its request with each status in turn, return (exit, stdout, stderr)."""
    proc, request = start_following(kube, tmp_path, *args)
    try:
        for status in statuses:
            write_status(kube, "suite", {**status, "runRequest": request})
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    return proc.returncode, out, err


def test_a_passing_run_exits_0_with_its_report_and_junit(kube: Kube, tmp_path: Path) -> None:
    junit = tmp_path / "report.xml"
    running = run_status("", "Running", [result("crash", 3, "Resilient"),
                                         {"name": "latency", "weight": 1, "state": "Observing"},
                                         {"name": "rate-limit", "weight": 2, "state": "Pending"}])
    code, out, err = follow(kube, tmp_path, running, run_status("", "Completed", PASSING, score=100, passed=True),
                            args=("--junit", str(junit)))
    assert code == 0, err
    assert out.startswith("# ResilienceCheck `suite` on Agent `chat`") and "Score 100 / 100 — passed" in out
    assert "gate PASSED: score 100 ≥ 80" in err
    # Not a terminal: a progress line per change, none rewritten with \r.
    assert "\r" not in err and "[##########] 3/3 run 1 Completed, score 100" in err
    xmlschema.XMLSchema(JUNIT_SCHEMA).validate(str(junit))


def test_a_failing_run_exits_1_and_a_lower_bar_lets_it_pass(kube: Kube, tmp_path: Path) -> None:
    failing = run_status("", "Completed", FAILING, score=58, passed=False)
    code, out, err = follow(kube, tmp_path, failing)
    assert code == 1, err
    assert "gate FAILED: score 58 is below 80" in err and "`score = round(100 × (3×1 + 1×0.5 + 2×0) / 6) = 58`" in out
    code, _, err = follow(kube, tmp_path, {**failing, "runs": [{**failing["runs"][0], "id": 2}]},
                          args=("--min-score", "50", "--format", "json"))
    assert code == 0, err
    code, _, err = follow(kube, tmp_path, {**failing, "runs": [{**failing["runs"][0], "id": 3}]},
                          args=("--min-score", "50", "--fail-on-vulnerable-weight", "2"))
    assert code == 1 and "experiment rate-limit is Vulnerable with weight 2 (≥ 2)" in err


def test_an_aborted_run_exits_3(kube: Kube, tmp_path: Path) -> None:
    aborted = [{**e, "verdict": "Aborted", "findings": ["the halt switch is on"]} for e in PASSING]
    code, out, err = follow(kube, tmp_path, run_status("", "Aborted", aborted, message="halted: the halt switch is on"))
    assert code == 3, err
    assert "gate NOT COMPLETED: run 1 Aborted: halted: the halt switch is on" in err and "**Aborted**" in out


def test_ctrl_c_stops_following_and_leaves_the_run_going(kube: Kube, tmp_path: Path) -> None:
    proc, request = start_following(kube, tmp_path)
    try:
        write_status(kube, "suite", run_status(request, "Running", [{"name": "crash", "weight": 3, "state": "Settling"}]))
        wait_for(lambda: kube.status("resiliencecheck", "suite").get("runRequest") == request, what="the run started")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert f"stopped following; the run goes on in the cluster (agentops report suite -n {kube.namespace}" in err


def test_a_run_that_never_ends_times_out_with_exit_3_and_the_check_stays(kube: Kube, tmp_path: Path) -> None:
    proc = run_cli(kube, "check", "run", "-f", str(check_file(tmp_path)), "--wait", "--timeout", "2s")
    assert proc.returncode == 3 and "timed out waiting for the requested run" in proc.stderr
    assert kube.get("resiliencecheck", "suite")["metadata"]["name"] == "suite"


# ------------------------------------------------------------------ reports


def test_report_renders_a_run_in_each_format(kube: Kube, tmp_path: Path) -> None:
    assert run_cli(kube, "check", "run", "-f", str(check_file(tmp_path))).returncode == 0
    none_yet = run_cli(kube, "report", "suite")
    assert none_yet.returncode == 3 and "has no run yet" in none_yet.stderr
    write_status(kube, "suite", run_status("r", "Completed", FAILING, score=58, passed=False))
    markdown = run_cli(kube, "report", "suite")
    assert markdown.returncode == 0, markdown.stderr
    assert "| rate-limit | Latency | 2 | Vulnerable |" in markdown.stdout
    document = json.loads(run_cli(kube, "report", "suite", "--format", "json").stdout)
    assert document["run"]["score"] == 58 and [e["verdict"] for e in document["experiments"]] == ["Resilient", "Degraded", "Vulnerable"]
    assert document["experiments"][0]["expect"]["recoveredWithin"] == "25s"
    out = tmp_path / "junit.xml"
    junit = run_cli(kube, "report", "suite", "--format", "junit", "--degraded-as-failure", "--output", str(out))
    assert junit.returncode == 0 and junit.stdout == ""
    xmlschema.XMLSchema(JUNIT_SCHEMA).validate(str(out))
    assert 'failures="2"' in out.read_text()


def test_report_errors_exit_2_in_one_line(kube: Kube, tmp_path: Path) -> None:
    missing = run_cli(kube, "report", "nothing")
    assert missing.returncode == 2 and missing.stderr.strip() == f"agentops report: no ResilienceCheck nothing in namespace {kube.namespace}"
    assert run_cli(kube, "check", "run", "-f", str(check_file(tmp_path))).returncode == 0
    write_status(kube, "suite", run_status("r", "Completed", PASSING, score=100, passed=True))
    no_run = run_cli(kube, "report", "suite", "--run", "9")
    assert no_run.returncode == 2 and "has no run 9" in no_run.stderr
