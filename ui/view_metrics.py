"""`/metrics`: the UI's own health for Prometheus — what it holds, whether its watches
are current, how many browsers are live.

Computed from the store at scrape time (a collector, not gauges kept in step), in a
registry of its own. Labels come from small fixed sets only: kind, and the namespaces
the UI was started with — never an object's name.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agentops_ui.context import CONTEXT, UIContext
from agentops_ui.store import AGENT, CHECK, EVENT, FAULT

REGISTRY_KEY = web.AppKey("metrics_registry", CollectorRegistry)


class UICollector(Collector):
    def __init__(self, ctx: UIContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[GaugeMetricFamily]:
        store = self.ctx.store
        objects = GaugeMetricFamily("agentops_ui_objects", "Objects held in the UI's store, by kind.", labels=["kind"])
        objects.add_metric([AGENT], len(store.agents))
        objects.add_metric([FAULT], len(store.faults))
        objects.add_metric([CHECK], len(store.checks))
        objects.add_metric([EVENT], store.event_count)
        yield objects
        synced = GaugeMetricFamily("agentops_ui_watch_synced", "1 once the list of a kind in a namespace has completed.",
                                   labels=["kind", "namespace"])
        failing = GaugeMetricFamily("agentops_ui_watch_failing", "1 while the list or watch of a kind in a namespace fails.",
                                    labels=["kind", "namespace"])
        for s in store.sources.values():
            synced.add_metric([s.kind, s.namespace or ""], 1.0 if s.synced else 0.0)
            failing.add_metric([s.kind, s.namespace or ""], 1.0 if s.error is not None else 0.0)
        yield synced
        yield failing
        yield GaugeMetricFamily("agentops_ui_live_connections", "Browsers connected to /live.", value=len(self.ctx.feed))


def install(app: web.Application) -> None:
    registry = CollectorRegistry()
    registry.register(UICollector(app[CONTEXT]))
    app[REGISTRY_KEY] = registry


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(request.app[REGISTRY_KEY]),
                        headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
