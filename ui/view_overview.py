"""`/`: a card per agent — phase, the numbers an on-call person looks at first, the
active faults, a sparkline of recent p95 latency and the resilience checks that target it."""

from __future__ import annotations

from collections import Counter
from aiohttp import web

from agentops_ui.agent_summaries import AgentSummary, agents_overview
from agentops_ui.check_summaries import CheckSummary, checks_by_agent
from agentops_ui.context import context
from agentops_ui.layout import respond
from agentops_ui.markup import Markup, el
from agentops_ui.store import Store
from agentops_ui.typed_objects import AGENT_PHASES
from agentops_ui.view_checks import check_links
from agentops_ui.widgets import (
    active_faults, agent_url, chart_caption, definition_list, labels_list, latency, percent, phase_badge, rate, sources_banner,
    sparkline, time_ago,
)


def card(agent: AgentSummary, checks: list[CheckSummary] | None = None) -> Markup:
    ns, name, phase = agent["namespace"], agent["name"], agent["phase"]
    metrics = definition_list([
        ("p95 latency", el("span", latency(agent["latencyP95Ms"]), class_="metric-p95")),
        ("error rate", el("span", percent(agent["errorRate"]), class_="metric-error-rate")),
        ("request rate", el("span", rate(agent["requestRate"]), class_="metric-request-rate")),
        ("restarts", el("span", agent["restartCount"], class_="metric-restarts")),
        ("last heartbeat", el("span", time_ago(agent["lastReportTime"], agent["secondsSinceReport"]), class_="metric-heartbeat")),
    ], class_="metrics")
    annotations = agent["annotations"]
    return el(
        "article",
        el("div", el("h2", el("a", name, href=agent_url(ns, name))), phase_badge(phase), class_="card-head"),
        el("p", f"namespace {ns}", class_="namespace", data_namespace=ns),
        metrics,
        sparkline(agent["latencyHistory"]),
        chart_caption(agent["latencyHistory"]),
        el("div", el("span", "Active faults", class_="muted"), active_faults(agent["activeFaults"]), class_="card-faults"),
        check_links(checks or []),
        labels_list(agent["labels"]),
        el("details", el("summary", f"{len(annotations)} annotation(s)"),
           labels_list(annotations, class_="labels annotation-list"), class_="annotations") if annotations else None,
        class_="agent-card", data_agent=f"{ns}/{name}", data_phase=phase,
    )


def render(agents: list[AgentSummary], store: Store, scope: str, now: float) -> Markup:
    counts = Counter(a["phase"] for a in agents)
    summary = ", ".join(f"{counts[p]} {p}" for p in AGENT_PHASES if counts[p])
    heading = el("h1", "Agents ", el("span", f"({len(agents)} in {scope}{': ' + summary if summary else ''})", class_="muted"))
    if agents:
        checks = checks_by_agent(store, now)
        body = el("div", [card(a, checks.get((a["namespace"], a["name"]))) for a in agents], class_="cards")
    else:
        body = el("p", f"No agents in {scope}.", class_="empty")
    return Markup(sources_banner(store.sources.values(), now) + heading + body)


async def overview(request: web.Request) -> web.Response:
    ctx = context(request)
    now = ctx.clock()
    return respond(request, "Overview", render(agents_overview(ctx.store, now), ctx.store, ctx.scope_text, now), nav="overview")
