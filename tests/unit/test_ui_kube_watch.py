"""List + watch into the store against a stand-in API server (a local aiohttp app):
events arrive in order, 410 Gone re-lists, errors are recorded, and stopping ends a
watch blocked in its thread at once."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pykube
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agentops_ui import kube_watch
from agentops_ui.kube_watch import AGENTS, EVENTS, KubeReader, SourceWatch, StreamSlot
from agentops_ui.store import AGENT, Store


def agent(name: str, rv: str) -> dict[str, Any]:
    return {"apiVersion": "agentops.dev/v1alpha1", "kind": "Agent",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}}


class FakeAPI:
    """Serves list and watch of agents; each watch streams the lines queued for it, then stays open."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = [agent("a", "1")]
        self.list_status = 200
        self.watches: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.open_streams = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, dict(request.query)))
        if request.query.get("watch") != "true":
            if self.list_status != 200:
                return web.json_response({"kind": "Status", "message": "agents is forbidden: <no>"}, status=self.list_status)
            return web.json_response({"kind": "AgentList", "metadata": {"resourceVersion": "10"}, "items": self.items})
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        self.open_streams += 1
        try:
            for event in await self.watches.get():
                await response.write(json.dumps(event).encode() + b"\n")
            await asyncio.sleep(3600)  # a quiet watch: the client must be able to end it
        finally:
            self.open_streams -= 1
        return response


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeAPI, str]]:
    fake = FakeAPI()
    app = web.Application()
    app.router.add_get("/apis/agentops.dev/v1alpha1/namespaces/ns/agents", fake.handle)
    server = TestServer(app)
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def reader_for(url: str) -> KubeReader:
    doc = {"clusters": [{"name": "c", "cluster": {"server": url}}], "users": [{"name": "u", "user": {}}],
           "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}], "current-context": "x"}
    return KubeReader(max_connections=4, load_config=lambda: pykube.KubeConfig(doc))


async def until(probe: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube_watch, "BACKOFF", dataclasses.replace(kube_watch.BACKOFF, first_s=0.01))
    monkeypatch.setattr(kube_watch, "MIN_WATCH_S", 0.0)


async def test_list_then_watch_then_relist_on_gone(api: tuple[FakeAPI, str]) -> None:
    fake, url = api
    store = Store()
    pool = ThreadPoolExecutor(2)
    watch = SourceWatch(reader_for(url), pool, store, AGENTS, "ns")
    task = asyncio.create_task(watch.run())
    try:
        await until(lambda: store.sources.get((AGENT, "ns")) is not None and store.sources[(AGENT, "ns")].synced)
        assert list(store.agents) == [("ns", "a")]
        seen: list[tuple[str, str]] = []
        store.on_change = lambda c: seen.append((c.name, c.type))
        fake.items = [agent("b", "11"), agent("c", "14")]  # what the re-list after Gone will find
        await fake.watches.put([
            {"type": "ADDED", "object": agent("b", "11")},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}},
            {"type": "DELETED", "object": agent("a", "13")},
            {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}},
        ])
        await until(lambda: sorted(store.agents) == [("ns", "b"), ("ns", "c")])
        # In order, and the re-list repeats b (same version) without a change.
        assert seen == [("b", "ADDED"), ("a", "DELETED"), ("c", "ADDED")]
        watch_params = [q for _, q in fake.requests if q.get("watch") == "true"]
        assert watch_params[0]["resourceVersion"] == "10" and watch_params[0]["allowWatchBookmarks"] == "true"
        assert sum(1 for _, q in fake.requests if "watch" not in q) == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        started = time.monotonic()
        pool.shutdown(wait=True)  # the blocked watch thread is released by the abort
        assert time.monotonic() - started < 2.0


async def test_errors_are_recorded_and_retried(api: tuple[FakeAPI, str]) -> None:
    fake, url = api
    fake.list_status = 403
    store = Store()
    pool = ThreadPoolExecutor(1)
    task = asyncio.create_task(SourceWatch(reader_for(url), pool, store, AGENTS, "ns").run())
    try:
        await until(lambda: store.sources.get((AGENT, "ns")) is not None and store.sources[(AGENT, "ns")].error is not None)
        assert "403" in str(store.sources[(AGENT, "ns")].error) and "forbidden" in str(store.sources[(AGENT, "ns")].error)
        fake.list_status = 200
        await until(lambda: store.sources[(AGENT, "ns")].error is None and store.synced)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        pool.shutdown(wait=True)


async def test_abort_ends_a_blocked_watch_at_once(api: tuple[FakeAPI, str]) -> None:
    fake, url = api
    reader = reader_for(url)
    slot = StreamSlot()
    delivered: list[str] = []
    await fake.watches.put([{"type": "ADDED", "object": agent("x", "20")}])
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(1) as pool:
        future = loop.run_in_executor(pool, reader.watch, AGENTS, "ns", "10",
                                      lambda t, o: delivered.append(o["metadata"]["name"]), slot)
        await until(lambda: delivered == ["x"])
        started = time.monotonic()
        slot.abort()
        assert await asyncio.wait_for(future, 2.0) == "20"  # the last version seen
        assert time.monotonic() - started < 1.0


def test_events_are_watched_for_this_api_group_only() -> None:
    assert EVENTS.api_version == "v1" and EVENTS.field_selector == "involvedObject.apiVersion=agentops.dev/v1alpha1"


async def test_an_optional_kind_that_is_not_served_is_absent_not_failing(api: tuple[FakeAPI, str],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A 404 on list of an optional kind (ResilienceChecks without their CRD): synced and absent,
    no error for the banners, and listed again later, so installing the CRD is picked up."""
    monkeypatch.setattr(kube_watch, "ABSENT_RETRY_S", 0.01)
    fake, url = api
    fake.list_status = 404
    store = Store()
    pool = ThreadPoolExecutor(1)
    optional = dataclasses.replace(AGENTS, optional=True)
    task = asyncio.create_task(SourceWatch(reader_for(url), pool, store, optional, "ns").run())
    try:
        await until(lambda: store.sources.get((AGENT, "ns")) is not None and store.sources[(AGENT, "ns")].absent is not None)
        state = store.sources[(AGENT, "ns")]
        assert state.synced and state.error is None and "404" in str(state.absent) and store.synced
        fake.list_status = 200
        await until(lambda: store.sources[(AGENT, "ns")].absent is None and list(store.agents) == [("ns", "a")])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        pool.shutdown(wait=True)


def test_checks_are_watched_as_an_optional_kind() -> None:
    assert kube_watch.CHECKS in kube_watch.RESOURCES and kube_watch.CHECKS.optional and kube_watch.CHECKS.plural == "resiliencechecks"
    assert not any(r.optional for r in kube_watch.RESOURCES if r is not kube_watch.CHECKS)
