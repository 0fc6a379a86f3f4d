"""Regenerate the README's UI screenshots from a real `agentops demo` run.

    .venv/bin/python hack/readme-screenshots.py

Starts the demo (its own control plane, operator, both agents behind sidecars, the
UI), waits until both agents are Healthy, applies the sample latency fault to `chat`,
waits until its p95 makes it Degraded, and saves the overview and the chat agent page
from Debian's Chromium into docs/screenshots/. Stops the demo with Ctrl-C (SIGINT).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from agentops.envtest_binaries import find_binaries

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "screenshots"
UI_PORT = 18090


def wait(what: str, probe, timeout: float = 180.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (subprocess.SubprocessError, ValueError, KeyError):
            value = None
        if value:
            return value
        time.sleep(1)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> int:
    log = Path(tempfile.mkdtemp(prefix="agentops-shots-")) / "demo.out"
    with log.open("wb") as out:
        demo = subprocess.Popen([sys.executable, "-m", "agentops", "demo", "--port-base", "28000", "--http-port", "28080",
                                 "--ui-port", str(UI_PORT)], stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        text = wait("the demo", lambda: log.read_text() if "demo is running" in log.read_text() else None)
        kubeconfig = re.search(r"export KUBECONFIG=(\S+)", text).group(1)  # type: ignore[union-attr]
        kubectl = [str(find_binaries() / "kubectl"), f"--kubeconfig={kubeconfig}", "-n", "demo"]

        def phases() -> dict[str, str]:
            items = json.loads(subprocess.run([*kubectl, "get", "agents", "-o", "json"], capture_output=True, text=True, timeout=30).stdout)["items"]
            return {i["metadata"]["name"]: i.get("status", {}).get("phase") for i in items}

        wait("both agents Healthy", lambda: phases() == {"chat": "Healthy", "summary": "Healthy"})
        time.sleep(20)  # some latency history for the charts
        subprocess.run([*kubectl, "apply", "-f", str(REPO / "manifests/samples/fault-latency.yaml")], check=True, timeout=30)
        wait("chat Degraded", lambda: phases().get("chat") == "Degraded")
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1100, "height": 560})
            page.goto(f"http://127.0.0.1:{UI_PORT}/")
            page.screenshot(path=str(OUT / "overview.png"))
            page.set_viewport_size({"width": 1100, "height": 900})
            page.goto(f"http://127.0.0.1:{UI_PORT}/agents/demo/chat")
            page.screenshot(path=str(OUT / "agent.png"), full_page=True)
            browser.close()
        print(f"wrote {OUT / 'overview.png'} and {OUT / 'agent.png'}")
        return 0
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(60)


if __name__ == "__main__":
    sys.exit(main())
