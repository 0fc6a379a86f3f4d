"""Run the operator: kopf watches, the reconcile loop, the status writer and the
sidecar HTTP API, all in one asyncio process.

Everything is started in dependency order - the Kubernetes client, the writers
(Firestore mirror, status writer), the restart runner, the reconcile loop, the resync,
and last the sidecar API - and each is registered on one exit stack right after it
starts, so it is stopped in the reverse order, by name: inputs first (the API, whose
waiting sidecars get their connection closed, then the resync), then the reconcile loop
and the restarts it started, then pending writes flushed (bounded by SHUTDOWN_FLUSH_S)
and the writers stopped, then the client closed. A failure part way through start-up
stops what had started.

kopf owns the process signals (SIGINT/SIGTERM end `kopf.operator`); its cleanup handler
and the end of `serve` both run the one shutdown, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from agentops.backoff import Backoff
from agentops_operator.check_controller import CheckController
from agentops_operator.handlers import build_registry
from agentops_operator.api_server import start_api
from agentops_operator.kube_client import KubeClient, KubeError
from agentops_operator.metrics import OperatorMetrics
from agentops_operator.reconciler import Reconciler
from agentops_operator.restart_runner import RestartRunner
from agentops_operator.runtime_cloudrun import CloudRunRuntime
from agentops_operator.runtime_kubernetes import KubernetesRuntime
from agentops_operator.resources import AGENTS, FAULTS
from agentops_operator.settings import OperatorSettings
from agentops_operator.sidecar_watch import watch_for_bare_pods
from agentops_operator.status_writer import StatusWriter

log = logging.getLogger("agentops.operator")

SHUTDOWN_FLUSH_S = 5.0
# Listing every Agent and Fault failed (API server unreachable or overloaded): retry
# after a second, and during a long outage list at most every 30 s, since each attempt
# is a full list of every watched namespace.
RESYNC_BACKOFF = Backoff(first_s=1.0, cap_s=30.0)


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _list_all(kube: KubeClient, settings: OperatorSettings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Blocking: every Agent and Fault in the watched namespaces."""
    if settings.all_namespaces:
        return kube.list_objects(AGENTS, None), kube.list_objects(FAULTS, None)
    names = [p for p in settings.namespaces if not _is_glob(p)]
    globs = [p for p in settings.namespaces if _is_glob(p)]
    if globs:
        names += [ns for ns in kube.list_namespaces() if any(fnmatch.fnmatchcase(ns, g) for g in globs)]
    agents: list[dict[str, Any]] = []
    faults: list[dict[str, Any]] = []
    for ns in dict.fromkeys(names):
        agents += kube.list_objects(AGENTS, ns)
        faults += kube.list_objects(FAULTS, ns)
    return agents, faults


async def _resync_forever(kube: KubeClient, reconciler: Reconciler, settings: OperatorSettings) -> None:
    failures = 0
    while True:
        started = reconciler.clock.mono()
        try:
            agents, faults = await kube.run(_list_all, kube, settings)
        except KubeError as exc:
            failures += 1
            delay = RESYNC_BACKOFF.delay(failures)
            log.warning("listing agents and faults failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            continue
        first = not reconciler.synced
        reconciler.resync(agents, faults, listed_at=started)
        if first:
            log.info("synced %d agents and %d faults in %.2fs", len(agents), len(faults), reconciler.clock.mono() - started)
        failures = 0
        await asyncio.sleep(settings.resync_interval_s)


async def _stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _flush_then_stop(task: asyncio.Task[None], flushed: Callable[[float], Awaitable[bool]], what: str) -> None:
    """Give the task's pending writes up to SHUTDOWN_FLUSH_S to go out, then stop it."""
    if not await flushed(SHUTDOWN_FLUSH_S):
        log.warning("shutting down with %s still pending", what)
    await _stop(task)


async def serve(settings: OperatorSettings, *, stop_flag: asyncio.Event | None = None) -> None:
    log.info("starting with %s", settings.redacted())
    stack = contextlib.AsyncExitStack()
    stopped = False

    async def shutdown() -> None:
        """Unwind the exit stack once: what started last stops first (see the module docstring)."""
        nonlocal stopped
        if stopped:
            return
        stopped = True
        started = time.monotonic()
        await stack.aclose()
        log.info("stopped in %.2fs", time.monotonic() - started)

    try:
        reconciler, checks = await _start(settings, stack)
        # Let the background tasks spawn their workers before kopf starts: kopf treats
        # tasks created after its start as its own "hung" tasks at exit.
        await asyncio.sleep(0)
        await kopf.operator(
            registry=build_registry(reconciler, shutdown, checks),
            clusterwide=settings.all_namespaces,
            namespaces=settings.namespaces,
            standalone=True,  # one operator per scope; no peering resources needed
            stop_flag=stop_flag,
            liveness_endpoint=settings.liveness_endpoint,
        )
    finally:
        await shutdown()  # kopf may have ended without running cleanup (a crash), or never started


async def _start(settings: OperatorSettings, stack: contextlib.AsyncExitStack) -> tuple[Reconciler, CheckController]:
    """Start everything but kopf, registering each part's stop on `stack` as soon as it runs."""
    metrics = OperatorMetrics()
    kube = KubeClient(max_in_flight=settings.max_writes_in_flight)
    stack.callback(kube.close)

    mirror = None
    if settings.firestore_project:
        # Imported only when enabled: the Firestore client costs ~0.6 s of start-up.
        from agentops_operator.firestore_mirror import FirestoreMirror

        mirror = FirestoreMirror(project=settings.firestore_project, database=settings.firestore_database,
                                 collection=settings.firestore_collection,
                                 max_writes_per_second=settings.firestore_max_writes_per_second, registry=metrics.registry)
        mirror_task = asyncio.create_task(mirror.run(), name="firestore-mirror")
        stack.push_async_callback(_flush_then_stop, mirror_task, mirror.flush, "Firestore mirror writes")

    writer = StatusWriter(kube, metrics, max_in_flight=settings.max_writes_in_flight)
    writer_task = asyncio.create_task(writer.run(), name="status-writer")
    stack.push_async_callback(_flush_then_stop, writer_task, writer.flushed, "status writes")

    restarts = RestartRunner(
        {
            "Kubernetes": KubernetesRuntime(kube),
            "CloudRun": CloudRunRuntime(endpoint=settings.cloudrun_endpoint, operation_timeout_s=settings.cloudrun_operation_timeout_s),
        },
        max_workers=settings.max_concurrent_restarts,
    )
    stack.push_async_callback(restarts.close)

    reconciler = Reconciler(writer, metrics, heartbeat_s=settings.status_heartbeat_s, restarts=restarts,
                            max_concurrent_restarts=settings.max_concurrent_restarts,
                            control_namespace=settings.control_namespace, mirror=mirror)
    reconcile_task = asyncio.create_task(reconciler.run(), name="reconcile-loop")
    stack.push_async_callback(_stop, reconcile_task)
    checks = CheckController(kube, reconciler)
    reconciler.report_taps.append(checks.observe_report)
    checks_task = asyncio.create_task(checks.run(), name="resilience-checks")
    stack.push_async_callback(_stop, checks_task)
    resync_task = asyncio.create_task(_resync_forever(kube, reconciler, settings), name="resync")
    stack.push_async_callback(_stop, resync_task)
    if settings.webhook_configuration:
        scan_task = asyncio.create_task(watch_for_bare_pods(kube, reconciler, settings.sidecar_scan_interval_s),
                                        name="sidecar-scan")
        stack.push_async_callback(_stop, scan_task)

    await start_api(settings, kube, reconciler, metrics, stack)
    return reconciler, checks
