"""kopf handlers: the only place with kopf decorators, and deliberately thin.

Only `on.event` handlers are used: they see every watch event (including the initial
listing and deletions) and store nothing on the objects, so kopf adds no finalizers
and no annotations. Deletion needs no finalizer because fault delivery is level-based
(see assignments.py): a deleted Fault just stops being assigned. Each handler hands
the raw object to the reconciler, which decides in its own loop.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from agentops import GROUP, VERSION
from agentops_operator.reconciler import Reconciler
from agentops_operator.resources import AGENTS, FAULTS


def build_registry(reconciler: Reconciler) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # An explicit registry gets no default login handlers; use the same
        # credentials as our own client (in-cluster service account, else KUBECONFIG).
        return kopf.login_via_pykube(**kwargs)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # kopf's own Events for handler logs would duplicate ours; keep only its warnings.
        settings.posting.level = logging.WARNING
        # Re-open watches every few minutes: a silently dead connection is found then.
        settings.watching.server_timeout = 270
        settings.watching.client_timeout = 300
        settings.networking.request_timeout = 30

    @kopf.on.event(GROUP, VERSION, AGENTS, registry=registry)
    async def agent_event(event: dict[str, Any], **_: Any) -> None:
        reconciler.agent_event(event.get("type"), event["object"])

    @kopf.on.event(GROUP, VERSION, FAULTS, registry=registry)
    async def fault_event(event: dict[str, Any], **_: Any) -> None:
        reconciler.fault_event(event.get("type"), event["object"])

    return registry
