"""`agentops demo` as a new user runs it: its own control plane, operator, agents, sidecars.

Started with a free port range; checked through the kubeconfig it prints; stopped with
Ctrl-C (SIGINT), after which nothing it started may still be running.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from operator_harness import free_port, wait_for

from agentops.envtest_binaries import find_binaries

REPO_ROOT = Path(__file__).resolve().parents[2]


def _free_base() -> int:
    """A base port whose derived ports (see agentops.demo.SampleAgent) are all free."""
    for _ in range(50):
        base = free_port() % 20000 + 20000
        ports = [base + d for d in (1, 2, 1901, 1902, 10001, 10002)]
        if all(_is_free(p) for p in ports):
            return base
    raise AssertionError("no free port range for the demo")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _children(pid: int) -> set[int]:
    """Every descendant of `pid`, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.mark.timeout(240)
def test_demo_runs_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    base, http_port, ui_port = _free_base(), free_port(), free_port()
    out = (tmp_path / "demo.out").open("wb")
    demo = subprocess.Popen([sys.executable, "-m", "agentops", "demo", "--port-base", str(base), "--http-port", str(http_port),
                             "--ui-port", str(ui_port)],
                            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    out.close()
    descendants: set[int] = set()
    try:
        def started() -> str | bool:
            text = (tmp_path / "demo.out").read_text()
            return text if "demo is running" in text or demo.poll() is not None else False

        text = str(wait_for(started, timeout=120, what="the demo to start"))
        assert "demo is running" in text, text
        kubeconfig = re.search(r"export KUBECONFIG=(\S+)", text)
        assert kubeconfig, text
        kubectl = [str(find_binaries() / "kubectl"), f"--kubeconfig={kubeconfig.group(1)}", "-n", "demo"]

        def phases() -> dict[str, str]:
            items = json.loads(subprocess.run([*kubectl, "get", "agents", "-o", "json"], capture_output=True, text=True, timeout=30).stdout)["items"]
            return {i["metadata"]["name"]: i.get("status", {}).get("phase") for i in items}

        # Its own traffic makes both agents Healthy.
        wait_for(lambda: phases() == {"chat": "Healthy", "summary": "Healthy"}, timeout=90, interval=1, what="both demo agents Healthy")
        # The printed example fault reaches the chat agent's sidecar.
        subprocess.run([*kubectl, "apply", "-f", str(REPO_ROOT / "manifests/samples/fault-latency.yaml")], check=True, timeout=30)
        wait_for(lambda: [f["name"] for f in requests.get(f"http://127.0.0.1:{base + 1901}/v1/state", timeout=5).json()["enforced"]] == ["chat-latency"],
                 timeout=20, what="the sample fault enforced by the chat sidecar")
        r = requests.post(f"http://127.0.0.1:{base + 2}/v1/summarize", json={"text": "One. Two.", "maxSentences": 1}, timeout=10)
        assert r.status_code == 200 and r.json()["summary"]
        # The UI it started shows both agents (with its own read-only credentials).
        assert f"http://127.0.0.1:{ui_port}/" in text
        agents = requests.get(f"http://127.0.0.1:{ui_port}/api/agents", timeout=5).json()
        assert "chat" in json.dumps(agents) and "summary" in json.dumps(agents)
        descendants = _children(demo.pid)
        assert len(descendants) >= 7, descendants  # etcd, apiserver, operator, 2 sidecars, 2 agents, UI
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            code = demo.wait(60)
        except subprocess.TimeoutExpired:
            demo.kill()
            raise
    assert code == 0, (tmp_path / "demo.out").read_text()[-3000:]
    time.sleep(0.5)  # let the kernel reap the last children
    alive = {pid for pid in descendants if Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]}
    assert not alive, f"left running after Ctrl-C: {alive}"
    for port in (base + 1, base + 2, base + 10001, base + 10002, base + 1901, base + 1902, http_port, ui_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
