"""A stand-in agent for the proxy's mechanics: echo, streaming, headers, big bodies.

The sample agents (agents/) serve chat and summary; proxy behaviour such as streaming
a slow response chunk by chunk or passing repeated headers needs endpoints that expose
it directly. Runs in a thread with its own event loop.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import uuid

from aiohttp import web


def build_app(instance: str) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "instance": instance})

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=body, headers={"X-Body-Length": str(len(body)), "X-Method": request.method})

    async def headers(request: web.Request) -> web.Response:
        return web.json_response({k: v for k, v in request.headers.items()})

    async def stream(request: web.Request) -> web.StreamResponse:
        # Five chunks 300 ms apart: a buffering proxy would deliver them all at once.
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        for i in range(5):
            await response.write(f"chunk-{i}\n".encode())
            await asyncio.sleep(0.3)
        await response.write_eof()
        return response

    async def cookies(_: web.Request) -> web.Response:
        response = web.Response(text="ok")
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        return response

    async def gzipped(_: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b"hello " * 100), headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.query.get("n", "1048576")))

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "2")))
        return web.Response(text="late")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/headers", headers)
    app.router.add_get("/stream", stream)
    app.router.add_get("/cookies", cookies)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    return app


class UpstreamAgent:
    def __init__(self, port: int) -> None:
        self.port = port
        self.instance = str(uuid.uuid4())
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> UpstreamAgent:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(build_app(self.instance), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving (idempotent): the agent process "goes away"."""
        if self._loop.is_closed():
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def main() -> None:
    """`python upstream_agent.py PORT`: serve until killed (for supervisor tests)."""
    import sys

    app = build_app(str(uuid.uuid4()))
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
