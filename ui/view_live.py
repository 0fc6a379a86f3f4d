"""`/live`: Server-Sent Events, one `change` event per store change.

    event: change
    data: {"kind": "Fault", "namespace": "demo", "name": "slow", "type": "ADDED"}

A comment line every 15 s keeps proxies and load balancers from closing an idle
stream (many cut at 30–60 s) and lets the server notice a browser that went away.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from agentops_ui.changes import TooManySubscribers
from agentops_ui.context import context
from agentops_ui.store import Change

HEARTBEAT_S = 15.0
# After a dropped connection, EventSource reconnects after this long.
RETRY_MS = 2000
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-store",
    # nginx and similar buffer responses by default, which would hold events back.
    "X-Accel-Buffering": "no",
}


def format_change(change: Change) -> bytes:
    data = json.dumps({"kind": change.kind, "namespace": change.namespace, "name": change.name, "type": change.type},
                      separators=(",", ":"))
    return f"event: change\ndata: {data}\n\n".encode()


async def live(request: web.Request) -> web.StreamResponse:
    if request.method == "HEAD":
        return web.Response(headers=HEADERS)
    feed = context(request).feed
    response = web.StreamResponse(headers=HEADERS)
    try:
        with feed.subscribe() as queue:
            await response.prepare(request)
            await response.write(f"retry: {RETRY_MS}\n: connected\n\n".encode())
            while True:
                try:
                    change = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    await response.write(b": heartbeat\n\n")
                    continue
                if change is None:  # the server is stopping
                    break
                await response.write(format_change(change))
    except TooManySubscribers as exc:
        return web.Response(status=503, text=f"{exc}; the pages work without live updates\n",
                            headers={"Retry-After": "30"})
    except ConnectionResetError:
        pass  # the browser went away
    return response
