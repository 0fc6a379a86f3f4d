"""`/healthz` (the process serves) and `/readyz` (every list has completed once)."""

from __future__ import annotations

from aiohttp import web

from agentops_ui.context import context


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n", headers={"Cache-Control": "no-store"})


async def readyz(request: web.Request) -> web.Response:
    store = context(request).store
    waiting = [f"{s.kind}s in {s.namespace or 'all namespaces'}" for s in store.sources.values() if not s.synced]
    if waiting:
        return web.Response(status=503, text="not synced: " + "; ".join(waiting) + "\n", headers={"Cache-Control": "no-store"})
    return web.Response(text="ok\n", headers={"Cache-Control": "no-store"})
