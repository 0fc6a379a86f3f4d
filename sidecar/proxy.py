"""The reverse proxy in front of the agent: forwards, times, and injects faults.

Bodies stream in both directions: a request or response with no length or a large
one is copied chunk by chunk as it arrives (a token stream from an LLM reaches the
caller as it is produced); small ones (≤ `SMALL_BODY`, the common JSON call) are read
whole, which is one write instead of a loop and measurably cheaper. Connections to
the agent are pooled and kept alive. Hop-by-hop headers (RFC 9110 §7.6.1) are dropped,
everything else passes through untouched, including Content-Encoding (no
re-compression) and repeated headers such as Set-Cookie.

The request path is kept short on purpose: with no fault assigned it is one
comparison of a monotonic time, a tuple check, the forward, and one `record` call.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from agentops_sidecar.upstream_http import UpstreamPool
from agentops_sidecar.faults import Effect, Fault, FaultTable, choose
from agentops_sidecar.window import Window, Totals, error_class

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade",
})
# Requests the lean client leaves to aiohttp: no body to read back (HEAD), or a tunnel.
LEAN_SKIPS = frozenset({"HEAD", "CONNECT"})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Bodies up to this size are read in one piece; larger or unsized ones stream.
SMALL_BODY = 256 * 1024
CHUNK = 64 * 1024


def strip_hop_by_hop(headers: Any) -> CIMultiDict[str]:
    # Copy in C, then remove the few names that must not pass: about 3x cheaper than
    # filtering header by header in Python, and this runs twice per request.
    out: CIMultiDict[str] = CIMultiDict(headers)
    for value in headers.getall("Connection", ()):
        for token in value.split(","):
            out.popall(token.strip(), None)
    for name in HOP_BY_HOP:
        if name in out:
            del out[name]
    return out


class Recorder:
    """Where the proxy counts: the current telemetry window (swapped by the reporter) and totals."""

    def __init__(self, now: float) -> None:
        self.window = Window(started=now)
        self.totals = Totals()

    def record(self, status: int, seconds: float, error: str | None) -> None:
        self.window.record(seconds * 1000.0, error)
        self.totals.record(status, seconds)


class Proxy:
    def __init__(
        self,
        upstream: str,
        table: FaultTable,
        recorder: Recorder,
        *,
        upstream_timeout_s: float,
        max_connections: int,
        rnd: Callable[[], float] | None = None,
        use_lean_client: bool = True,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.table = table
        self.recorder = recorder
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=upstream_timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._closing: set[asyncio.Task[None]] = set()
        # The lean client serves plain-http agents; https ones (rare beside a sidecar)
        # and streamed uploads go through aiohttp.
        target = urlsplit(self.upstream)
        self._lean: UpstreamPool | None = (
            UpstreamPool(target.hostname or "127.0.0.1", target.port or 80, max_idle=max_connections,
                         max_connections=max_connections, read_timeout_s=upstream_timeout_s)
            if target.scheme == "http" and use_lean_client else None
        )
        self._choose: Callable[[tuple[Fault, ...]], Effect | None] = (lambda f: choose(f, rnd)) if rnd else choose

    async def start(self) -> None:
        self._session = self._new_session()

    def _new_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30.0, ttl_dns_cache=60),
            timeout=self._timeout,
            auto_decompress=False,  # pass Content-Encoding through untouched
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),  # a proxy must not keep cookies between callers
        )

    def instance_replaced(self) -> None:
        """The agent process changed: its pooled connections lead nowhere now.

        Reusing one would turn the first requests to the new instance into 502s, so
        the pool starts afresh; requests still running on the old one finish or fail
        as the old process does.
        """
        if self._lean is not None:
            self._lean.reset()
        old, self._session = self._session, self._new_session()
        if old is not None:
            task = asyncio.get_running_loop().create_task(old.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        loop_time = asyncio.get_running_loop().time
        started = loop_time()
        table = self.table
        if started >= table.next_deadline:
            table.refresh(started)
        if table.traffic:  # Model* faults are the model gateway's, never the proxy's
            effect = self._choose(table.traffic)
            if effect is not None:
                answer = await self._inject(effect)
                if answer is not None:
                    self.recorder.record(answer.status, loop_time() - started, error_class(answer.status))
                    return answer
        return await self._forward(request, started, loop_time)

    async def _inject(self, effect: Effect) -> web.Response | None:
        injected = self.recorder.totals.injected
        for fault in effect.hits:
            injected[fault.type] += 1
        if effect.delay_s > 0:
            await self._delay(effect)
        if effect.status is None:
            return None
        return web.Response(status=effect.status, body=effect.body, headers={"Content-Type": effect.content_type})

    async def _delay(self, effect: Effect) -> None:
        # Ends early when the fault is withdrawn, expires or is dropped mid-delay.
        await self.table.hold(frozenset(f.uid for f in effect.hits if f.type == "Latency"), effect.delay_s)

    async def _forward(self, request: web.BaseRequest, started: float, loop_time: Callable[[], float]) -> web.StreamResponse:
        headers = strip_hop_by_hop(request.headers)
        peer = request.remote or ""
        prior = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
        headers.setdefault("X-Forwarded-Proto", request.scheme)
        body: Any = None
        if request.body_exists:
            length = request.content_length
            body = await request.read() if length is not None and length <= SMALL_BODY else request.content.iter_chunked(CHUNK)
        # A keep-alive connection the agent closed just as we reused it fails before
        # any answer; an idempotent request with a replayable body is safe to send once
        # more (what Go's http.Transport does). Others get the 502.
        attempts = 2 if request.method in IDEMPOTENT and (body is None or isinstance(body, bytes)) else 1
        holder: list[web.StreamResponse] = []
        for attempt in range(attempts):
            try:
                status, response = await self._exchange(request, headers, body, holder)
                break
            except aiohttp.ServerDisconnectedError:
                if attempt + 1 < attempts and not holder:
                    continue
                return self._failed(502, started, loop_time, "connection", "the agent closed the connection")
            except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
                kind = "timeout" if isinstance(exc, asyncio.TimeoutError) else "connection"
                if holder and holder[0].prepared:
                    # The headers are out: the only honest signal left is a cut connection.
                    self.recorder.record(holder[0].status, loop_time() - started, kind)
                    raise
                if kind == "timeout":
                    return self._failed(504, started, loop_time, kind, "the agent did not answer in time")
                return self._failed(502, started, loop_time, kind, f"cannot reach the agent: {exc.__class__.__name__}")
        self.recorder.record(status, loop_time() - started, error_class(status))
        return response

    async def _exchange(self, request: web.BaseRequest, headers: CIMultiDict[str], body: Any,
                        holder: list[web.StreamResponse]) -> tuple[int, web.StreamResponse]:
        """One round trip to the agent; a streamed response is put in `holder` once started."""
        if (self._lean is not None and (body is None or isinstance(body, bytes)) and request.method not in LEAN_SKIPS
                and "Upgrade" not in request.headers and "Expect" not in request.headers):
            return await self._lean_exchange(request, headers, body, holder)
        assert self._session is not None, "start() first"
        async with self._session.request(
            request.method,
            URL(self.upstream + request.raw_path, encoded=True),
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as upstream:
            out_headers = strip_hop_by_hop(upstream.headers)
            length = upstream.content_length
            if request.method != "HEAD" and length is not None and length <= SMALL_BODY:
                data = await upstream.read()
                del out_headers["Content-Length"]
                return upstream.status, web.Response(status=upstream.status, reason=upstream.reason, body=data, headers=out_headers)
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=out_headers)
            holder.append(response)
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return upstream.status, response

    async def _lean_exchange(self, request: web.BaseRequest, headers: CIMultiDict[str], body: bytes | None,
                             holder: list[web.StreamResponse]) -> tuple[int, web.StreamResponse]:
        assert self._lean is not None
        upstream = await self._lean.request(request.method, request.raw_path, headers, body, small_body=SMALL_BODY)
        out_headers = strip_hop_by_hop(upstream.headers)
        if upstream.body is not None:
            upstream.release()
            out_headers.popall("Content-Length", None)
            return upstream.status, web.Response(status=upstream.status, reason=upstream.reason, body=upstream.body, headers=out_headers)
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=out_headers)
        holder.append(response)
        body_stream = upstream.stream()
        try:
            await response.prepare(request)
            async for chunk in body_stream:
                await response.write(chunk)
        finally:
            await body_stream.aclose()  # hands the connection (and its slot) back even if the caller left
        await response.write_eof()
        return upstream.status, response

    def _failed(self, status: int, started: float, loop_time: Callable[[], float], kind: str, message: str) -> web.Response:
        self.recorder.record(status, loop_time() - started, kind)
        self.recorder.totals.upstream_errors[kind] += 1
        return web.json_response({"error": message, "source": "agentops-sidecar"}, status=status)
