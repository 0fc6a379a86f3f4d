"""Regenerate the README's UI screenshots from a real `agentops demo` run.

    .venv/bin/python hack/readme-screenshots.py

Starts the demo (its own control plane, operator, both agents behind sidecars, the
UI), waits until both agents are Healthy, applies the sample latency fault to `chat`,
waits until its p95 makes it Degraded, and saves the overview and the chat agent page
from Debian's Chromium into docs/screenshots/. Then it deletes that fault, waits until
`chat` is Healthy again, applies the sample ResilienceCheck (CHECK_SAMPLE), waits until
its run has ended (about ten minutes) and saves the check's page as check.png. Stops the
demo with Ctrl-C (SIGINT).

    .venv/bin/python hack/readme-screenshots.py --check-only

skips the overview and agent pages (a check run alone).
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
from collections.abc import Callable
from pathlib import Path

import yaml
from playwright.sync_api import Page, sync_playwright

from agentops.envtest_binaries import find_binaries

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "screenshots"
UI_PORT = 18090
LATENCY_SAMPLE = REPO / "manifests" / "samples" / "fault-latency.yaml"
CHECK_SAMPLE = REPO / "manifests" / "samples" / "check-chat.yaml"
# The sample's run takes about ten minutes (its header says so); twice that before giving up.
CHECK_RUN_TIMEOUT_S = 20 * 60.0
FINAL_RUN_PHASES = ("Completed", "Aborted", "Failed")


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


def check_page(page: Page, kubectl: list[str], phases: Callable[[], dict[str, str]]) -> None:
    """Run the sample check against `chat` and save its page once the run has ended."""
    name = yaml.safe_load(CHECK_SAMPLE.read_text())["metadata"]["name"]
    wait("chat Healthy before the check", lambda: phases().get("chat") == "Healthy")
    subprocess.run([*kubectl, "apply", "-f", str(CHECK_SAMPLE)], check=True, timeout=30)

    def run_phase() -> str | None:
        out = subprocess.run([*kubectl, "get", "resiliencecheck", name, "-o", "json"], capture_output=True, text=True, timeout=30)
        runs = json.loads(out.stdout).get("status", {}).get("runs") or [{}]
        phase = runs[0].get("phase")
        return phase if phase in FINAL_RUN_PHASES else None

    print(f"waiting for the run of {name} (about ten minutes)")
    print(f"{name}: run {wait(f'the run of {name} to end', run_phase, timeout=CHECK_RUN_TIMEOUT_S)}")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"http://127.0.0.1:{UI_PORT}/checks/demo/{name}")
    page.locator("#experiments").wait_for()
    page.screenshot(path=str(OUT / "check.png"), full_page=True)


def main() -> int:
    check_only = "--check-only" in sys.argv[1:]
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
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1100, "height": 560})
            if not check_only:
                time.sleep(20)  # some latency history for the charts
                subprocess.run([*kubectl, "apply", "-f", str(LATENCY_SAMPLE)], check=True, timeout=30)
                wait("chat Degraded", lambda: phases().get("chat") == "Degraded")
                page.goto(f"http://127.0.0.1:{UI_PORT}/")
                page.screenshot(path=str(OUT / "overview.png"))
                page.set_viewport_size({"width": 1100, "height": 900})
                page.goto(f"http://127.0.0.1:{UI_PORT}/agents/demo/chat")
                page.screenshot(path=str(OUT / "agent.png"), full_page=True)
                print(f"wrote {OUT / 'overview.png'} and {OUT / 'agent.png'}")
                # The check needs chat in its steady state: the latency fault goes first.
                subprocess.run([*kubectl, "delete", "-f", str(LATENCY_SAMPLE), "--ignore-not-found"], check=True, timeout=60)
            check_page(page, kubectl, phases)
            browser.close()
        print(f"wrote {OUT / 'check.png'}")
        return 0
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(60)


if __name__ == "__main__":
    sys.exit(main())
