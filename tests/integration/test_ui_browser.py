"""The read-only UI in a real browser: Debian's Chromium driven by Playwright.

The UI runs as its own process with read-only credentials (ui_harness), against the
real control plane and the real operator; agents get their health from telemetry
reports posted as a sidecar would. Screenshots land in artifacts/screenshots/.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from operator_harness import Kube, OperatorProcess, agent_manifest, fault_manifest, report, wait_for
from test_ui_check_pages import check_manifest, status_completed, status_running, write_status
from ui_harness import REPO_ROOT, UIProcess

from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright

if TYPE_CHECKING:  # conftest is not imported at run time: fixtures arrive by name
    from conftest import Cluster

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
HOSTILE = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


# Module scope, not session: Playwright's sync API runs its own event loop in this
# thread while it is open, which later asyncio tests must not find there.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make browser` (hack/install-browser.sh)", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    pg.on("dialog", dismiss)
    try:
        yield pg
    finally:
        assert not dialogs, f"a page opened dialogs (script ran): {dialogs}"
        context.close()


def healthy(operator: OperatorProcess, kube: Kube, name: str) -> None:
    wait_for(lambda: operator.post_telemetry(report(name, kube.namespace)).status_code == 202, timeout=15, what=f"{name} report accepted")
    wait_for(lambda: kube.status("agent", name).get("phase") == "Healthy", timeout=15, what=f"{name} Healthy")


def card(page: Page, namespace: str, name: str) -> Any:
    return page.locator(f'article.agent-card[data-agent="{namespace}/{name}"]')


def test_overview_shows_a_card_per_agent_with_its_phase(operator: OperatorProcess, kube: Kube, ui: UIProcess, page: Page) -> None:
    kube.apply(agent_manifest("alpha"))
    kube.apply(agent_manifest("beta"))
    healthy(operator, kube, "alpha")
    page.goto(ui.url + "/")
    expect(card(page, kube.namespace, "alpha")).to_have_attribute("data-phase", "Healthy", timeout=5000)
    expect(card(page, kube.namespace, "alpha").locator(".phase-badge")).to_have_text("Healthy")
    expect(card(page, kube.namespace, "beta")).to_have_attribute("data-phase", "Unknown")
    expect(card(page, kube.namespace, "beta").locator(".phase-badge")).to_have_text("Unknown")
    assert page.locator("article.agent-card").count() == 2
    # The badge colours differ by phase (not text alone, not colour alone).
    colours = [card(page, kube.namespace, n).locator(".phase-badge").evaluate("e => getComputedStyle(e).backgroundColor")
               for n in ("alpha", "beta")]
    assert colours[0] != colours[1], colours


def test_live_updates_without_reload_and_screenshots(operator: OperatorProcess, kube: Kube, ui: UIProcess, page: Page) -> None:
    kube.apply(agent_manifest("chat"))
    healthy(operator, kube, "chat")
    for i in range(3):  # a little history for the latency chart
        operator.post_telemetry(report("chat", kube.namespace, latency_ms=[20, 250, 60][i]))
    page.goto(ui.url + "/")
    chat = card(page, kube.namespace, "chat")
    expect(chat).to_have_attribute("data-phase", "Healthy", timeout=5000)
    page.evaluate("window.__sameDocument = true")

    kube.apply(fault_manifest("slow-chat", agent="chat", params={"delayMs": 2500}))
    applied = time.monotonic()
    # Within 2 s of `kubectl apply` returning, without a reload.
    chat.locator('li.fault[data-fault="slow-chat"]').wait_for(timeout=2000)
    appeared = time.monotonic() - applied
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

    # The phase changes (errors past the threshold): the badge follows, still no reload.
    for _ in range(6):  # enough failing windows to outweigh the healthy ones in the window
        assert operator.post_telemetry(report("chat", kube.namespace, errors=20)).status_code == 202
    expect(chat).to_have_attribute("data-phase", "Unhealthy", timeout=10000)
    expect(chat.locator(".phase-badge")).to_have_text("Unhealthy")
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"

    page.goto(f"{ui.url}/agents/{kube.namespace}/chat")
    expect(page.locator("#conditions")).to_contain_text("Ready")
    expect(page.locator("#faults")).to_contain_text("slow-chat")
    expect(page.locator("#events")).to_contain_text("FaultActivated", timeout=10000)
    page.screenshot(path=str(SCREENSHOTS / "agent.png"), full_page=True)
    page.goto(f"{ui.url}/faults")
    expect(page.locator(f'#faults tr[data-fault="{kube.namespace}/slow-chat"]')).to_have_attribute("data-phase", "Active")
    page.screenshot(path=str(SCREENSHOTS / "faults.png"), full_page=True)
    print(f"fault appeared on the overview {appeared * 1000:.0f} ms after kubectl apply returned")


def test_html_in_a_message_renders_as_text(operator: OperatorProcess, kube: Kube, ui: UIProcess, page: Page) -> None:
    kube.apply(agent_manifest("alpha"))
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    kube.apply(json.dumps({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "hostile-event"},
        "involvedObject": {"apiVersion": "agentops.dev/v1alpha1", "kind": "Agent", "name": "alpha", "namespace": kube.namespace},
        "reason": "Injected", "message": HOSTILE, "type": "Warning", "count": 1,
        "firstTimestamp": now, "lastTimestamp": now, "source": {"component": "test"},
    }))
    page.goto(f"{ui.url}/agents/{kube.namespace}/alpha")
    expect(page.locator("#events")).to_contain_text(HOSTILE, timeout=10000)  # shown, as text
    assert page.evaluate("window.__xss === undefined"), "injected markup ran"
    assert page.locator("#events img").count() == 0 and page.locator("#events script").count() == 0


def test_every_route_refuses_writes(operator: OperatorProcess, kube: Kube, ui: UIProcess, page: Page) -> None:
    kube.apply(agent_manifest("alpha"))
    kube.apply(fault_manifest("f1", agent="alpha"))
    ns = kube.namespace
    routes = ["/", "/faults", f"/agents/{ns}/alpha", "/api/agents", f"/api/agents/{ns}/alpha", "/api/faults",
              "/api/events", "/live", "/healthz", "/no-such-page", f"/agents/{ns}/nobody", "/checks", f"/checks/{ns}/nobody",
              "/api/checks"]
    page.goto(ui.url + "/")
    for route in routes:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            response = page.request.fetch(ui.url + route, method=method, data="{}", headers={"Content-Type": "application/json"})
            assert response.status == 405, (method, route, response.status)
    # Nothing changed in the cluster.
    assert kube.get("fault", "f1")["metadata"]["name"] == "f1"


def test_complete_without_javascript_and_readable_on_a_narrow_screen(operator: OperatorProcess, kube: Kube, ui: UIProcess,
                                                                      browser: Browser) -> None:
    for name in ("alpha", "beta"):
        kube.apply(agent_manifest(name))
    healthy(operator, kube, "alpha")
    context = browser.new_context(viewport={"width": 375, "height": 812}, java_script_enabled=False)
    try:
        pg = context.new_page()
        pg.goto(ui.url + "/")
        cards = pg.locator("article.agent-card")
        expect(cards).to_have_count(2)
        boxes = [cards.nth(i).bounding_box() for i in range(2)]
        assert all(b is not None and b["x"] >= 0 and b["x"] + b["width"] <= 375 for b in boxes), boxes
        assert boxes[0]["y"] != boxes[1]["y"] and boxes[0]["x"] == boxes[1]["x"], boxes  # type: ignore[index]  # one column; not None: asserted above
        assert pg.evaluate("document.documentElement.scrollWidth") <= 375, "the page scrolls sideways"
        expect(card(pg, kube.namespace, "alpha").locator(".phase-badge")).to_have_text("Healthy")
    finally:
        context.close()


def test_check_page_shows_verdicts_and_shaded_fault_windows_and_follows_the_status(
        cluster: Cluster, kube: Kube, ui: UIProcess, page: Page) -> None:
    """No operator: the test writes the check's status through the status subresource
    (test_ui_check_pages), first a run under way, then the same run judged."""
    ns = kube.namespace
    kube.apply(agent_manifest("web"))
    kube.apply(check_manifest("web-check", "web"))
    write_status(cluster, kube, "web-check", status_running())
    page.goto(f"{ui.url}/checks/{ns}/web-check")
    slow = page.locator('#experiments tr[data-experiment="slow"]')
    crash = page.locator('#experiments tr[data-experiment="crash"]')
    expect(slow.locator(".verdict")).to_have_text("Resilient", timeout=10000)
    expect(crash.locator(".verdict")).to_have_text("pending")
    bands = page.locator("svg.run-chart g.fault-band")
    expect(bands).to_have_count(2)
    expect(bands.nth(0).locator("text.band-label")).to_have_text("slow")
    boxes = [bands.nth(i).locator("rect.band-area").bounding_box() for i in range(2)]
    assert all(b is not None and b["width"] > 10 for b in boxes), boxes
    assert boxes[0]["x"] + boxes[0]["width"] <= boxes[1]["x"], boxes  # type: ignore[index]  # not None: asserted above
    # Shaded by the stylesheet (the CSP allows no inline style): a fill with some opacity.
    opacity = bands.nth(0).locator("rect.band-area").evaluate("e => getComputedStyle(e).fillOpacity")
    assert 0 < float(opacity) < 1, opacity
    assert page.locator("svg.run-chart polyline.series-latency").count() >= 1
    page.evaluate("window.__sameDocument = true")

    write_status(cluster, kube, "web-check", status_completed())
    expect(crash.locator(".verdict")).to_have_text("Vulnerable", timeout=10000)
    expect(page.locator("#run-summary .run-score")).to_have_text("33")
    expect(page.locator("#run-summary .run-passed")).to_have_text("Not passed")
    expect(page.locator("svg.run-chart g.fault-band.band-Vulnerable")).to_have_count(1)
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
    colours = [row.locator(".verdict").evaluate("e => getComputedStyle(e).backgroundColor") for row in (slow, crash)]
    assert colours[0] != colours[1], colours
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "check.png"), full_page=True)
