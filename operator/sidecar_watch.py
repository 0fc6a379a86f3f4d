"""The periodic look for pods that run without the injected sidecar (see sidecar_scan).

Every `interval_s`, the pods of each namespace that has an Agent are listed and the
finding is handed to the reconciler, which sets each concerned Agent's SidecarMissing
condition and names new bare pods in an Event. Only namespaces with Agents are read:
a pod's sidecar matters only to the Agent it serves. A failed round is logged and the
next one tries again; it never stops the loop.
"""

from __future__ import annotations

import asyncio
import logging

from agentops_operator.kube_client import KubeClient, KubeError
from agentops_operator.reconciler import Reconciler
from agentops_operator.sidecar_scan import missing_sidecars, scan

log = logging.getLogger(__name__)


async def watch_for_bare_pods(kube: KubeClient, reconciler: Reconciler, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)  # the first round after the initial list is in
        agents = list(reconciler.index.agents)
        if not agents:
            continue
        try:
            pods, labels = await scan(kube, {key.namespace for key in agents})
        except KubeError as exc:
            log.warning("looking for pods without the sidecar failed (next try in %.0fs): %s", interval_s, exc)
            continue
        reconciler.sidecars_missing(missing_sidecars(pods, labels, agents))
