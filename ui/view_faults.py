"""`/faults`: every Fault, active first — target, type, phase, time left, start and end."""

from __future__ import annotations

from aiohttp import web

from agentops_ui.context import context
from agentops_ui.fault_summaries import FaultSummary, faults_list
from agentops_ui.layout import respond
from agentops_ui.markup import Markup, el
from agentops_ui.store import Store
from agentops_ui.typed_objects import FAULT_ACTIVE
from agentops_ui.widgets import agent_url, fault_phase_badge, sources_banner, time_left, timestamp

COLUMNS = ("Name", "Namespace", "Target", "Type", "Phase", "Time left", "Started", "Ended", "Message")


def target_cell(fault: FaultSummary) -> Markup:
    if fault["targetAgent"]:
        return el("a", fault["targetAgent"], href=agent_url(fault["namespace"], fault["targetAgent"]))
    resolved = f" → {', '.join(fault['targets'])}" if fault["targets"] else ""
    return el("span", el("code", fault["target"]), resolved)


def fault_row(fault: FaultSummary) -> Markup:
    return el(
        "tr",
        el("td", fault["name"], class_="fault-name"),
        el("td", fault["namespace"]),
        el("td", target_cell(fault), class_="fault-target"),
        el("td", fault["type"], class_="fault-type"),
        el("td", fault_phase_badge(fault["phase"])),
        el("td", time_left(fault["expiresAt"], fault["secondsLeft"]) if fault["phase"] == FAULT_ACTIVE else "—",
           class_="fault-left"),
        el("td", timestamp(fault["startedAt"])),
        el("td", timestamp(fault["endedAt"])),
        el("td", fault["message"] or "", class_="message"),
        data_fault=f"{fault['namespace']}/{fault['name']}", data_phase=fault["phase"],
    )


def faults_table(faults: list[FaultSummary], *, id_: str | None = "faults", class_: str | None = None) -> Markup:
    head = el("thead", el("tr", [el("th", c, scope="col") for c in COLUMNS]))
    rows = [fault_row(f) for f in faults] or [el("tr", el("td", "No faults", colspan=len(COLUMNS)), class_="empty")]
    return el("div", el("table", head, el("tbody", rows), id=id_, class_=class_), class_="table-wrap")


def render(faults: list[FaultSummary], store: Store, scope: str, now: float) -> Markup:
    active = sum(1 for f in faults if f["phase"] == FAULT_ACTIVE)
    heading = el("h1", "Faults ", el("span", f"({active} active, {len(faults)} in {scope})", class_="muted"))
    return Markup(sources_banner(store.sources.values(), now) + heading + faults_table(faults))


async def faults(request: web.Request) -> web.Response:
    ctx = context(request)
    now = ctx.clock()
    return respond(request, "Faults", render(faults_list(ctx.store, now), ctx.store, ctx.scope_text, now), nav="faults")
