"""`/api/...`: the JSON mirror of the pages, for scripts.

Built from the same records as the HTML (`agent_summaries`, `fault_summaries`,
`event_summaries`, `check_summaries`), so the numbers match the pages.
`<` is written as `\\u003c` (still the same JSON) so that even a client that sniffs a
response as HTML finds no markup in it.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from agentops_ui.agent_summaries import agent_detail, agents_overview
from agentops_ui.check_summaries import RunNotKept, check_detail, checks_absent, checks_overview
from agentops_ui.context import context
from agentops_ui.event_summaries import events_list
from agentops_ui.fault_summaries import faults_list
from agentops_ui.view_checks import requested_run


def json_response(data: Any, status: int = 200) -> web.Response:
    text = json.dumps(data, separators=(",", ":"), default=str).replace("<", "\\u003c")
    return web.Response(text=text, status=status, content_type="application/json", headers={"Cache-Control": "no-store"})


async def agents(request: web.Request) -> web.Response:
    ctx = context(request)
    return json_response(agents_overview(ctx.store, ctx.clock()))


async def agent(request: web.Request) -> web.Response:
    ctx = context(request)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    detail = agent_detail(ctx.store, namespace, name, ctx.clock())
    if detail is None:
        return json_response({"error": f"no Agent {name} in namespace {namespace}"}, status=404)
    return json_response(detail)


async def faults(request: web.Request) -> web.Response:
    ctx = context(request)
    return json_response(faults_list(ctx.store, ctx.clock()))


async def events(request: web.Request) -> web.Response:
    ctx = context(request)
    return json_response(events_list(ctx.store, ctx.clock()))


async def checks(request: web.Request) -> web.Response:
    ctx = context(request)
    absent = checks_absent(ctx.store)
    if absent is not None:
        return json_response({"error": f"ResilienceChecks are not served by the API server: {absent}"}, status=404)
    return json_response(checks_overview(ctx.store, ctx.clock()))


async def check(request: web.Request) -> web.Response:
    ctx = context(request)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    try:
        detail = check_detail(ctx.store, namespace, name, ctx.clock(), requested_run(request))
    except RunNotKept as exc:
        return json_response({"error": str(exc)}, status=404)
    if detail is None:
        return json_response({"error": f"no ResilienceCheck {name} in namespace {namespace}"}, status=404)
    return json_response(detail)
