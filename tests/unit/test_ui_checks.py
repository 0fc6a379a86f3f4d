"""The UI's ResilienceCheck pages without a cluster: the summaries (expectations joined from
the spec by name, the run chosen), the chart's geometry (points to coordinates, fault
windows to x ranges, "no data yet"), the pages' markers, escaping, the JSON mirror, and a
cluster that does not serve the kind."""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agentops.api_types import AgentPhase, SeriesPoint
from agentops_ui import check_chart
from agentops_ui.app import build_app
from agentops_ui.changes import ChangeFeed
from agentops_ui.check_chart import (
    ERROR_BOTTOM, ERROR_TOP, LATENCY_BOTTOM, LATENCY_TOP, MIN_ERROR_SCALE, PLOT_LEFT, PLOT_RIGHT, geometry, x_at,
)
from agentops_ui.check_summaries import Band, RunNotKept, check_detail, checks_by_agent, fault_bands
from agentops_ui.context import UIContext
from agentops_ui.store import AGENT, CHECK, Store

NS = "ns"
NOW = 1_700_000_600.0  # 2023-11-14T22:23:20Z
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def sample_check(**status: Any) -> dict[str, Any]:
    """A check with two kept runs; run 2 (latest) judged one experiment and is on the second."""
    run2 = {
        "id": 2, "trigger": "Requested", "phase": "Running", "generation": 3,
        "startedAt": "2023-11-14T22:13:20Z",
        "baseline": {"seconds": 30, "requests": 120, "errors": 0, "errorRate": 0.0, "latencyP95Ms": 45.0},
        "experiments": [
            {"name": "slow-model", "faultType": "Latency", "weight": 2, "state": "Done", "verdict": "Degraded",
             "findings": ["p95 latency 2600 ms over the fault's window, expected at most 1000 ms", HOSTILE],
             "fault": "chat-check-2-slow-model", "faultStartedAt": "2023-11-14T22:14:00Z",
             "faultEndedAt": "2023-11-14T22:15:00Z", "detectionSeconds": 12.5, "recoverySeconds": 70.0,
             "restarts": 0, "escalated": False,
             "during": {"seconds": 60, "requests": 100, "errors": 2, "errorRate": 0.02, "latencyP95Ms": 2600.0}},
            {"name": "crash", "faultType": "Crash", "weight": 3, "state": "Observing",
             "faultStartedAt": "2023-11-14T22:16:00Z", "restarts": 1, "incident": "inc-7", "incidentState": "Open"},
            {"name": "errors", "faultType": "Error", "weight": 1, "state": "Pending"},
        ],
        "series": [
            {"offsetSeconds": 0, "requests": 20, "errorRate": 0.0, "latencyP95Ms": 40.0, "phase": "Healthy"},
            {"offsetSeconds": 60, "requests": 20, "errorRate": 0.0, "latencyP95Ms": 2000.0, "phase": "Degraded"},
            {"offsetSeconds": 120, "requests": 0},
            {"offsetSeconds": 180, "requests": 20, "errorRate": 0.5, "latencyP95Ms": 100.0, "phase": "Unhealthy"},
        ],
    }
    run1 = {"id": 1, "trigger": "Created", "phase": "Completed", "generation": 2, "startedAt": "2023-11-14T21:00:00Z",
            "finishedAt": "2023-11-14T21:10:00Z", "score": 40, "passed": False,
            "experiments": [{"name": "slow-model", "faultType": "Latency", "weight": 2, "state": "Done",
                             "verdict": "Vulnerable", "findings": ["error rate 30.0 % over the budget 5.0 %"]}],
            "series": []}
    body = {"phase": "Running", "progress": "1/3", "score": 40, "summary": "1 Vulnerable",
            "conditions": [{"type": "Passed", "status": "False", "reason": "ScoreBelowPassing", "message": "40 < 80",
                            "lastTransitionTime": "2023-11-14T21:10:00Z"}],
            "runs": [run2, run1]}
    body.update(status)
    return {
        "metadata": {"name": "chat-check", "namespace": NS, "resourceVersion": "5", "generation": 3},
        "spec": {"agent": "chat", "passingScore": 80, "failOnVulnerableWeight": 3, "schedule": "@hourly",
                 "experiments": [
                     {"name": "slow-model", "weight": 2, "fault": {"type": "Latency", "duration": "60s"},
                      "expect": {"detectedWithin": "30s", "recoveredWithin": "1m", "recoveryDeadline": "2m",
                                 "maxErrorRate": 0.05, "maxLatencyP95Ms": 1000}},
                     {"name": "crash", "weight": 3, "fault": {"type": "Crash", "duration": "30s"},
                      "expect": {"recoveryDeadline": "2m", "maxErrorRate": 0.1}},
                 ]},
        "status": body,
    }


def store_with(*checks: dict[str, Any]) -> Store:
    store = Store()
    store.apply(AGENT, "ADDED", {"metadata": {"name": "chat", "namespace": NS, "resourceVersion": "1"}}, now=NOW)
    for c in checks:
        store.apply(CHECK, "ADDED", c, now=NOW)
    return store


# ------------------------------------------------------------------ summaries


def test_the_latest_run_with_expectations_from_the_spec_by_name() -> None:
    detail = check_detail(store_with(sample_check()), NS, "chat-check", NOW)
    assert detail is not None and detail["run"] is not None
    run = detail["run"]
    assert run["id"] == 2 and not run["specChanged"] and [r["id"] for r in detail["runs"]] == [2, 1]
    slow, crash, errors = run["experiments"]
    assert (slow["detectedWithinSeconds"], slow["recoveredWithinSeconds"], slow["maxErrorRate"], slow["maxLatencyP95Ms"]) == (
        30.0, 60.0, 0.05, 1000.0)
    assert slow["verdict"] == "Degraded" and slow["during"] is not None and slow["during"]["errorRate"] == 0.02
    assert crash["detectedWithinSeconds"] is None and crash["maxErrorRate"] == 0.1 and crash["inSpec"]
    assert not errors["inSpec"] and errors["maxErrorRate"] is None  # no longer in the spec: no limits to show
    assert detail["check"]["passed"] is False and detail["check"]["lastRunId"] == 2
    assert detail["check"]["secondsSinceLastRun"] == 600.0


def test_an_older_run_by_id_says_the_spec_changed_since() -> None:
    store = store_with(sample_check())
    detail = check_detail(store, NS, "chat-check", NOW, run_id=1)
    assert detail is not None and detail["run"] is not None
    assert detail["run"]["id"] == 1 and detail["run"]["specChanged"] and detail["run"]["generation"] == 2
    with pytest.raises(RunNotKept, match="run 9 .* not among the runs kept .2, 1"):
        check_detail(store, NS, "chat-check", NOW, run_id=9)
    assert check_detail(store, NS, "nobody", NOW) is None


def test_fault_bands_are_relative_to_the_run_start_and_open_until_the_fault_ends() -> None:
    run = sample_check()["status"]["runs"][0]
    assert fault_bands(run) == [
        Band(name="slow-model", verdict="Degraded", start=40.0, end=100.0),
        Band(name="crash", verdict=None, start=160.0, end=None),
    ]  # "errors" never started: no band


def test_checks_are_grouped_by_the_agent_they_target() -> None:
    other = sample_check()
    other["metadata"] = {"name": "other", "namespace": NS, "resourceVersion": "1"}
    other["spec"] = {**other["spec"], "agent": "summary"}
    grouped = checks_by_agent(store_with(sample_check(), other), NOW)
    assert {k: [c["name"] for c in v] for k, v in grouped.items()} == {(NS, "chat"): ["chat-check"], (NS, "summary"): ["other"]}


# ------------------------------------------------------------------ the chart


def point(offset: float, p95: float | None = None, err: float | None = None, phase: AgentPhase | None = None) -> SeriesPoint:
    p = SeriesPoint(offsetSeconds=offset, requests=10)
    if p95 is not None:
        p["latencyP95Ms"] = p95
    if err is not None:
        p["errorRate"] = err
    if phase is not None:
        p["phase"] = phase
    return p


def test_points_map_to_coordinates_on_zero_based_scales() -> None:
    g = geometry([point(0, 100, 0.0), point(50, 400, 0.2), point(100, 200, 0.1)], [])
    assert g is not None
    assert g.seconds == 150.0  # the last point stands for an interval as long as the one before
    assert g.latency_max_ms == 400.0 and g.error_max == 0.2
    [line] = g.latency
    # Each point at the middle of its interval: 25 s, 75 s, 125 s of 150 s.
    assert [x for x, _ in line] == [x_at(25, 150), x_at(75, 150), x_at(125, 150)]
    assert line[0][0] == pytest.approx(PLOT_LEFT + (PLOT_RIGHT - PLOT_LEFT) / 6)
    assert line[0][1] == LATENCY_BOTTOM - 0.25 * (LATENCY_BOTTOM - LATENCY_TOP)
    assert line[1][1] == LATENCY_TOP  # the highest point touches the top
    [errors] = g.errors
    assert errors[0][1] == ERROR_BOTTOM and errors[1][1] == ERROR_TOP


def test_small_error_rates_keep_a_minimum_scale_and_gaps_break_the_line() -> None:
    g = geometry([point(0, 100, 0.01), point(10), point(20, 100, 0.0), point(30, 120, 0.0)], [])
    assert g is not None and g.error_max == MIN_ERROR_SCALE
    assert [len(s) for s in g.latency] == [1, 2] and [len(s) for s in g.errors] == [1, 2]  # no zero drawn for the gap


def test_bands_cover_their_fault_windows_and_an_open_one_runs_to_the_last_point() -> None:
    series = [point(o, 100, 0.0, "Healthy") for o in range(0, 200, 10)]  # 0..190, axis to 200
    bands = [Band(name="a", verdict="Resilient", start=20.0, end=80.0), Band(name="b", verdict=None, start=150.0, end=None)]
    g = geometry(series, bands)
    assert g is not None and g.seconds == 200.0
    a, b = g.bands
    assert (a.x0, a.x1, a.open) == (x_at(20, 200), x_at(80, 200), False)
    assert (b.x0, b.x1, b.open) == (x_at(150, 200), x_at(190, 200), True)
    assert a.x0 == PLOT_LEFT + 0.1 * (PLOT_RIGHT - PLOT_LEFT)
    # A closed window past the last point widens the axis rather than being cut.
    g2 = geometry(series[:3], [Band(name="late", verdict="Degraded", start=10.0, end=90.0)])
    assert g2 is not None and g2.seconds == 90.0 and g2.bands[0].x1 == PLOT_RIGHT
    assert [(p.phase, p.x0) for p in g.phases][:2] == [("Healthy", PLOT_LEFT), ("Healthy", x_at(10, 200))]


def test_an_empty_series_renders_no_data_yet() -> None:
    assert geometry([], [Band(name="a", verdict=None, start=0.0, end=None)]) is None
    html = check_chart.chart([], [])
    assert "No data yet" in html and "<svg" not in html


def test_the_svg_has_bands_labels_and_no_inline_style() -> None:
    series = [point(o, 100 + o, 0.0, "Healthy") for o in range(0, 100, 10)]
    html = check_chart.chart(series, [Band(name=HOSTILE, verdict="Vulnerable", start=20.0, end=40.0)])
    assert html.startswith('<figure id="run-chart"><svg') and 'class="fault-band band-Vulnerable"' in html
    assert "style=" not in html and "<script>" not in html and "&lt;script&gt;" in html
    assert re.search(r'<text [^>]*class="band-label">&lt;script', html)


# ------------------------------------------------------------------ the pages


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    store = store_with(sample_check())
    app = build_app(UIContext(store, ChangeFeed(), (NS,), clock=lambda: NOW))
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_the_check_page_shows_header_experiments_and_chart(client: TestClient[Any, Any]) -> None:
    r = await client.get(f"/checks/{NS}/chat-check")
    assert r.status == 200
    html = await r.text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)" in html
    assert 'href="/checks" aria-current="page"' in html
    assert f'<a href="/agents/{NS}/chat" class="check-agent">chat</a>' in html
    row = re.search(r'<tr data-experiment="slow-model" data-verdict="Degraded">.*?</tr>', html)
    assert row is not None
    cells = row.group(0)
    assert '<span class="verdict verdict-Degraded">Degraded</span>' in cells
    assert "12.5 s" in cells and "expected ≤ 30.0 s" in cells and "2.0 %" in cells and "budget 5.0 %" in cells
    assert "2.60 s" in cells and "expected ≤ 1.00 s" in cells
    crash = re.search(r'<tr data-experiment="crash" data-verdict="">.*?</tr>', html)
    assert crash is not None and f'href="/agents/{NS}/chat#incidents"' in crash.group(0) and "pending" in crash.group(0)
    assert '<svg viewBox="0 0 760 262" class="run-chart"' in html
    assert html.count('class="fault-band') == 2 and 'data-experiment="crash"' in html
    assert f'href="/checks/{NS}/chat-check?run=1"' in html and "spec has changed" not in html


async def test_an_older_run_and_runs_not_kept(client: TestClient[Any, Any]) -> None:
    html = await (await client.get(f"/checks/{NS}/chat-check?run=1")).text()
    assert "The spec has changed since this run" in html and "No data yet" in html
    assert (await client.get(f"/checks/{NS}/chat-check?run=7")).status == 404
    assert (await client.get(f"/checks/{NS}/chat-check?run=x%0d%0a")).status == 400
    assert (await client.get(f"/checks/{NS}/nobody")).status == 404
    assert (await client.get(f"/api/checks/{NS}/chat-check?run=7")).status == 404


async def test_the_list_the_json_mirror_and_the_agent_links(client: TestClient[Any, Any]) -> None:
    html = await (await client.get("/checks")).text()
    row = re.search(rf'<tr data-check="{NS}/chat-check" data-phase="Running">.*?</tr>', html)
    assert row is not None and ">1/3<" in row.group(0) and ">40<" in row.group(0) and "Not passed" in row.group(0)
    assert "10m ago" in row.group(0)
    listed = await (await client.get("/api/checks")).json()
    assert [(c["name"], c["agent"], c["score"], c["passed"]) for c in listed] == [("chat-check", "chat", 40, False)]
    detail = await (await client.get(f"/api/checks/{NS}/chat-check")).json()
    assert detail["run"]["bands"][0] == {"name": "slow-model", "verdict": "Degraded", "start": 40.0, "end": 100.0}
    overview = await (await client.get("/")).text()
    assert f'<a href="/checks/{NS}/chat-check">chat-check</a>' in overview
    agent_page = await (await client.get(f"/agents/{NS}/chat")).text()
    assert '<section id="checks">' in agent_page and f'href="/checks/{NS}/chat-check"' in agent_page


async def test_a_cluster_without_the_crd_says_so_on_the_checks_pages_only() -> None:
    store = store_with()
    for kind in (AGENT, CHECK):
        store.expect_source(kind, NS, NOW)
    store.source_synced(AGENT, NS, NOW)
    store.source_absent(CHECK, NS, "Kubernetes API 404: the server could not find the requested resource", NOW)
    assert store.synced  # nothing to wait for
    app = build_app(UIContext(store, ChangeFeed(), (NS,), clock=lambda: NOW))
    async with TestClient(TestServer(app)) as c:
        html = await (await c.get("/checks")).text()
        assert "ResilienceChecks are not available" in html and "crds/resiliencecheck.yaml" in html
        assert (await c.get(f"/checks/{NS}/x")).status == 404
        assert (await c.get("/api/checks")).status == 404
        overview = await (await c.get("/")).text()
        assert "not available" not in overview and 'class="banner"' not in overview
        assert (await c.get("/readyz")).status == 200


def test_the_store_forgets_checks_when_the_kind_goes_away() -> None:
    store = store_with(sample_check())
    changes: list[str] = []
    store.on_change = lambda c: changes.append(f"{c.kind} {c.type}")
    store.source_absent(CHECK, NS, "404", NOW)
    assert store.checks == {} and changes == ["ResilienceCheck DELETED", "Source ABSENT"]
    store.source_synced(CHECK, NS, NOW)
    assert store.sources[(CHECK, NS)].absent is None


def test_a_check_without_status_is_pending_and_has_no_run() -> None:
    bare = copy.deepcopy(sample_check())
    del bare["status"]
    detail = check_detail(store_with(bare), NS, "chat-check", NOW)
    assert detail is not None and detail["run"] is None and detail["check"]["phase"] == "Pending"
    assert detail["check"]["passed"] is None and detail["runs"] == []
