"""The operator's HTTP API for sidecars (aiohttp).

    POST /v1/telemetry                          a telemetry report (agentops.wire)
    GET  /v1/assignments/{namespace}/{agent}    the agent's fault set; long poll with
                                                ?version=<held>&wait=<seconds>
    GET  /healthz                               liveness (no auth)
    GET  /metrics                               Prometheus (no auth; no secrets in it)
    POST /mutate-pods                           sidecar injection, for the API server (no auth;
                                                operator/admission.py; unless --webhook-configuration off)

`/v1/*` needs `Authorization: Bearer <token>`: the caller's identity (authentication)
and then its right to speak for the Agent named in the path or the report
(authorization). Every refusal is a 4xx (or a 503 when the identity could not be
checked) with a JSON body `{"error": "..."}` that says what was wrong, and changes
nothing: a report is validated and authorized whole before any of it is stored.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Awaitable, Callable, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agentops.errors import InvalidField
from agentops.times import format_time
from agentops.wire import AssignmentSet, FaultAssignment, TelemetryReport, validate_report
from agentops_operator.authentication import Authenticator
from agentops_operator.authorization import AgentIdentity, authorize
from agentops_operator.callers import Caller, Refused
from agentops_operator.metrics import OperatorMetrics
from agentops_operator.records import UnknownAgent
from agentops_operator.resources import Key

log = logging.getLogger(__name__)

# A report is a few KiB; 256 KiB leaves room for a full histogram and many faults
# while refusing anything that would make one request expensive.
MAX_BODY_BYTES = 256 * 1024
# Long polls are capped so that proxies and load balancers never cut them first.
MAX_WAIT_S = 55.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SidecarPort(Protocol):
    """What the API needs of the operator (the Reconciler implements it)."""

    @property
    def synced(self) -> bool: ...
    def ingest(self, report: TelemetryReport) -> None: ...
    def knows(self, key: Key) -> bool: ...
    async def wait_assignments(self, key: Key, held: int | None, wait_s: float) -> tuple[int, tuple[FaultAssignment, ...], str | None]: ...
    def now(self) -> datetime: ...
    def waiting_polls(self) -> int: ...
    def identity(self, key: Key) -> AgentIdentity | None: ...
    def refused(self, key: Key, caller: Caller, refusal: Refused) -> None: ...


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def _refusal(metrics: OperatorMetrics, refusal: Refused) -> web.Response:
    metrics.api_refusals.labels(reason=refusal.reason).inc()
    headers: dict[str, str] = {}
    if refusal.status == 401:
        headers["WWW-Authenticate"] = "Bearer" if refusal.reason == "missing_token" else 'Bearer error="invalid_token"'
    elif refusal.status == 503:
        headers["Retry-After"] = "1"
    return _error(refusal.status, refusal.message, **headers)


def build_app(operator: SidecarPort, metrics: OperatorMetrics, *, auth: Authenticator, lease_s: float,
              admission: Handler | None = None) -> web.Application:
    """The API; with `admission`, also the sidecar-injection webhook at POST /mutate-pods (operator/admission.py)."""
    def check(request: web.Request, key: Key) -> None:
        """Raise Refused unless this request's caller may speak for `key` (an Event on the Agent when refused)."""
        caller: Caller = request["caller"]
        try:
            authorize(caller, key, operator.identity(key))
        except Refused as refusal:
            operator.refused(key, caller, refusal)
            raise

    @web.middleware
    async def errors_and_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.path.startswith("/v1/"):
                request["caller"] = await auth.authenticate(request.headers.get("Authorization", ""))
            return await handler(request)
        except Refused as refusal:
            return _refusal(metrics, refusal)
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        except web.HTTPException as exc:
            if exc.status >= 400:
                return _error(exc.status, exc.reason, **{k: v for k, v in exc.headers.items() if k == "Allow"})
            raise

    async def telemetry(request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return _error(415, f"Content-Type must be application/json, got {request.content_type or 'none'}")
        raw = await request.read()
        try:
            payload = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            metrics.telemetry_reports.labels(result="malformed").inc()
            return _error(400, f"body is not valid JSON: {exc}")
        try:
            report = validate_report(payload)
        except InvalidField as exc:
            metrics.telemetry_reports.labels(result="invalid").inc()
            return _error(422, f"invalid telemetry report: {exc}")
        check(request, Key(report["agent"]["namespace"], report["agent"]["name"]))
        try:
            operator.ingest(report)
        except UnknownAgent as exc:
            metrics.telemetry_reports.labels(result="unknown_agent").inc()
            return _error(404, str(exc))
        metrics.telemetry_reports.labels(result="accepted").inc()
        return web.json_response({"accepted": True}, status=202)

    async def assignments(request: web.Request) -> web.Response:
        if not operator.synced:
            return _error(503, "operator is still listing resources; retry shortly", **{"Retry-After": "1"})
        key = Key(request.match_info["namespace"], request.match_info["agent"])
        try:
            held = int(request.query["version"]) if "version" in request.query else None
            wait = float(request.query.get("wait", "0"))
        except ValueError:
            return _error(400, "query parameters: version must be an integer and wait a number of seconds")
        if not 0 <= wait <= MAX_WAIT_S:
            return _error(400, f"query parameter wait must be between 0 and {MAX_WAIT_S:g} seconds")
        check(request, key)
        if not operator.knows(key):
            return _error(404, f"agent {key} does not exist (or is not watched by this operator)")
        version, faults, restart = await operator.wait_assignments(key, held, wait)
        if not operator.knows(key):  # deleted while we waited
            return _error(404, f"agent {key} was deleted")
        body = AssignmentSet(
            agent={"namespace": key.namespace, "name": key.name},
            version=version,
            leaseSeconds=lease_s,
            # Milliseconds, unlike status times: sidecars read expiresAt against this
            # clock, and a truncated second would let a fault run up to 1 s too long.
            serverTime=format_time(operator.now(), milliseconds=True),
            faults=list(faults),
            restart=restart,
        )
        return web.json_response(body)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def metrics_page(_: web.Request) -> web.Response:
        metrics.assignment_waiters.set(operator.waiting_polls())
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(middlewares=[errors_and_auth], client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/v1/telemetry", telemetry)
    app.router.add_get("/v1/assignments/{namespace}/{agent}", assignments)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    if admission is not None:
        # Outside /v1/, so no bearer token: the API server calls it (see admission.py).
        app.router.add_post("/mutate-pods", admission)
    return app
