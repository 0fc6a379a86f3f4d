"""The aiohttp application: routes, and the middlewares that make it read-only.

Read-only by construction: `read_only` is the outermost middleware, and it answers
every method other than GET and HEAD with 405 and `Allow: GET, HEAD` before routing
matters — on every path, known or not — so no route added later can accept a write.
(The views could not write anyway: the UI's credentials only get, list and watch.)

Every response, errors and the event stream included, carries the security headers
(through `on_response_prepare`, which sees them all): a Content Security Policy that
allows only this origin's own script and stylesheet — no inline script at all — plus
nosniff, no referrer and no framing.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from agentops_ui import (
    assets, view_agent, view_api, view_checks, view_faults, view_health, view_live, view_metrics, view_overview,
)
from agentops_ui.context import CONTEXT, UIContext
from agentops_ui.layout import respond
from agentops_ui.markup import el
from agentops_ui.view_api import json_response

log = logging.getLogger("agentops_ui.app")

ALLOWED_METHODS = ("GET", "HEAD")
ALLOW = ", ".join(ALLOWED_METHODS)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@web.middleware
async def read_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method not in ALLOWED_METHODS:
        return web.Response(status=405, text=f"405 Method Not Allowed: this UI is read-only ({ALLOW} only)\n",
                            headers={"Allow": ALLOW})
    return await handler(request)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """HTTP errors as pages (or JSON under /api/), unexpected ones logged and shown as 500."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        status, reason = exc.status, exc.reason
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        status, reason = 500, "Internal Server Error"
    headers = {"Allow": ALLOW} if status == 405 else {}
    if request.path.startswith("/api/"):
        response = json_response({"error": reason}, status=status)
    else:
        content = el("div", el("h1", f"{status} {reason}"), el("p", el("a", "Back to the overview", href="/")))
        response = respond(request, reason, content, nav=None, status=status)
    response.headers.update(headers)
    return response


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


async def _end_live_streams(app: web.Application) -> None:
    # Open /live streams would otherwise hold shutdown for the whole grace period.
    app[CONTEXT].feed.close()


def build_app(ctx: UIContext) -> web.Application:
    app = web.Application(middlewares=[read_only, errors])
    app[CONTEXT] = ctx
    app.on_response_prepare.append(_security_headers)
    app.on_shutdown.append(_end_live_streams)
    view_metrics.install(app)
    # add_get also answers HEAD; nothing else is ever routed.
    routes = [
        ("/", view_overview.overview),
        ("/faults", view_faults.faults),
        ("/agents/{namespace}/{name}", view_agent.agent),
        ("/checks", view_checks.checks),
        ("/checks/{namespace}/{name}", view_checks.check),
        ("/api/agents", view_api.agents),
        ("/api/agents/{namespace}/{name}", view_api.agent),
        ("/api/faults", view_api.faults),
        ("/api/checks", view_api.checks),
        ("/api/checks/{namespace}/{name}", view_api.check),
        ("/api/events", view_api.events),
        ("/live", view_live.live),
        ("/healthz", view_health.healthz),
        ("/readyz", view_health.readyz),
        ("/metrics", view_metrics.metrics),
        ("/static/style.css", assets.style),
        ("/static/live.js", assets.script),
    ]
    for path, handler in routes:
        app.router.add_get(path, handler)
    return app
