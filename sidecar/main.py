"""`agentops sidecar`: wires the proxy, prober, operator link and supervisor together.

Start order: the proxy's upstream client, the model gateway's provider client and the
control-traffic client, then the agent (supervisor mode), the prober, the operator
link, and last the admin port, the model gateway port and the proxy port. Nothing here waits for the operator, so traffic flows even before the operator
is reached — the sidecar never blocks an agent's callers on its own control plane.

Each part is registered on one exit stack as soon as it runs, so the stop order is the
exact reverse: the proxy port first, its in-flight requests given `SHUTDOWN_GRACE_S`
to finish while the agent still runs; then the admin port; then the link, the prober
and the agent; then the clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

import aiohttp
from aiohttp import web

from agentops.errors import ConfigError
from agentops.logs import configure_logging
from agentops_sidecar.admin import build_admin_app
from agentops_sidecar.faults import Fault, FaultTable
from agentops_sidecar.identity import token_source
from agentops_sidecar.instance import Instance
from agentops_sidecar.model_routes import PREFIXES
from agentops_sidecar.metrics import SidecarCollector, registry
from agentops_sidecar.model_gateway import ModelGateway
from agentops_sidecar.model_signals import ModelCollector, ModelTotals
from agentops_sidecar.operator_link import OperatorLink
from agentops_sidecar.operator_tls import OperatorTLS
from agentops_sidecar.prober import Prober
from agentops_sidecar.proxy import Proxy, Recorder
from agentops_sidecar.settings import SidecarSettings, from_args
from agentops_sidecar.supervisor import Supervisor

log = logging.getLogger("agentops_sidecar")

SHUTDOWN_GRACE_S = 10.0


async def serve(settings: SidecarSettings) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    table = FaultTable()
    recorder = Recorder(loop.time())
    instance = Instance(settings.sidecar_id)

    def faults_changed(effective: tuple[Fault, ...]) -> None:
        recorder.window.applied.update(f.uid for f in effective)

    table.on_change(faults_changed)
    proxy = Proxy(settings.upstream, table, recorder,
                  upstream_timeout_s=settings.upstream_timeout_s, max_connections=settings.max_upstream_connections)
    async with contextlib.AsyncExitStack() as stack:
        await proxy.start()
        stack.push_async_callback(proxy.close)
        model_totals = ModelTotals()
        gateway: ModelGateway | None = None
        if settings.model_gateway:
            gateway = ModelGateway(table, recorder, model_totals, upstreams={PREFIXES[k]: v for k, v in settings.model_upstreams},
                                   read_timeout_s=settings.upstream_timeout_s, max_connections=settings.max_upstream_connections)
            await gateway.start()
            stack.push_async_callback(gateway.close)
        # Control traffic gets its own small pool, so a saturated proxy pool never delays
        # a lease renewal or a probe.
        control = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8))
        stack.push_async_callback(control.close)
        supervisor = Supervisor(settings.command, instance, grace_s=settings.restart_grace_s) if settings.command else None
        prober = Prober(control, settings.upstream + settings.health_path, interval_s=settings.probe_interval_s,
                        timeout_s=settings.probe_timeout_s, startup_grace_s=settings.startup_grace_s,
                        table=table, recorder=recorder, instance=instance)
        tls = OperatorTLS(settings.operator_ca_file)
        link = OperatorLink(settings, control, tokens=token_source(settings), tls=tls, table=table, recorder=recorder,
                            instance=instance, prober=prober, restart=supervisor.restart if supervisor else None)
        instance.on_replaced(lambda _old, _new: _instance_replaced(table, proxy, loop.time()))
        instance.on_replaced(link.instance_replaced)
        prober.on_result = link.probe_result
        reg = registry(SidecarCollector(recorder, table, link, prober, supervisor, loop.time))
        reg.register(ModelCollector(model_totals))

        tasks: list[asyncio.Task[None]] = []

        def start(name: str, coro: Coroutine[Any, Any, None]) -> None:
            task = asyncio.create_task(coro, name=name)
            tasks.append(task)
            stack.push_async_callback(_stop, task)

        if supervisor is not None:
            start("supervisor", supervisor.run())
            stack.push_async_callback(supervisor.stop)  # the agent, with its grace period; then the task
        start("prober", prober.run())
        start("assignments", link.poll_assignments())
        start("telemetry", link.push_telemetry())
        start("deadlines", _deadlines(table))

        admin_app = build_admin_app(settings, table=table, link=link, tls=tls, prober=prober, instance=instance,
                                    supervisor=supervisor, registry=reg)
        await _listen(stack, web.AppRunner(admin_app, access_log=None), settings.admin_host, settings.admin_port, "--admin-listen")
        if gateway is not None:
            # A port that is taken stops the sidecar, as for its other ports: running on
            # without the gateway would leave the agent's SDKs talking to whatever holds
            # the port — on a shared host, another agent's gateway, with its faults and
            # its signals. Several sidecars on one host each need a --model-gateway-listen.
            # A bare Server like the proxy's; handler_cancellation so that an agent giving
            # up on a call (its SDK's timeout) ends the call here too, hung or streaming.
            gateway_server = web.Server(gateway.handle, access_log=None, handler_cancellation=True)
            await _listen(stack, web.ServerRunner(gateway_server, shutdown_timeout=SHUTDOWN_GRACE_S),
                          settings.model_gateway_host, settings.model_gateway_port, "--model-gateway-listen")
        # The proxy port is a bare aiohttp Server: every path goes to one handler, so the
        # Application's router and middleware chain would be pure per-request cost.
        proxy_server = web.Server(proxy.handle, access_log=None)
        await _listen(stack, web.ServerRunner(proxy_server, shutdown_timeout=SHUTDOWN_GRACE_S),
                      settings.listen_host, settings.listen_port, "--listen")
        log.info("sidecar for %s/%s: proxy on %s:%d → %s, admin on %s:%d, model gateway on %s%s", settings.namespace, settings.agent,
                 settings.listen_host, settings.listen_port, settings.upstream, settings.admin_host, settings.admin_port,
                 settings.model_gateway_address or "(off)",
                 f", supervising {' '.join(settings.command)}" if settings.command else "",
                 extra={"settings": settings.redacted()})
        _tune_gc()

        stopped = asyncio.create_task(stop.wait(), name="stop-signal")
        stack.push_async_callback(_stop, stopped)
        finished, _ = await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in finished:
            if task is not stopped and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        log.info("stopping")


async def _listen(stack: contextlib.AsyncExitStack, runner: web.BaseRunner, host: str, port: int, flag: str) -> None:
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot listen on {host}:{port} ({exc.strerror or exc})") from exc


async def _stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _tune_gc() -> None:
    """Fewer, cheaper garbage collections on the request path.

    Everything allocated at start-up (modules, settings, apps) is moved out of the
    collector's view, and the young generation is collected every 50,000 allocations
    instead of 700: a proxied request allocates a few hundred short-lived objects, and
    the default threshold ran a young collection every few requests. Reference cycles
    are rare here, so the memory cost is small (RSS is in `make bench`).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _instance_replaced(table: FaultTable, proxy: Proxy, now: float) -> None:
    proxy.instance_replaced()
    cured = table.instance_replaced(now)
    for fault in cured:
        log.info("crash fault %s ends for this agent: its instance was replaced", fault.name, extra={"fault": fault.name})


async def _deadlines(table: FaultTable) -> None:
    """Apply expiries and the lease at their moment even when no request arrives."""
    loop = asyncio.get_running_loop()
    while True:
        now = loop.time()
        if now >= table.next_deadline:
            table.refresh(now)
        # Wake at the next deadline, and at least every second so a table replaced
        # in between is looked at promptly.
        await asyncio.sleep(min(1.0, max(0.0, table.next_deadline - loop.time())) + 0.001)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = from_args(sys.argv[2:] if argv is None else argv)
    except ConfigError as exc:
        print(f"agentops sidecar: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if settings.operator_url.startswith("http://") and settings.identity != "static":
        log.warning("--operator-url %s is plain http: this sidecar's %s identity token travels in clear, and anyone who "
                    "sees it can report as this agent until it expires; use https outside local development",
                    settings.operator_url, settings.identity)
    try:
        asyncio.run(serve(settings))
    except ConfigError as exc:  # a port that is taken: everything started is stopped again
        log.error("%s", exc)
        return 2
    return 0
