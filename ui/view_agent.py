"""`/agents/{namespace}/{name}`: one agent — its numbers, conditions, incidents and
timeline, its Events, the faults that target it now or did before, and the resilience
checks that test it."""

from __future__ import annotations

from aiohttp import web

from agentops_ui.agent_summaries import AgentDetail, AgentSummary, TimelineEntry, agent_detail
from agentops_ui.check_summaries import checks_by_agent
from agentops_ui.context import context
from agentops_ui.event_summaries import EventSummary
from agentops_ui.layout import respond
from agentops_ui.markup import Markup, el
from agentops_ui.store import Store
from agentops_ui.view_checks import checks_table
from agentops_ui.view_faults import faults_table
from agentops_ui.widgets import (
    active_faults, chart_caption, conditions_table, css_token, definition_list, labels_list, latency, percent,
    phase_badge, rate, sources_banner, sparkline, time_ago, timestamp, value_text,
)


def _incidents(detail: AgentDetail) -> Markup:
    if detail["incidents"]:
        # Whatever fields the operator records, every one shown (escaped), in its order.
        entries = el("ol", [
            el("li", el("dl", [[el("dt", k), el("dd", value_text(v))] for k, v in incident.items()]), class_="incident")
            for incident in detail["incidents"]
        ], class_="incidents")
    else:
        entries = el("p", "No incidents recorded", class_="no-incidents")
    return el("section", el("h2", "Incidents"), entries, _timeline(detail["timeline"]), id="incidents")


def _timeline_entry(entry: TimelineEntry) -> Markup:
    return el(
        "li",
        el("span", entry["stage"], class_=f"stage stage-{css_token(entry['stage'])}"), " ",
        timestamp(entry["time"]), " ",
        el("strong", f"{entry['kind']} {entry['object']}: {entry['reason']}"), " — ",
        el("span", entry["message"], class_="message"),
        data_stage=entry["stage"], class_=f"event-{css_token(entry['type'])}",
    )


def _timeline(entries: list[TimelineEntry]) -> Markup:
    """The agent's and its faults' Events in time order, each placed in fault → detected → action → verified/escalated."""
    body = (el("ol", [_timeline_entry(e) for e in entries], class_="timeline") if entries
            else el("p", "No events for this agent or its faults yet.", class_="muted"))
    return el("div", el("h3", "Timeline (from Events)"), body, class_="timeline-wrap")


def _event_row(event: EventSummary) -> Markup:
    return el("tr", el("td", event["type"]), el("td", f"{event['involvedKind']} {event['involvedName']}"),
              el("td", event["reason"]), el("td", event["message"], class_="message"),
              el("td", event["count"]), el("td", time_ago(event["lastTime"], event["secondsAgo"])),
              class_=f"event event-{css_token(event['type'])}", data_reason=event["reason"])


def _events(events: list[EventSummary]) -> Markup:
    head = el("thead", el("tr", [el("th", h, scope="col") for h in ("Type", "Object", "Reason", "Message", "Count", "Last seen")]))
    rows = [_event_row(e) for e in events] or [el("tr", el("td", "No events", colspan=6), class_="empty")]
    return el("section", el("h2", "Events ", el("span", "(this agent and its faults)", class_="muted")),
              el("div", el("table", head, el("tbody", rows)), class_="table-wrap"), id="events")


def _model_calls(agent: AgentSummary) -> Markup:
    """The agent's calls to its model providers, as its sidecars' gateways measured them."""
    m = agent["model"]
    declared = ", ".join(agent["modelProviders"])
    if m is None:
        if not declared:
            return Markup("")
        return el("section", el("h2", "Model calls"),
                  el("p", f"No model call reported yet (declared providers: {declared}).", class_="muted"), id="model")
    errors = m.get("errors") or {}
    cost = m.get("costPerHourUsd")
    numbers = definition_list([
        ("providers", ", ".join(m.get("providers", [])) or declared or "—"),
        ("calls in window", m.get("calls", 0)),
        ("model error rate", percent(m.get("errorRate"))),
        ("errors by type", ", ".join(f"{k} {n}" for k, n in sorted(errors.items(), key=lambda kv: -kv[1])) or "none"),
        ("retries", m.get("retries", 0)),
        ("streams cut or stalled", m.get("streamsInterrupted", 0)),
        ("time to first token p95", latency(m.get("timeToFirstTokenP95Ms"))),
        ("call p95", latency(m.get("latencyP95Ms"))),
        ("tokens / min", f"{m.get('tokensPerMinute', 0):,.0f}"),
        ("tokens in window", f"{m.get('inputTokens', 0):,} in, {m.get('outputTokens', 0):,} out"),
        ("estimated cost", "no prices set" if cost is None else f"${cost:,.2f} / h"),
    ], class_="metrics model-metrics")
    return el("section", el("h2", "Model calls"), numbers, id="model")


def _checks(store: Store, namespace: str, name: str, now: float) -> Markup:
    """The resilience checks that test this agent; nothing when there are none."""
    checks = checks_by_agent(store, now).get((namespace, name))
    if not checks:
        return Markup("")
    return el("section", el("h2", "Resilience checks"), checks_table(checks, show_agent=False, id_="agent-checks"),
              id="checks")


def render(detail: AgentDetail, store: Store, now: float) -> Markup:
    agent = detail["agent"]
    ns, name = agent["namespace"], agent["name"]
    heading = el("h1", name, " ", phase_badge(agent["phase"]), " ", el("span", f"namespace {ns}", class_="muted"),
                 class_="agent-title", data_agent=f"{ns}/{name}", data_phase=agent["phase"])
    numbers = definition_list([
        ("p95 latency", latency(agent["latencyP95Ms"])),
        ("p50 latency", latency(agent["latencyP50Ms"])),
        ("error rate", percent(agent["errorRate"])),
        ("request rate", rate(agent["requestRate"])),
        ("requests in window", "—" if agent["requests"] is None else agent["requests"]),
        ("restarts", agent["restartCount"]),
        ("last heartbeat", time_ago(agent["lastReportTime"], agent["secondsSinceReport"])),
        ("reporting sidecars", "—" if agent["reporters"] is None else agent["reporters"]),
        ("runtime", agent["runtime"] or "—"),
    ], class_="metrics")
    metadata = el("section",
                  el("h2", "Labels and annotations"),
                  labels_list(agent["labels"]) or el("p", "No labels", class_="muted"),
                  labels_list(agent["annotations"], class_="labels annotation-list") or el("p", "No annotations", class_="muted"),
                  id="metadata")
    return Markup(
        sources_banner(store.sources.values(), now) + heading
        + el("section", numbers, sparkline(detail["latencyHistory"]), chart_caption(detail["latencyHistory"]),
             el("h2", "Active faults"), active_faults(agent["activeFaults"]), id="summary")
        + _model_calls(agent)
        + el("section", el("h2", "Conditions"), conditions_table(agent["conditions"]), id="conditions-section")
        + _incidents(detail)
        + _events(detail["events"])
        + el("section", el("h2", "Faults"), faults_table(detail["faults"], id_=None, class_="agent-faults"), id="faults")
        + _checks(store, ns, name, now)
        + metadata
    )


def not_found(namespace: str, name: str) -> Markup:
    return el("div", el("h1", "Agent not found"),
              el("p", f"There is no Agent {name} in namespace {namespace} (or it is outside the namespaces this UI shows)."),
              el("p", el("a", "Back to the overview", href="/")), class_="not-found")


async def agent(request: web.Request) -> web.Response:
    ctx = context(request)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    now = ctx.clock()
    detail = agent_detail(ctx.store, namespace, name, now)
    if detail is None:
        return respond(request, "Agent not found", not_found(namespace, name), nav=None, status=404)
    return respond(request, f"{name} ({namespace})", render(detail, ctx.store, now), nav=None)
