"""Healing benchmark: detection latency and crash-to-healthy time in the local setup.

The local setup is `agentops demo` itself, run as a child on free ports: its own
control plane, the operator, both sample agents supervised by their sidecars (probe
every 1 s), the read-only UI and its 2 requests per second per agent. Each trial:

    kubectl apply a Crash fault (t0) → status says Unhealthy (detection)
    → the operator restarts the agent through its sidecar → status says Healthy
      again (crash-to-healthy), incident Healed → the fault is deleted.

Trials alternate between the two agents. Each starts after a random pause of up to one
probe interval: a trial otherwise begins right after the previous one settled, at the
same point of the sidecar's 1 s probe cycle every time, and the detection time would
measure that phase (it did: one agent always ~2.1 s, the other ~2.9 s, or both ~3.0 s
after an unrelated change) instead of the distribution a real crash meets. So that
trials are independent, the bench
widens the sample agents' budget (100 restarts per 10 min) and shortens their backoff
to 1 s before it starts; everything on the detection and restart path is the demo's.
Times are read from a `kubectl get --watch` stream of each Agent (one line per status
change, stamped on arrival), so polling adds no delay.

Also measured: halt latency — from `kubectl annotate namespace ... agentops.dev/halt`
returning to the sidecar no longer enforcing a latency fault (its /v1/state).

Numbers are printed and written to artifacts/bench_healing.json; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench_common import REPO, Child, Results, Target, free_port, machine, percentile, write_json

from agentops.demo import NAMESPACE as NS  # noqa: E402  (the demo's namespace)
TARGET_DETECTION_P99_S = 5.0
TARGET_RECOVERY_P99_S = 15.0


class AgentWatch:
    """`kubectl get agent NAME --watch`: every status change, stamped when it arrives."""

    def __init__(self, kubectl: list[str], name: str) -> None:
        template = '{.status.phase} {.status.restartCount} {.status.healing.state}{"\\n"}'
        self.proc = subprocess.Popen([*kubectl, "get", "agent", name, "-n", NS, "--watch", "-o", f"jsonpath={template}"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: list[tuple[float, str, int, str]] = []  # (monotonic, phase, restartCount, healing state)
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            if not parts:
                continue
            with self._cond:
                restarts = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
                self.lines.append((time.monotonic(), parts[0], restarts, parts[2] if len(parts) > 2 else ""))
                self._cond.notify_all()

    def wait(self, since: float, test: Any, timeout: float) -> float | None:
        """The arrival time of the first line after `since` that passes `test`, else None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, phase, restarts, state in self.lines:
                    if at >= since and test(phase, restarts, state):
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def kubectl_run(kubectl: list[str], *args: str, stdin: str | None = None) -> None:
    out = subprocess.run([*kubectl, *args], input=stdin, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {out.stderr.strip()}")


def crash_fault(name: str, agent: str) -> str:
    return json.dumps({"apiVersion": "agentops.dev/v1alpha1", "kind": "Fault", "metadata": {"name": name, "namespace": NS},
                       "spec": {"target": {"agent": agent}, "type": "Crash", "duration": "10m", "crash": {}}})


PROBE_INTERVAL_S = 1.0  # the demo's sidecars probe every second


def latency_fault(name: str, agent: str) -> str:
    return json.dumps({"apiVersion": "agentops.dev/v1alpha1", "kind": "Fault", "metadata": {"name": name, "namespace": NS},
                       "spec": {"target": {"agent": agent}, "type": "Latency", "duration": "10m", "latency": {"delayMs": 100}}})


def enforced(admin_port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/v1/state", timeout=5) as r:
        return [f["name"] for f in json.loads(r.read())["enforced"]]


def start_demo(logs: Path) -> tuple[Child, list[str], dict[str, int]]:
    http_port, ui_port = free_port(), free_port()
    base = 20000 + free_port() % 20000  # sidecars at base+1/2, agents at base+10001/2, admin at base+1901/2
    demo = Child("demo", [sys.executable, "-m", "agentops", "demo", "--http-port", str(http_port), "--ui-port", str(ui_port),
                          "--port-base", str(base)], dict(os.environ), logs / "demo.log")
    demo.start()
    deadline = time.monotonic() + 180
    kubeconfig = None
    while time.monotonic() < deadline and kubeconfig is None:
        demo.check_alive()
        found = re.search(r"export KUBECONFIG=(\S+)", demo.log_path.read_text(errors="replace"))
        kubeconfig = found.group(1) if found else None
        time.sleep(0.2)
    if kubeconfig is None:
        raise RuntimeError(f"the demo did not come up within 180 s (log {demo.log_path})")
    kubectl_path = re.search(r"\n\s+(\S+kubectl) get agents", demo.log_path.read_text()).group(1)  # type: ignore[union-attr]
    return demo, [kubectl_path, f"--kubeconfig={kubeconfig}"], {"chat": base + 1901, "summary": base + 1902}


def trial(kubectl: list[str], watch: AgentWatch, agent: str, n: int) -> tuple[float | None, float | None]:
    name = f"bench-crash-{n}"
    restarts_before = watch.lines[-1][2] if watch.lines else 0
    time.sleep(random.uniform(0.0, PROBE_INTERVAL_S))  # a crash comes at any point of the probe cycle
    t0 = time.monotonic()
    kubectl_run(kubectl, "apply", "-f", "-", stdin=crash_fault(name, agent))
    unhealthy = watch.wait(t0, lambda phase, _r, _s: phase == "Unhealthy", timeout=60)
    healthy = None
    if unhealthy is not None:
        healthy = watch.wait(unhealthy, lambda phase, restarts, _s: phase == "Healthy" and restarts > restarts_before, timeout=90)
    kubectl_run(kubectl, "delete", "fault", name, "-n", NS, "--wait=true")
    # The next trial starts from a settled agent: Healthy, nothing being verified.
    watch.wait(time.monotonic() - 60, lambda phase, restarts, state: phase == "Healthy" and restarts > restarts_before and state == "Idle",
               timeout=60)
    return (None if unhealthy is None else unhealthy - t0), (None if healthy is None else healthy - t0)


def halt_trial(kubectl: list[str], admin_port: int, n: int) -> float | None:
    name = f"bench-halt-{n}"
    kubectl_run(kubectl, "apply", "-f", "-", stdin=latency_fault(name, "summary"))
    deadline = time.monotonic() + 30
    while name not in enforced(admin_port):
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)
    kubectl_run(kubectl, "annotate", "namespace", NS, f"agentops.dev/halt=bench trial {n}", "--overwrite")
    t0 = time.monotonic()
    took = None
    while time.monotonic() < t0 + 30:
        if name not in enforced(admin_port):
            took = time.monotonic() - t0
            break
        time.sleep(0.01)
    kubectl_run(kubectl, "annotate", "namespace", NS, "agentops.dev/halt-")
    kubectl_run(kubectl, "delete", "fault", name, "-n", NS, "--wait=true")
    return took


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--trials", type=int, default=20, help="crash trials, alternating between the two agents (default 20)")
    p.add_argument("--halt-trials", type=int, default=5, help="halt-switch trials (default 5)")
    p.add_argument("--json", type=Path, default=REPO / "artifacts" / "bench_healing.json", help="where to write the results")
    args = p.parse_args()
    if args.trials < 1 or args.halt_trials < 0:
        p.error("--trials must be at least 1 and --halt-trials at least 0")
    res = Results()
    logs = Path(tempfile.mkdtemp(prefix="bench-healing-"))
    demo, kubectl, admin = start_demo(logs)
    watches: dict[str, AgentWatch] = {}
    detection: list[float] = []
    recovery: list[float] = []
    missed = 0
    try:
        for agent in ("chat", "summary"):
            kubectl_run(kubectl, "patch", "agent", agent, "-n", NS, "--type", "merge", "-p",
                        json.dumps({"spec": {"healing": {"budget": {"maxRestarts": 100}, "backoff": {"initial": "1s", "max": "1s"}}}}))
            watches[agent] = AgentWatch(kubectl, agent)
        for agent, watch in watches.items():
            if watch.wait(0, lambda phase, _r, _s: phase == "Healthy", timeout=90) is None:
                raise RuntimeError(f"{agent} did not become Healthy (log {demo.log_path})")
        print(f"bench-healing: demo up; {args.trials} crash trials", flush=True)
        for n in range(args.trials):
            agent = ("chat", "summary")[n % 2]
            detected, healed = trial(kubectl, watches[agent], agent, n)
            demo.check_alive()
            print(f"  trial {n + 1} ({agent}): Unhealthy after {detected if detected is None else round(detected, 2)} s, "
                  f"Healthy after {healed if healed is None else round(healed, 2)} s", flush=True)
            if detected is None or healed is None:
                missed += 1
            if detected is not None:
                detection.append(detected)
            if healed is not None:
                recovery.append(healed)
        halts = [h for h in (halt_trial(kubectl, admin["summary"], n) for n in range(args.halt_trials)) if h is not None]
        res.add("trials", args.trials, "", "crash trials")
        res.add("trials_missed", missed, "", "trials that timed out (not counted below)")
        res.add("detection_p50_s", percentile(detection, 0.50), "s", "detection (crash fault applied → Unhealthy), p50")
        res.add("detection_p99_s", percentile(detection, 0.99), "s", "detection, p99", Target(TARGET_DETECTION_P99_S))
        res.add("recovery_p50_s", percentile(recovery, 0.50), "s", "crash fault applied → restarted → Healthy, p50")
        res.add("recovery_p99_s", percentile(recovery, 0.99), "s", "crash fault applied → restarted → Healthy, p99",
                Target(TARGET_RECOVERY_P99_S))
        if halts:
            res.add("halt_p50_s", percentile(halts, 0.50), "s", "halt annotation → sidecar stops enforcing, p50")
            res.add("halt_max_s", max(halts), "s", f"halt annotation → sidecar stops enforcing, max of {len(halts)}", Target(1.0))
    finally:
        for watch in watches.values():
            watch.stop()
        demo.stop()
    print()
    print(res.table())
    write_json(args.json, vars(args), res, machine=machine(), detection_s=detection, recovery_s=recovery)
    print(f"\nresults written to {args.json}; demo logs in {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
