"""The model gateway: the agent's LLM calls pass here on their way to the provider.

The agent points each SDK at `http://127.0.0.1:9902/{gemini,openai,anthropic}` with the
SDK's own base-URL setting (DESIGN §5: reached by base URL, no TLS interception); the
gateway forwards to the provider over verified TLS (certifi's CA bundle), applies the
Model* faults the operator assigned, and turns every call into signals
(`model_signals`). Knowledge about the providers lives beside it: paths (`model_routes`),
injected answers (`model_shapes`), reading answers (`model_usage`), which fault strikes
which attempt (`model_faults`).

Forwarding rules:

* the path after the prefix and the query go to the upstream unchanged; API keys
  (Authorization, x-api-key, x-goog-api-key, `key=` in the query) pass untouched and
  are never logged, counted or echoed in an error;
* `Accept-Encoding` is replaced by `identity`: the gateway reads token usage and end
  markers from the answer as it passes, which it cannot do in gzip. On loopback to the
  agent the lost compression costs nothing; upstream it costs some bandwidth on long
  answers, and it keeps the gateway from holding a decompressor per stream;
* hop-by-hop headers are dropped both ways (as in the proxy), and `Host` is the
  upstream's;
* a streamed answer (SSE) is written to the agent chunk by chunk as it arrives, the
  copy parsed after the write; only a stream-shaping fault (slow stream, stall, cut,
  malformed event, corrupt tool arguments) works event by event;
* a fault that stops being enforced (deleted, expired, lease lost, halted) while a call
  is held by it releases the call at once: the call then proceeds unharmed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import aiohttp
import certifi
from aiohttp import web
from yarl import URL

from agentops.api_types import ModelProvider
from agentops_sidecar.faults import Fault, FaultTable
from agentops_sidecar.model_faults import RETRY_COUNT_HEADER, AttemptTracker, call_key, pick
from agentops_sidecar.model_routes import PREFIXES, CallInfo, Route, call_info, resolve
from agentops_sidecar.model_shapes import ERROR_KINDS, FAULT_HEADER, Answer, error_answer, safety_answer, truncate_json
from agentops_sidecar.model_signals import CallRecord, ModelTotals
from agentops_sidecar.model_stream_faults import EVENT_FAULTS, EventShaper, corrupt_body
from agentops_sidecar.model_usage import MAX_READ_BODY, AnswerReader, SseSplitter, classify
from agentops_sidecar.proxy import Recorder, strip_hop_by_hop

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # TLS to a provider across the internet; the per-read timeout is the sidecar's
# Requests up to this size are read in one call (aiohttp's own limit for request.read()).
SMALL_REQUEST = 1024 * 1024
# A request body past this is refused (413): Gemini's inline-data limit is 20 MB, and
# the body is held in memory to be hashed and forwarded.
MAX_REQUEST_BODY = 64 * 1024 * 1024
CHUNK = 64 * 1024
# Headers the gateway sets itself on the way up.
_UP_DROP = ("Host", "Content-Length", "Accept-Encoding")


@dataclass
class _Call:
    """One attempt through the gateway, as it unfolds; recorded once when it ends."""

    route: Route
    info: CallInfo
    key: bytes
    retry: bool
    started: float
    fault: Fault | None
    status: int | None = None
    headers: Mapping[str, str] | None = None
    body: bytes = b""  # the answer when it was read whole (for classifying errors)
    reader: AnswerReader | None = None
    streamed: bool = False  # an SSE answer was started
    prepared: bool = False  # headers are out: an error now can only cut the connection
    client_gone: bool = False  # the agent closed its side first
    first_chunk: float | None = None
    failure: str | None = None  # "timeout", "connection"
    recorded: bool = False


class ModelGateway:
    def __init__(
        self,
        table: FaultTable,
        recorder: Recorder,
        totals: ModelTotals,
        *,
        upstreams: Mapping[ModelProvider, str],
        read_timeout_s: float,
        max_connections: int,
        rnd: Callable[[], float] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.table, self.recorder, self.totals = table, recorder, totals
        self.upstreams = {provider: url.rstrip("/") for provider, url in upstreams.items()}
        self.tracker = AttemptTracker()
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=read_timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._rnd = rnd or random.random
        self._wall = wall

    async def start(self) -> None:
        tls = ssl.create_default_context(cafile=certifi.where())  # verified TLS, certifi's CA bundle
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=tls, limit=self._max_connections, keepalive_timeout=30.0, ttl_dns_cache=60),
            timeout=self._timeout,
            auto_decompress=False,  # what the provider sends is what the agent gets
            skip_auto_headers=("User-Agent", "Accept", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),  # no state kept between calls
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # ------------------------------------------------------------ entry

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        loop_time = asyncio.get_running_loop().time
        started = loop_time()
        route = resolve(request.raw_path)
        if route is None:
            # The path only, never the query: it may carry an API key (Gemini's ?key=).
            return web.json_response({"error": {"message": f"no model provider at {request.path}; the gateway serves "
                                                           + ", ".join(f"/{p}/..." for p in PREFIXES), "code": 404},
                                      "source": "agentops-sidecar"}, status=404)
        body = await _read_body(request)
        if body is None:
            return web.json_response({"error": {"message": f"request body over {MAX_REQUEST_BODY} bytes", "code": 413},
                                      "source": "agentops-sidecar"}, status=413)
        info = call_info(route, body)
        key = call_key(route.provider, request.method, route.upstream_path, body)
        attempt = self.tracker.attempt(key, request.headers.get(RETRY_COUNT_HEADER), started)
        table = self.table
        if started >= table.next_deadline:
            table.refresh(started)
        fault = None
        if table.model:
            fault = pick(table.model, provider=route.provider, model=info.model, operation=route.operation,
                         streams=info.streams, attempt=attempt, tracker=self.tracker, rnd=self._rnd)
            if fault is not None:
                self.totals.fault_injected(fault.type)
        call = _Call(route, info, key, attempt.is_retry, started, fault)
        try:
            return await self._serve(request, body, call)
        except asyncio.CancelledError:
            # The agent went away (aiohttp cancels the handler): a call it gave up on
            # while a fault held it timed out, as far as the agent could tell.
            call.client_gone = True
            if call.failure is None and call.fault is not None and call.fault.type in ("ModelTimeout", "ModelStreamStall"):
                call.failure = "timeout"
            raise
        finally:
            self._record(call, loop_time())

    async def _serve(self, request: web.BaseRequest, body: bytes, call: _Call) -> web.StreamResponse:
        fault = call.fault
        if fault is None:
            return await self._forward(request, body, call)
        assert fault.model is not None
        kind, provider = fault.type, call.route.provider
        if kind in ERROR_KINDS:
            return self._answer(call, error_answer(kind, provider, call.info.model, fault.model.retry_after_s, self._wall()))
        if kind == "ModelSafetyBlock":
            return self._answer(call, safety_answer(provider, call.route.operation, call.route.upstream_path.partition("?")[0],
                                                    call.info.model, call.info.streams, self._wall()))
        if kind == "ModelTimeout":
            if await self._hold(fault, fault.model.delay_s):
                call.failure = "timeout"
                return _cut(request)
            return await self._forward(request, body, call)  # released: the call proceeds
        if kind == "ModelSlowFirstToken":
            await self._hold(fault, fault.model.delay_s)
            return await self._forward(request, body, call)
        return await self._forward(request, body, call)  # the body faults act on the answer

    def _answer(self, call: _Call, answer: Answer) -> web.Response:
        assert call.fault is not None
        call.status, call.headers, call.body = answer.status, answer.headers, answer.body
        if answer.status < 300:
            reader = call.reader = AnswerReader(call.route.provider)
            if call.info.streams:
                call.streamed, call.first_chunk = True, asyncio.get_running_loop().time()
                for event in SseSplitter().feed(answer.body):
                    reader.event(event)
                reader.finish()
            else:
                reader.body(answer.body)
        return web.Response(status=answer.status, body=answer.body, headers={**answer.headers, FAULT_HEADER: call.fault.name})

    async def _hold(self, fault: Fault, seconds: float | None) -> bool:
        """Wait `seconds` (None: until released); True when the wait ran its course,
        False when the fault stopped being enforced first."""
        return await self.table.hold(frozenset({fault.uid}), seconds)

    # ------------------------------------------------------------ upstream

    async def _forward(self, request: web.BaseRequest, body: bytes, call: _Call) -> web.StreamResponse:
        assert self._session is not None, "start() first"
        route = call.route
        headers = strip_hop_by_hop(request.headers)
        for name in _UP_DROP:
            headers.popall(name, None)
        headers["Accept-Encoding"] = "identity"
        url = URL(self.upstreams[route.provider] + route.upstream_path, encoded=True)
        try:
            async with self._session.request(request.method, url, headers=headers, data=body if body else None,
                                             allow_redirects=False) as upstream:
                call.status = upstream.status
                call.headers = upstream.headers
                out = strip_hop_by_hop(upstream.headers)
                encoded = upstream.headers.get("Content-Encoding", "identity").lower() != "identity"
                if upstream.content_type == "text/event-stream" and upstream.status < 300 and not encoded:
                    return await self._stream(request, upstream, out, call)
                return await self._whole(request, upstream, out, call, encoded)
        except ConnectionResetError:
            call.client_gone = True  # the agent left while we wrote; nothing to answer
            return _cut(request)
        except aiohttp.ConnectionTimeoutError as exc:  # a TimeoutError too, but a failure to connect
            call.failure = "connection"
            return self._unreachable(request, call, 502, f"cannot reach the provider: {exc.__class__.__name__}")
        except asyncio.TimeoutError:
            call.failure = "timeout"
            return self._unreachable(request, call, 504, "the provider did not answer in time")
        except aiohttp.ClientError as exc:
            call.failure = "connection"
            return self._unreachable(request, call, 502, f"cannot reach the provider: {exc.__class__.__name__}")

    def _unreachable(self, request: web.BaseRequest, call: _Call, status: int, message: str) -> web.StreamResponse:
        if call.prepared:
            return _cut(request)  # the answer had begun: a cut connection is the only honest signal left
        call.status = None  # no provider answer to classify: the failure says what happened
        provider = call.route.provider
        # A neutral envelope every SDK parses: OpenAI's and Gemini's share the shape.
        return web.json_response({"error": {"message": f"agentops model gateway: {message} ({provider})", "code": status,
                                             "status": "UNAVAILABLE" if status == 502 else "DEADLINE_EXCEEDED"}}, status=status)

    async def _whole(self, request: web.BaseRequest, upstream: aiohttp.ClientResponse, out: Any, call: _Call,
                     encoded: bool) -> web.StreamResponse:
        """A non-streamed answer: read (up to MAX_READ_BODY), shaped by a body fault, sent."""
        length = upstream.content_length
        if request.method == "HEAD" or (length is not None and length > MAX_READ_BODY):
            return await self._pass(request, upstream, out, b"", call)
        data = bytearray()
        async for chunk in upstream.content.iter_any():
            data += chunk
            if len(data) > MAX_READ_BODY:  # too big to read for signals: pass the rest through
                return await self._pass(request, upstream, out, bytes(data), call)
        body = bytes(data)
        fault = call.fault
        json_ok = 200 <= upstream.status < 300 and "json" in upstream.content_type and not encoded
        if fault is not None and json_ok:
            if fault.type == "ModelMalformedJson":
                body = truncate_json(body)
            elif fault.type == "ModelCorruptToolArguments":
                body = corrupt_body(call.route.provider, body)
            out[FAULT_HEADER] = fault.name
        call.body = body
        if json_ok:
            call.reader = AnswerReader(call.route.provider)
            call.reader.body(body)
        out.popall("Content-Length", None)
        return web.Response(status=upstream.status, reason=upstream.reason, body=body, headers=out)

    async def _pass(self, request: web.BaseRequest, upstream: aiohttp.ClientResponse, out: Any, head: bytes,
                    call: _Call) -> web.StreamResponse:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=out)
        call.prepared = True
        await response.prepare(request)
        if head:
            await response.write(head)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response

    async def _stream(self, request: web.BaseRequest, upstream: aiohttp.ClientResponse, out: Any, call: _Call) -> web.StreamResponse:
        """An SSE answer: chunk by chunk, or event by event under a stream-shaping fault."""
        loop_time = asyncio.get_running_loop().time
        fault = call.fault if call.fault is not None and call.fault.type in EVENT_FAULTS else None
        if fault is not None:
            out[FAULT_HEADER] = fault.name
        out.popall("Content-Length", None)
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=out)
        splitter, reader = SseSplitter(), AnswerReader(call.route.provider)
        call.reader, call.streamed, call.prepared = reader, True, True
        await response.prepare(request)
        content = upstream.content
        try:
            if fault is None:
                async for chunk in content.iter_any():
                    if call.first_chunk is None:
                        call.first_chunk = loop_time()
                    await response.write(chunk)  # first the agent, then our reading of it
                    for event in splitter.feed(chunk):
                        reader.event(event)
                for event in splitter.close():
                    reader.event(event)
            else:
                # Whole events from here on (a partial one waits for its end), even once a
                # withdrawn fault has released the stream: simpler than switching modes.
                shaper = EventShaper(self.table, fault, call.route.provider)
                if fault.type in ("ModelStreamStall", "ModelStreamCut") and not await shaper.before_event():
                    return _cut(request)  # afterChunks 0: strikes right after the headers
                async for chunk in content.iter_any():
                    for event in splitter.feed(chunk):
                        sent = shaper.shape(event)
                        if fault.type == "ModelSlowStream" and not await shaper.before_event():
                            return _cut(request)
                        if call.first_chunk is None:
                            call.first_chunk = loop_time()
                        await response.write(sent.raw)
                        reader.event(sent)
                        shaper.sent += 1
                        if fault.type != "ModelSlowStream" and not await shaper.before_event():
                            return _cut(request)
                rest = splitter.rest()
                if rest:
                    await response.write(rest)
        except ConnectionResetError:
            call.client_gone = True
            return response
        except (asyncio.TimeoutError, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            call.failure = "timeout" if isinstance(exc, asyncio.TimeoutError) else "connection"
            reader.finish()
            return _cut(request)
        reader.finish()
        await response.write_eof()
        return response

    # ------------------------------------------------------------ signals

    def _record(self, call: _Call, now: float) -> None:
        if call.recorded:
            return
        call.recorded = True
        headers = call.headers or {}
        # A stream the agent itself stopped reading is its choice, not the provider's failure.
        streamed = call.streamed and not (call.client_gone and call.failure is None)
        error = classify(call.status, headers, call.body, call.reader, streamed=streamed, failure=call.failure)
        reader = call.reader
        rec = CallRecord(
            provider=call.route.provider, model=call.info.model, operation=call.route.operation, streams=call.info.streams,
            retry=call.retry, error=error, seconds=max(0.0, now - call.started),
            first_chunk_s=None if call.first_chunk is None else max(0.0, call.first_chunk - call.started),
            input_tokens=reader.input_tokens if reader else 0, output_tokens=reader.output_tokens if reader else 0,
            usage_seen=bool(reader and (reader.input_tokens or reader.output_tokens)),
        )
        self.recorder.window.model.record(rec)
        self.totals.record(rec)
        self.tracker.finished(call.key, error is None, now)


def _cut(request: web.BaseRequest) -> web.StreamResponse:
    """Close the agent's connection without (the rest of) an answer.

    What a provider that hangs up looks like: bytes already written are flushed, then
    the connection closes — no end marker, no final chunk of the chunked encoding. The
    returned response is never sent (aiohttp finds the connection closed).
    """
    transport = request.transport
    if transport is not None:
        transport.close()
    return web.Response(status=500)


async def _read_body(request: web.BaseRequest) -> bytes | None:
    if not request.body_exists:
        return b""
    length = request.content_length
    if length is not None and length <= SMALL_REQUEST:
        return await request.read()
    if length is not None and length > MAX_REQUEST_BODY:
        return None
    data = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK):
        data += chunk
        if len(data) > MAX_REQUEST_BODY:
            return None
    return bytes(data)
