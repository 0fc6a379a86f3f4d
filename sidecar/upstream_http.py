"""A lean HTTP/1.1 client for the sidecar → agent hop.

Why not aiohttp's ClientSession for every request: profiled, its per-request machinery
(request/response objects, tracing hooks, cookie and redirect handling, timers) was
more than half of the sidecar's own CPU per request, and the issue's overhead budget is
half a millisecond. The agent is one fixed HTTP/1.1 peer on loopback, so a small
keep-alive pool over asyncio streams does the common exchange with far less work.

Scope (everything else goes through aiohttp, chosen per request by `Proxy`):
* requests whose body is absent or already in memory (`bytes`), not HEAD, CONNECT or
  an `Upgrade`/`Expect` request;
* any response: with Content-Length, chunked, or delimited by the connection closing.
  Small bodies are returned whole; others are streamed as they arrive.

A connection goes back to the pool only after its response was read completely and
neither side said `Connection: close`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict

MAX_HEAD_BYTES = 64 * 1024
CHUNK = 64 * 1024
CONNECT_TIMEOUT_S = 5.0
# Idle connections older than this are closed rather than reused: shorter than common
# server keep-alive timeouts (aiohttp's 75 s, nginx's 75 s, Node's 5 s is the outlier
# and shows as EOF, caught below), so the agent rarely closes one as we reuse it.
MAX_IDLE_S = 30.0
NO_BODY_STATUS = frozenset({204, 304})


class StaleConnection(aiohttp.ServerDisconnectedError):
    """A pooled connection was closed by the agent before any answer: safe to retry idempotent requests."""


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False
    idle_since: float = 0.0
    in_use: bool = False  # holds one of the pool's slots

    def close(self) -> None:
        self.writer.close()


@dataclass
class UpstreamResponse:
    status: int
    reason: str
    headers: CIMultiDict[str]
    body: bytes | None  # the whole body when small and delimited; else read `stream()`
    _conn: _Conn
    _pool: UpstreamPool
    _mode: str  # "done" (body read), "length", "chunked" or "close" (until EOF)
    _reusable: bool = True  # neither side said Connection: close
    _remaining: int = 0

    async def stream(self) -> AsyncGenerator[bytes, None]:
        """The body, chunk by chunk, as the agent sends it; returns the connection after."""
        reader, timeout = self._conn.reader, self._pool.read_timeout_s
        try:
            if self._mode == "length":
                while self._remaining > 0:
                    async with asyncio.timeout(timeout):
                        chunk = await reader.read(min(CHUNK, self._remaining))
                    if not chunk:
                        raise aiohttp.ClientPayloadError("the agent closed the connection mid-body")
                    self._remaining -= len(chunk)
                    yield chunk
            elif self._mode == "chunked":
                while True:
                    async with asyncio.timeout(timeout):
                        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                        if size == 0:
                            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                                pass  # trailers: not passed on
                            break
                        chunk = await reader.readexactly(size + 2)
                    yield chunk[:-2]
            elif self._mode == "close":
                while True:
                    async with asyncio.timeout(timeout):
                        chunk = await reader.read(CHUNK)
                    if not chunk:
                        break
                    yield chunk
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError) as exc:
            self._pool.release(self._conn, reusable=False)
            raise aiohttp.ClientPayloadError(f"broken response body from the agent: {exc.__class__.__name__}") from exc
        except BaseException:  # cancelled, timed out, or the caller stopped reading (aclose)
            self._pool.release(self._conn, reusable=False)
            raise
        self._pool.release(self._conn, reusable=self._reusable and self._mode != "close")

    def release(self) -> None:
        """The whole body is in `body`: hand the connection back."""
        self._pool.release(self._conn, reusable=self._reusable)


class UpstreamPool:
    def __init__(self, host: str, port: int, *, max_idle: int, read_timeout_s: float, max_connections: int | None = None) -> None:
        self.host, self.port = host, port
        self.max_idle, self.read_timeout_s = max_idle, read_timeout_s
        self._idle: list[_Conn] = []
        # At most this many exchanges with the agent at once; more wait for a slot, as
        # with aiohttp's connector limit, so a burst of callers cannot flood the agent.
        self._slots = asyncio.Semaphore(max_connections or max_idle)
        self.in_use = 0

    async def _connect(self) -> _Conn:
        now = asyncio.get_running_loop().time()
        while self._idle:
            conn = self._idle.pop()
            if conn.reader.at_eof() or conn.writer.is_closing() or now - conn.idle_since > MAX_IDLE_S:
                conn.close()  # the agent closed it, or it sat too long to trust
                continue
            conn.reused = True
            return conn
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(self.host, self.port, limit=MAX_HEAD_BYTES)
        except OSError as exc:
            raise aiohttp.ClientOSError(exc.errno, f"cannot connect to the agent at {self.host}:{self.port}: {exc.strerror or exc}") from exc
        return _Conn(reader, writer)

    def release(self, conn: _Conn, *, reusable: bool) -> None:
        """The exchange on `conn` is over: keep it for the next one, or close it."""
        if conn.in_use:
            conn.in_use = False
            self.in_use -= 1
            self._slots.release()
        if reusable and len(self._idle) < self.max_idle and not conn.reader.at_eof() and not conn.writer.is_closing():
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.append(conn)
        else:
            conn.close()

    def reset(self) -> None:
        """Close every idle connection (the agent behind them was replaced)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    async def request(self, method: str, target: str, headers: CIMultiDict[str], body: bytes | None,
                      *, small_body: int) -> UpstreamResponse:
        await self._slots.acquire()
        try:
            conn = await self._connect()
        except BaseException:
            self._slots.release()
            raise
        conn.in_use = True
        self.in_use += 1
        lines = [f"{method} {target} HTTP/1.1"]
        # The length is ours to state (the body is in memory); a caller's could disagree.
        lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "content-length"]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        try:
            conn.writer.write(payload)
            async with asyncio.timeout(self.read_timeout_s):
                while True:
                    head = await conn.reader.readuntil(b"\r\n\r\n")
                    status, reason, out = _parse_head(head)
                    if status >= 200:
                        break  # 1xx interim answers (100 Continue, 103 Early Hints) are skipped
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self.release(conn, reusable=False)
            if conn.reused and not getattr(exc, "partial", b""):
                raise StaleConnection() from exc
            raise aiohttp.ServerDisconnectedError() from exc
        except (asyncio.LimitOverrunError, ValueError) as exc:
            self.release(conn, reusable=False)
            raise aiohttp.ClientPayloadError(f"unreadable response head from the agent: {exc}") from exc
        except BaseException:
            self.release(conn, reusable=False)
            raise
        reusable = "close" not in out.get("Connection", "").lower()
        response = UpstreamResponse(status, reason, out, None, conn, self, "done", _reusable=reusable)
        if method == "HEAD" or status in NO_BODY_STATUS:
            response.body = b""
        elif "chunked" in out.get("Transfer-Encoding", "").lower():
            response._mode = "chunked"
        elif (length := out.get("Content-Length")) is not None and length.isdigit():
            n = int(length)
            if n <= small_body:
                try:
                    async with asyncio.timeout(self.read_timeout_s):
                        response.body = await conn.reader.readexactly(n)
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    self.release(conn, reusable=False)
                    raise aiohttp.ClientPayloadError("the agent closed the connection mid-body") from exc
                except BaseException:
                    self.release(conn, reusable=False)
                    raise
            else:
                response._mode, response._remaining = "length", n
        else:
            response._mode = "close"
        return response


def _parse_head(head: bytes) -> tuple[int, str, CIMultiDict[str]]:
    lines = head[:-4].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    code, _, reason = rest.partition(" ")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ValueError(f"malformed header line {line[:80]!r}")
        headers.add(name, value.strip())
    return int(code), reason, headers
