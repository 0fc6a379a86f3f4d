"""kopf handlers: the only place with kopf decorators, and deliberately thin.

Only `on.event` handlers are used: they see every watch event (including the initial
listing and deletions) and store nothing on the objects, so kopf adds no finalizers
and no annotations. Deletion needs no finalizer because fault delivery is level-based
(see assignments.py): a deleted Fault just stops being assigned. Each handler hands
the raw object to the reconciler, which decides in its own loop.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, cast

import kopf

from agentops import GROUP, VERSION, kube_credentials
from agentops_operator.check_controller import CHECKS, CheckController
from agentops_operator.reconciler import Reconciler
from agentops_operator.resources import AGENTS, FAULTS


def build_registry(reconciler: Reconciler, on_cleanup: Callable[[], Awaitable[None]],
                   checks: CheckController | None = None) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(settings: kopf.OperatorSettings, **kwargs: Any) -> kopf.ConnectionInfo | None:
        # An explicit registry gets no default login handlers; use the same
        # credentials as our own client (in-cluster service account, else KUBECONFIG).
        config = kube_credentials.load()
        if config.user.get("auth-provider"):  # kopf asks the provider for a token first
            return kopf.login_via_pykube(settings=settings, **kwargs)
        return kube_credentials.kopf_connection(config, settings)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # kopf's own Events for handler logs would duplicate ours; keep only its warnings.
        settings.posting.level = logging.WARNING
        # Re-open watches every few minutes: a silently dead connection is found then.
        settings.watching.server_timeout = 270
        settings.watching.client_timeout = 300
        settings.networking.request_timeout = 30
        # No batch window to shorten: kopf hands each event to our handlers as it
        # arrives (`batching.batch_window` is deprecated and read by nothing), so it
        # adds nothing to a fault's activation latency.
        # Idle per-object workers exit after 1 s instead of kopf's 5 s: less memory at
        # 10,000 objects. (Shutdown does not wait on this: kopf wakes idle workers with
        # an end-of-stream marker and gives busy ones `queueing.exit_timeout`.)
        settings.queueing.idle_timeout = 1.0

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        # kopf runs this while stopping, then waits up to 5 s for (and finally
        # cancels) every task it did not start; stopping ours here, in order,
        # makes shutdown prompt and lets pending status writes flush first.
        await on_cleanup()

    @kopf.on.event(GROUP, VERSION, AGENTS, registry=registry)
    async def agent_event(*, event: kopf.RawEvent, **_: Any) -> None:
        reconciler.agent_event(event.get("type"), cast(dict[str, Any], event["object"]))

    @kopf.on.event(GROUP, VERSION, FAULTS, registry=registry)
    async def fault_event(*, event: kopf.RawEvent, **_: Any) -> None:
        reconciler.fault_event(event.get("type"), cast(dict[str, Any], event["object"]))
        if checks is not None:
            checks.fault_event(event.get("type"), cast(dict[str, Any], event["object"]))

    if checks is not None:
        @kopf.on.event(GROUP, VERSION, CHECKS, registry=registry)
        async def check_event(*, event: kopf.RawEvent, **_: Any) -> None:
            checks.check_event(event.get("type"), cast(dict[str, Any], event["object"]))

    # The halt switch is an annotation on a Namespace (a cluster-scoped object: kopf
    # watches it cluster-wide even when the operator serves only some namespaces).
    @kopf.on.event("", "v1", "namespaces", registry=registry)
    async def namespace_event(*, event: kopf.RawEvent, **_: Any) -> None:
        reconciler.namespace_event(event.get("type"), cast(dict[str, Any], event["object"]))

    return registry
