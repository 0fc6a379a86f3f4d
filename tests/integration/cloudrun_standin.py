"""A local stand-in for the Cloud Run Admin API v2 REST surface the runtime backend uses.

Enough of the real behaviour to drive the real `run_v2.ServicesClient` (REST
transport) through a restart: services kept in memory with etag, generation,
template, latest created/ready revision, terminal condition and traffic; a template
change creates a revision; PATCH answers with a long-running Operation that becomes
done after a number of polls. Every request is recorded for assertions.

Scenarios (per service, `CloudRunStandIn.add_service(..., scenario=...)`):
- "normal": the new revision becomes ready.
- "forbidden": every call on the service answers 403 PERMISSION_DENIED.
- "hang": operations on the service never complete.
- "revision-fails": the operation completes with the Service, whose terminal
  condition failed; the latest ready revision stays the previous one.
- "operation-error": the operation completes with an error (google.rpc.Status).
- "conflict-once": the first PATCH answers 409 ABORTED (a concurrent writer).
A traffic-only change (no new revision) always completes, except under "hang".

Unknown services answer 404 NOT_FOUND. Runs in a thread with its own event loop on a
port the OS picks.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

Scenario = Literal["normal", "forbidden", "hang", "revision-fails", "operation-error", "conflict-once"]

SERVICE_TYPE = "type.googleapis.com/google.cloud.run.v2.Service"
# What the server owns: a client sends these back from a GET, the server ignores them.
OUTPUT_ONLY = frozenset({
    "uid", "generation", "etag", "createTime", "updateTime", "creator", "lastModifier",
    "observedGeneration", "terminalCondition", "conditions", "latestReadyRevision",
    "latestCreatedRevision", "trafficStatuses", "uri", "urls", "reconciling",
})
FAILED_MESSAGE = ("Revision '{revision}' is not ready and cannot serve traffic. The user-provided container "
                  "failed to start and listen on the port defined by the PORT=8080 environment variable.")
_HTTP_STATUS = {403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ABORTED"}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None
    authorization: str | None = None


@dataclass
class _Service:
    body: dict[str, Any]
    scenario: Scenario
    revisions: int = 1
    patches: int = 0


@dataclass
class _Operation:
    name: str
    service: str  # the service's resource name
    polls_left: int | None  # None: never done
    new_revision: str | None  # the revision this update created, if any
    result: dict[str, Any] = field(default_factory=dict)  # {"response": ...} or {"error": ...} once done


def service_body(name: str, image: str = "agents/chat:1.0") -> dict[str, Any]:
    """A ready service with one revision taking all traffic, as GET returns it."""
    short = name.rsplit("/", 1)[-1]
    revision = f"{name}/revisions/{short}-00001-abc"
    return {
        "name": name,
        "uid": str(uuid.uuid4()),
        "generation": "1",
        "etag": '"gen-1"',
        "annotations": {},
        "template": {
            "serviceAccount": "agent-runtime@project.iam.gserviceaccount.com",
            "containers": [{"image": image, "env": [{"name": "MODEL", "value": "gemini-flash"}],
                            "ports": [{"containerPort": 8080}]}],
            "annotations": {"team": "agents"},
        },
        "traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
        "latestCreatedRevision": revision,
        "latestReadyRevision": revision,
        "terminalCondition": {"type": "Ready", "state": "CONDITION_SUCCEEDED"},
        "reconciling": False,
    }


class CloudRunStandIn:
    """`with CloudRunStandIn() as api:` serves on `api.endpoint` until the block ends."""

    def __init__(self, *, polls_until_done: int = 1) -> None:
        # GETs of an operation (or of its service) before it reports done; 0 = done in the PATCH answer.
        self.polls_until_done = polls_until_done
        self.requests: list[Recorded] = []
        self.services: dict[str, _Service] = {}
        self._operations: dict[str, _Operation] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # tests read state from their own thread
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="cloudrun-standin", daemon=True)
        self.endpoint = ""

    # --- test-facing ---------------------------------------------------------------

    def add_service(self, project: str, region: str, service: str, *, scenario: Scenario = "normal",
                    **overrides: Any) -> str:
        name = f"projects/{project}/locations/{region}/services/{service}"
        body = service_body(name)
        body.update(overrides)
        with self._lock:
            self.services[name] = _Service(body, scenario)
        return name

    def set_scenario(self, name: str, scenario: Scenario) -> None:
        """Change how the service behaves from now on; leaving "hang" lets its operations finish."""
        with self._lock:
            self.services[name].scenario = scenario
            if scenario != "hang":
                for op in self._operations.values():
                    if op.service == name and op.polls_left is None:
                        op.polls_left = self.polls_until_done

    def service(self, name: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.services[name].body)

    def calls(self, method: str, path_part: str = "") -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == method and path_part in r.path]

    def __enter__(self) -> CloudRunStandIn:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    # --- server --------------------------------------------------------------------

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_get("/v2/projects/{p}/locations/{l}/services/{s}", self._get_service)
        app.router.add_patch("/v2/projects/{p}/locations/{l}/services/{s}", self._patch_service)
        app.router.add_get("/v2/projects/{p}/locations/{l}/operations/{o}", self._get_operation)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def _record(self, request: web.Request) -> tuple[str, dict[str, Any] | None]:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(Recorded(request.method, request.path, dict(request.query), body,
                                          request.headers.get("Authorization")))
        return request.path.removeprefix("/v2/"), body

    async def _get_service(self, request: web.Request) -> web.Response:
        name, _ = await self._record(request)
        with self._lock:
            refused = self._refusal(name)
            if refused is not None:
                return refused
            for op in self._operations.values():
                if op.service == name:
                    self._advance(op)
            return web.json_response(self.services[name].body)

    async def _patch_service(self, request: web.Request) -> web.Response:
        name, body = await self._record(request)
        query = request.query
        with self._lock:
            if name not in self.services and query.get("allowMissing") == "true":
                self.services[name] = _Service(service_body(name), "normal")
            refused = self._refusal(name)
            if refused is not None:
                return refused
            state = self.services[name]
            state.patches += 1
            if state.scenario == "conflict-once" and state.patches == 1:
                return _error(409, "the service was modified concurrently; read it again")
            sent = body or {}
            if sent.get("etag") and sent["etag"] != state.body["etag"]:
                return _error(409, f"etag {sent['etag']} does not match the current etag {state.body['etag']}")
            updated = _apply(state.body, sent, query.get("updateMask"))
            new_revision = None
            if updated["template"] != state.body["template"]:
                state.revisions += 1
                new_revision = f"{name}/revisions/{name.rsplit('/', 1)[-1]}-{state.revisions:05d}-{uuid.uuid4().hex[:3]}"
                updated["latestCreatedRevision"] = new_revision
                updated["terminalCondition"] = {"type": "Ready", "state": "CONDITION_RECONCILING"}
                updated["reconciling"] = True
            generation = int(state.body["generation"]) + 1
            updated.update(generation=str(generation), etag=f'"gen-{generation}"')
            project, region = request.match_info["p"], request.match_info["l"]
            op = _Operation(f"projects/{project}/locations/{region}/operations/{uuid.uuid4()}", name,
                            None if state.scenario == "hang" else self.polls_until_done, new_revision)
            if query.get("validateOnly") != "true":
                state.body = updated
                self._operations[op.name] = op
                self._advance(op, poll=False)
            else:
                op.polls_left, op.result = 0, {"response": {"@type": SERVICE_TYPE, **updated}}
            return web.json_response(_operation_json(op, updated))

    async def _get_operation(self, request: web.Request) -> web.Response:
        name, _ = await self._record(request)
        with self._lock:
            op = self._operations.get(name)
            if op is None:
                return _error(404, f"operation {name} not found")
            self._advance(op)
            return web.json_response(_operation_json(op, self.services[op.service].body))

    def _refusal(self, name: str) -> web.Response | None:
        state = self.services.get(name)
        if state is None:
            return _error(404, f"Resource '{name.rsplit('/', 1)[-1]}' of kind 'SERVICE' in region "
                               f"'{name.split('/')[3]}' in project '{name.split('/')[1]}' does not exist.")
        if state.scenario == "forbidden":
            return _error(403, f"Permission 'run.services.get' denied on resource '{name}' (or it may not exist).")
        return None

    def _advance(self, op: _Operation, *, poll: bool = True) -> None:
        """Count one poll; on reaching zero, settle the service as its scenario says."""
        if op.result or op.polls_left is None:
            return
        if poll:
            op.polls_left -= 1
        if op.polls_left > 0:
            return
        state = self.services[op.service]
        body = state.body
        body["reconciling"] = False
        scenario = state.scenario if op.new_revision else "traffic-only"
        if scenario == "operation-error":
            op.result = {"error": {"code": 9, "message": FAILED_MESSAGE.format(revision=op.new_revision)}}
            body["terminalCondition"] = {"type": "Ready", "state": "CONDITION_FAILED",
                                         "message": op.result["error"]["message"]}
            return
        if scenario == "revision-fails":
            body["terminalCondition"] = {"type": "Ready", "state": "CONDITION_FAILED",
                                         "message": FAILED_MESSAGE.format(revision=op.new_revision)}
        else:
            body["terminalCondition"] = {"type": "Ready", "state": "CONDITION_SUCCEEDED"}
            if op.new_revision:
                body["latestReadyRevision"] = op.new_revision
        op.result = {"response": {"@type": SERVICE_TYPE, **body}}


def _apply(current: dict[str, Any], sent: dict[str, Any], update_mask: str | None) -> dict[str, Any]:
    """The service after an update: the sent writable fields (only those in the mask, if any)."""
    updated = copy.deepcopy(current)
    writable = {k: v for k, v in sent.items() if k not in OUTPUT_ONLY and k != "name"}
    if update_mask:
        writable = {k: v for k, v in writable.items() if k in update_mask.split(",")}
    else:
        # Without a mask the sent service replaces the stored one (omitted fields are cleared).
        for key in [k for k in updated if k not in OUTPUT_ONLY and k != "name"]:
            del updated[key]
    updated.update(copy.deepcopy(writable))
    return updated


def _operation_json(op: _Operation, service: dict[str, Any]) -> dict[str, Any]:
    return {"name": op.name, "metadata": {"@type": SERVICE_TYPE, **service}, "done": bool(op.result), **op.result}


def _error(code: int, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, "status": _HTTP_STATUS[code]}}, status=code)
