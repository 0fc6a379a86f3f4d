"""The sidecar's lean HTTP/1.1 client against a raw socket server that answers canned bytes.

Each case is one way an HTTP/1.1 peer may delimit or end a response; the client must
return the exact body and only reuse a connection that is really free.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from multidict import CIMultiDict

from agentops_sidecar.upstream_http import StaleConnection, UpstreamPool

Answer = Callable[[bytes], bytes | None]  # request head+body → raw response, or None to hang up


async def serve(answers: list[bytes | None]) -> tuple[asyncio.Server, list[bytes], list[int]]:
    """A server answering requests in order across connections; records requests and connection ids."""
    seen: list[bytes] = []
    conns: list[int] = []
    counter = iter(range(1000))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cid = next(counter)
        try:
            while answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                seen.append(head + await reader.readexactly(length))
                conns.append(cid)
                answer = answers.pop(0)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if b"Connection: close" in answer or (b"Content-Length" not in answer and b"chunked" not in answer
                                                      and not answer.startswith((b"HTTP/1.1 204", b"HTTP/1.1 304"))):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen, conns


# pool_for(answers): a pool to a server that gives `answers` in turn, the requests it saw, its connections.
PoolFor = Callable[[list[bytes | None]], Awaitable[tuple[UpstreamPool, list[bytes], list[int]]]]


@pytest.fixture
async def pool_for() -> AsyncIterator[PoolFor]:
    servers: list[asyncio.Server] = []

    async def make(answers: list[bytes | None]) -> tuple[UpstreamPool, list[bytes], list[int]]:
        server, seen, conns = await serve(answers)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return UpstreamPool("127.0.0.1", port, max_idle=4, read_timeout_s=2.0), seen, conns

    yield make
    for s in servers:
        s.close()


async def body_of(pool: UpstreamPool, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    response = await pool.request(method, "/p?q=1", CIMultiDict({"Host": "agent"}), body, small_body=16)
    if response.body is not None:
        response.release()
        return response.status, response.body
    return response.status, b"".join([chunk async for chunk in response.stream()])


async def test_small_bodies_and_keep_alive(pool_for: PoolFor) -> None:
    pool, seen, conns = await pool_for([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
                                        b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\nX-A: 1\r\n\r\nyes"])
    assert await body_of(pool, "POST", b'{"a":1}') == (200, b"hi")
    assert await body_of(pool) == (201, b"yes")
    assert conns == [0, 0]  # one connection, kept alive
    assert seen[0].startswith(b"POST /p?q=1 HTTP/1.1\r\nHost: agent\r\nContent-Length: 7\r\n\r\n") and seen[0].endswith(b'{"a":1}')
    assert b"Content-Length" not in seen[1]  # a GET without a body states none


async def test_large_chunked_and_close_delimited_bodies_stream(pool_for: PoolFor) -> None:
    pool, _, conns = await pool_for([
        b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"x" * 40,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: t\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ])
    assert await body_of(pool) == (200, b"x" * 40)  # over small_body: streamed
    assert await body_of(pool) == (200, b"hello world")
    assert await body_of(pool) == (200, b"until the end")
    assert await body_of(pool) == (200, b"ok")
    assert conns == [0, 0, 0, 1]  # a close-delimited body ends its connection


async def test_interim_and_bodiless_answers(pool_for: PoolFor) -> None:
    pool, _, conns = await pool_for([
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n.",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n?",
    ])
    assert await body_of(pool) == (200, b"!")
    assert await body_of(pool) == (204, b"")
    assert await body_of(pool) == (200, b".")
    assert await body_of(pool) == (200, b"?")
    assert conns == [0, 0, 0, 1]  # "Connection: close" is honoured


async def test_a_connection_closed_while_idle_is_not_reused(pool_for: PoolFor) -> None:
    pool, _, conns = await pool_for([b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", None,
                                     b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"])
    assert await body_of(pool) == (200, b"a")
    # The server hangs up on the next request on that connection: a stale connection.
    with pytest.raises(StaleConnection):
        await body_of(pool)
    assert await body_of(pool) == (200, b"b")
    assert conns == [0, 0, 1]


async def test_broken_answers_are_client_errors(pool_for: PoolFor) -> None:
    pool, _, _ = await pool_for([b"SMTP ready\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort"])
    with pytest.raises(aiohttp.ClientPayloadError, match="status line"):
        await body_of(pool)
    with pytest.raises(aiohttp.ClientError):
        await body_of(pool)


async def test_an_agent_that_never_answers_times_out(pool_for: PoolFor) -> None:
    server = await asyncio.start_server(lambda r, w: asyncio.sleep(10), "127.0.0.1", 0)
    pool = UpstreamPool("127.0.0.1", server.sockets[0].getsockname()[1], max_idle=1, read_timeout_s=0.2)
    with pytest.raises(TimeoutError):
        await body_of(pool)
    server.close()


async def test_nobody_listening_is_a_connection_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(aiohttp.ClientOSError, match="cannot connect to the agent"):
        await body_of(UpstreamPool("127.0.0.1", port, max_idle=1, read_timeout_s=1))


async def test_slots_bound_concurrent_exchanges_and_come_back_after_a_partial_read(pool_for: PoolFor) -> None:
    pool, _, _ = await pool_for([b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"y" * 40,
                                 b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"])
    pool = UpstreamPool(pool.host, pool.port, max_idle=1, max_connections=1, read_timeout_s=2.0)
    first = await pool.request("GET", "/", CIMultiDict({"Host": "a"}), None, small_body=16)
    assert first.body is None and pool.in_use == 1
    second = asyncio.create_task(body_of(pool))
    await asyncio.sleep(0.1)
    assert not second.done()  # waiting for the only slot
    stream = first.stream()
    await stream.__anext__()  # read a little, then give up (as a caller that went away)
    await stream.aclose()
    assert await asyncio.wait_for(second, 2) == (200, b"z")
    assert pool.in_use == 0
