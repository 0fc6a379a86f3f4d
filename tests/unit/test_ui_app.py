"""The UI's HTTP surface without a cluster: read-only by construction, the pages' markers,
escaping end to end, partial fragments, the JSON mirror and the live event stream."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from agentops_ui.app import build_app
from agentops_ui.changes import ChangeFeed
from agentops_ui.context import UIContext
from agentops_ui.store import AGENT, EVENT, FAULT, Store

NOW = 1_700_000_000.0
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'
NS = "ns"

ROUTES = ["/", "/faults", f"/agents/{NS}/chat", f"/agents/{NS}/nobody", "/api/agents", f"/api/agents/{NS}/chat",
          "/api/faults", "/api/events", "/live", "/healthz", "/readyz", "/metrics", "/static/live.js", "/static/style.css",
          "/no-such-page", "/api/no-such-thing", "/agents", "/checks", f"/checks/{NS}/nobody", "/api/checks",
          f"/api/checks/{NS}/nobody"]
WRITE_METHODS = ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "MKCOL", "LOCK"]


def populate(store: Store) -> None:
    store.apply(AGENT, "ADDED", {
        "metadata": {"name": "chat", "namespace": NS, "resourceVersion": "1",
                     "labels": {"team": HOSTILE}, "annotations": {"note": HOSTILE}},
        "spec": {"runtime": {"type": "Process"}},
        "status": {"phase": "Unhealthy", "restartCount": 1,
                   "metrics": {"latencyP95Ms": 2500, "errorRate": 0.3, "requestRate": 4.0},
                   "telemetry": {"lastReportTime": "2023-11-14T22:13:15Z"},
                   "conditions": [{"type": "Ready", "status": "False", "reason": "ErrorRateHigh", "message": HOSTILE,
                                   "lastTransitionTime": "2023-11-14T22:13:00Z"}],
                   "activeFaults": [{"name": "slow", "type": "Latency", "expiresAt": "2023-11-14T22:14:20Z", "applied": True}],
                   "incidents": [{"type": "Restart", "detectedAt": "2023-11-14T22:13:01Z", "message": HOSTILE}]},
    }, now=NOW)
    store.apply(AGENT, "ADDED", {"metadata": {"name": HOSTILE, "namespace": NS, "resourceVersion": "1"}}, now=NOW)
    store.apply(FAULT, "ADDED", {
        "metadata": {"name": "slow", "namespace": NS, "resourceVersion": "1"},
        "spec": {"target": {"agent": "chat"}, "type": "Latency", "duration": "2m"},
        "status": {"phase": "Active", "targets": ["chat"], "startedAt": "2023-11-14T22:12:20Z",
                   "expiresAt": "2023-11-14T22:14:20Z", "message": HOSTILE},
    }, now=NOW)
    store.apply(EVENT, "ADDED", {
        "metadata": {"name": "e1", "namespace": NS, "resourceVersion": "1"},
        "involvedObject": {"kind": "Agent", "name": "chat", "namespace": NS},
        "type": "Warning", "reason": "AgentUnhealthy", "message": HOSTILE, "count": 3, "lastTimestamp": "2023-11-14T22:13:00Z",
    }, now=NOW)


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
async def client(store: Store) -> AsyncIterator[TestClient[Any, Any]]:
    feed = ChangeFeed()
    store.on_change = feed.publish
    populate(store)
    app = build_app(UIContext(store, feed, (NS,), clock=lambda: NOW))
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.mark.parametrize("method", WRITE_METHODS)
async def test_every_method_but_get_and_head_is_refused_on_every_path(client: TestClient[Any, Any], method: str) -> None:
    for route in ROUTES:
        async with client.request(method, route, data=b'{"spec": {}}',
                                  headers={"Content-Type": "application/json", "Connection": "close"}) as r:
            assert r.status == 405, (method, route, r.status)
            assert r.headers["Allow"] == "GET, HEAD"
            assert r.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_method_http_does_not_know_never_reaches_the_app(client: TestClient[Any, Any]) -> None:
    # aiohttp's HTTP parser rejects tokens outside the registered methods before routing.
    async with client.request("BREW", "/") as r:
        assert r.status == 400


async def test_get_and_head_answer_with_the_security_headers(client: TestClient[Any, Any]) -> None:
    for route in ROUTES:
        if route == "/live":
            continue
        for method in ("GET", "HEAD"):
            async with client.request(method, route) as r:
                expected = 404 if ("nobody" in route or "no-such" in route or route == "/agents") else 200
                assert r.status == expected, (method, route, r.status)
                csp = r.headers["Content-Security-Policy"]
                assert "default-src 'self'" in csp and "script-src 'self';" in csp and "unsafe-inline" not in csp
                assert r.headers["Referrer-Policy"] == "no-referrer"
                assert r.headers["X-Content-Type-Options"] == "nosniff"


def assert_escaped(html: str) -> None:
    assert "<script>alert" not in html and "<img src=x" not in html and 'onerror="' not in html
    # The page's only script is its own, from its own origin.
    assert re.findall(r"<script[^>]*>", html) in ([], [f'<script src="{m}" defer>' for m in re.findall(r'src="(/static/live\.js\?v=\w+)"', html)])


async def test_overview_cards(client: TestClient[Any, Any]) -> None:
    html = await (await client.get("/")).text()
    assert_escaped(html)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert '<main id="content">' in html and 'href="/faults"' in html
    card = re.search(r'<article class="agent-card" data-agent="ns/chat" data-phase="Unhealthy">.*?</article>', html)
    assert card is not None
    c = card.group(0)
    assert '<span class="phase-badge phase-Unhealthy">Unhealthy</span>' in c
    assert '<a href="/agents/ns/chat">chat</a>' in c
    assert '<ul class="faults"><li class="fault applied" data-fault="slow"' in c and ">slow (Latency)</li>" in c
    assert "2.50 s" in c and "30.0 %" in c and "4.00 req/s" in c and "5s ago" in c
    assert '<svg class="latency-chart"' in c
    assert "team=&lt;script&gt;alert(1)&lt;/script&gt;" in c  # a label shown as text
    # The hostile agent name, escaped in text, in data-agent and in its (URL-quoted) link.
    assert 'data-agent="ns/&lt;script&gt;alert(1)&lt;/script&gt;' in html
    assert 'href="/agents/ns/%3Cscript%3Ealert%281%29%3C%2Fscript%3E' in html
    assert '<span class="phase-badge phase-Unknown">Unknown</span>' in html


async def test_agent_page_sections(client: TestClient[Any, Any]) -> None:
    r = await client.get(f"/agents/{NS}/chat")
    html = await r.text()
    assert r.status == 200
    assert_escaped(html)
    assert '<table id="conditions">' in html and "ErrorRateHigh" in html
    incidents = re.search(r'<section id="incidents">.*?</section>', html)
    assert incidents is not None and "detectedAt" in incidents.group(0) and "&lt;script&gt;" in incidents.group(0)
    events = re.search(r'<section id="events">.*?</section>', html)
    assert events is not None and "AgentUnhealthy" in events.group(0) and "&lt;script&gt;alert(1)" in events.group(0)
    faults = re.search(r'<section id="faults">.*?</section>', html)
    assert faults is not None and 'data-fault="ns/slow" data-phase="Active"' in faults.group(0)


async def test_agent_page_shows_the_model_calls(client: TestClient[Any, Any], store: Store) -> None:
    store.apply(AGENT, "ADDED", {
        "metadata": {"name": "llm", "namespace": NS, "resourceVersion": "1"},
        "spec": {"models": {"providers": ["OpenAI", "Anthropic"]}},
        "status": {"phase": "Degraded", "model": {
            "calls": 40, "errorRate": 0.25, "errors": {"rate_limit": 8, "stream_interrupted": 2}, "retries": 6,
            "streamsInterrupted": 2, "latencyP95Ms": 2100.0, "timeToFirstTokenP95Ms": 420.0, "inputTokens": 9000,
            "outputTokens": 1500, "tokensPerMinute": 10500.0, "costPerHourUsd": 0.19, "providers": ["OpenAI"]}},
    }, now=NOW)
    html = await (await client.get(f"/agents/{NS}/llm")).text()
    section = re.search(r'<section id="model">.*?</section>', html)
    assert section is not None
    text = section.group(0)
    for shown in ("25.0 %", "rate_limit 8, stream_interrupted 2", "420 ms", "2.10 s", "10,500", "9,000 in, 1,500 out",
                  "$0.19 / h", "<dd>OpenAI</dd>"):
        assert shown in text, shown
    api = await (await client.get(f"/api/agents/{NS}/llm")).json()
    assert api["agent"]["model"]["calls"] == 40 and api["agent"]["modelProviders"] == ["OpenAI", "Anthropic"]
    # Declared providers and no call yet: the page says so; nothing declared, no section.
    store.apply(AGENT, "ADDED", {"metadata": {"name": "quiet-llm", "namespace": NS, "resourceVersion": "1"},
                                 "spec": {"models": {"providers": ["Gemini"]}}}, now=NOW)
    assert "No model call reported yet (declared providers: Gemini)" in await (await client.get(f"/agents/{NS}/quiet-llm")).text()
    assert '<section id="model">' not in await (await client.get(f"/agents/{NS}/chat")).text()


async def test_agent_page_without_incidents_says_so(client: TestClient[Any, Any], store: Store) -> None:
    store.apply(AGENT, "ADDED", {"metadata": {"name": "quiet", "namespace": NS, "resourceVersion": "1"}}, now=NOW)
    html = await (await client.get(f"/agents/{NS}/quiet")).text()
    assert "No incidents recorded" in html and '<section id="events">' in html


async def test_unknown_agent_is_a_404_page_and_a_404_json(client: TestClient[Any, Any]) -> None:
    r = await client.get(f"/agents/{NS}/nobody")
    assert r.status == 404 and "Agent not found" in await r.text()
    r = await client.get(f"/api/agents/{NS}/nobody")
    assert r.status == 404 and "error" in await r.json()
    r = await client.get("/no-such-page")
    assert r.status == 404 and "<main" in await r.text()


async def test_faults_page(client: TestClient[Any, Any]) -> None:
    html = await (await client.get("/faults")).text()
    assert_escaped(html)
    row = re.search(r'<tr data-fault="ns/slow" data-phase="Active">.*?</tr>', html)
    assert row is not None
    assert "1m 0s left" not in row.group(0) and "1m left" in row.group(0)  # expires 60 s after NOW
    assert '<a href="/agents/ns/chat">chat</a>' in row.group(0) and "Latency" in row.group(0)
    assert '<table id="faults">' in html


async def test_partial_is_the_content_only(client: TestClient[Any, Any]) -> None:
    asks: tuple[dict[str, Any], ...] = ({"headers": {"X-Partial": "1"}}, {"params": {"partial": "1"}})  # get()'s keywords
    for kwargs in asks:
        r = await client.get("/", **kwargs)
        text = await r.text()
        assert "<html" not in text and "<header" not in text and text.startswith("<h1>")
        assert 'data-agent="ns/chat"' in text
        assert "X-Partial" in r.headers["Vary"] and r.headers["Cache-Control"] == "no-store"


async def test_json_mirror(client: TestClient[Any, Any]) -> None:
    r = await client.get("/api/agents")
    body = await r.text()
    assert "<" not in body  # even inside strings: written as \\u003c
    agents = json.loads(body)
    chat = next(a for a in agents if a["name"] == "chat")
    assert (chat["namespace"], chat["phase"], chat["latencyP95Ms"]) == (NS, "Unhealthy", 2500)
    assert [f["name"] for f in chat["activeFaults"]] == ["slow"]
    assert any(a["name"] == HOSTILE for a in agents)  # the same string, once decoded
    detail = await (await client.get(f"/api/agents/{NS}/chat")).json()
    assert set(detail) >= {"agent", "events", "faults", "latencyHistory", "incidents", "timeline"}
    assert detail["events"][0]["reason"] == "AgentUnhealthy"
    faults = await (await client.get("/api/faults")).json()
    assert [(f["name"], f["phase"], f["secondsLeft"]) for f in faults] == [("slow", "Active", 60.0)]
    events = await (await client.get("/api/events")).json()
    assert [e["message"] for e in events] == [HOSTILE]


async def test_live_stream_announces_changes(client: TestClient[Any, Any], store: Store) -> None:
    async with client.get("/live") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        assert r.headers["Content-Security-Policy"]
        first = await r.content.readuntil(b"\n\n")
        assert b": connected" in first
        store.apply(FAULT, "ADDED", {"metadata": {"name": "new", "namespace": NS, "resourceVersion": "9"}}, now=NOW)
        block = await r.content.readuntil(b"\n\n")
        lines = block.decode().splitlines()
        assert lines[0] == "event: change"
        assert json.loads(lines[1].removeprefix("data: ")) == {"kind": "Fault", "namespace": NS, "name": "new", "type": "ADDED"}


async def test_live_stream_refuses_beyond_its_limit(store: Store) -> None:
    app = build_app(UIContext(store, ChangeFeed(max_subscribers=0), (NS,), clock=lambda: NOW))
    async with TestClient(TestServer(app)) as c:
        r = await c.get("/live")
        assert r.status == 503 and "Retry-After" in r.headers


async def test_page_script_and_stylesheet_are_served_from_the_origin(client: TestClient[Any, Any]) -> None:
    html = await (await client.get("/")).text()
    script = re.search(r'<script src="(/static/live\.js\?v=\w+)" defer></script>', html)
    style = re.search(r'<link rel="stylesheet" href="(/static/style\.css\?v=\w+)">', html)
    assert script and style
    js = await client.get(script.group(1))
    assert js.headers["Content-Type"].startswith("application/javascript")
    text = await js.text()
    assert "EventSource(\"/live\")" in text and '"X-Partial": "1"' in text and "DEBOUNCE_MS = 200" in text
    css = await (await client.get(style.group(1))).text()
    assert ".phase-Healthy" in css and "@media (max-width: 40rem)" in css


async def test_metrics_describe_the_ui_itself(client: TestClient[Any, Any], store: Store) -> None:
    store.expect_source(AGENT, NS, now=NOW)
    store.source_failed(AGENT, NS, "boom", now=NOW)
    text = await (await client.get("/metrics")).text()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("agentops_ui_objects", (("kind", "Agent"),))] == 2
    assert samples[("agentops_ui_objects", (("kind", "Event"),))] == 1
    assert samples[("agentops_ui_watch_failing", (("kind", "Agent"), ("namespace", NS)))] == 1
    assert samples[("agentops_ui_watch_synced", (("kind", "Agent"), ("namespace", NS)))] == 0
    assert samples[("agentops_ui_live_connections", ())] == 0


async def test_readyz_waits_for_every_first_list(store: Store) -> None:
    store.expect_source(AGENT, NS, now=NOW)
    app = build_app(UIContext(store, ChangeFeed(), (NS,), clock=lambda: NOW))
    async with TestClient(TestServer(app)) as c:
        assert (await c.get("/readyz")).status == 503
        store.source_synced(AGENT, NS, now=NOW)
        assert (await c.get("/readyz")).status == 200
        store.source_failed(AGENT, NS, "Kubernetes API 403: <forbidden>", now=NOW)
        html = await (await c.get("/")).text()
        assert 'class="banner"' in html and "403: &lt;forbidden&gt;" in html
