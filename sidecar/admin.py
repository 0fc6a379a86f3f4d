"""The sidecar's own endpoints, on a port apart from the proxied traffic.

    GET /healthz   the sidecar process is alive (liveness; never depends on the agent)
    GET /readyz    200 when the last probe of the agent passed, else 503 (readiness)
    GET /metrics   Prometheus
    GET /v1/state  what it enforces now and why, as JSON (for people and tests)

A separate port keeps these paths from shadowing the agent's own routes.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from agentops_sidecar.faults import FaultTable
from agentops_sidecar.instance import Instance
from agentops_sidecar.operator_link import OperatorLink
from agentops_sidecar.operator_tls import OperatorTLS
from agentops_sidecar.prober import Prober
from agentops_sidecar.settings import SidecarSettings
from agentops_sidecar.supervisor import Supervisor


def build_admin_app(
    settings: SidecarSettings,
    *,
    table: FaultTable,
    link: OperatorLink,
    tls: OperatorTLS,
    prober: Prober,
    instance: Instance,
    supervisor: Supervisor | None,
    registry: CollectorRegistry,
) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        if prober.last_ok:
            return web.Response(text="ok")
        return web.Response(status=503, text=f"agent not ready: {prober.last_error or 'not probed yet'}")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def state(_: web.Request) -> web.Response:
        now = asyncio.get_running_loop().time()
        if now >= table.next_deadline:
            table.refresh(now)
        lease = table.lease_deadline()
        body: dict[str, Any] = {
            "agent": {"namespace": settings.namespace, "name": settings.agent},
            "instance": {"id": instance.id, "restarts": instance.restarts},
            "supervisedPid": supervisor.pid if supervisor else None,
            "assignmentVersion": table.version,
            "leaseRemainingSeconds": None if math.isinf(lease) else round(max(0.0, lease - now), 3),
            "leaseExpired": table.lease_expired,
            "operatorProblem": link.last_problem,
            # How this sidecar proves who it is, and whom it trusts; never a token.
            "identity": _identity(settings),
            "operatorTls": {"caFile": tls.ca_file, "trust": "caFile" if tls.ca_file else "systemTrustStore",
                            "caLoads": tls.loads, "problem": tls.problem},
            "enforced": [
                {"uid": f.uid, "name": f.name, "type": f.type, "percentage": f.fraction * 100,
                 "expiresInSeconds": round(f.expires_at - now, 3)}
                for f in table.effective
            ],
            "assigned": [f.name for f in table.assigned],
            "cured": sorted(table.cured),
            "probe": {"ok": prober.last_ok, "consecutiveFailures": prober.consecutive_failures, "lastError": prober.last_error},
            "reports": dict(link.reports),
            # HOST:PORT the model gateway listens on; null when it is off.
            "modelGateway": settings.model_gateway_address,
        }
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/state", state)
    return app


def _identity(settings: SidecarSettings) -> dict[str, Any]:
    shown: dict[str, Any] = {"mode": settings.identity}
    if settings.identity == "kubernetes":
        shown["tokenFile"] = settings.identity_token_file
    elif settings.identity == "google":
        shown["audience"] = settings.token_audience
    return shown
