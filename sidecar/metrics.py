"""The sidecar's Prometheus metrics, collected at scrape time.

The proxy counts into plain integers (`window.Totals`); this collector turns them into
metric families when /metrics is read. That keeps locks and label lookups off the
request path, where prometheus_client's own counters would cost several microseconds
per request. Every label has a small fixed set of values.
"""

from __future__ import annotations

from typing import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from agentops_sidecar.faults import FaultTable
from agentops_sidecar.operator_link import OperatorLink
from agentops_sidecar.prober import Prober
from agentops_sidecar.proxy import Recorder
from agentops_sidecar.supervisor import Supervisor
from agentops_sidecar.window import DURATION_BUCKETS_S


class SidecarCollector(Collector):
    def __init__(self, recorder: Recorder, table: FaultTable, link: OperatorLink, prober: Prober,
                 supervisor: Supervisor | None, now: Callable[[], float]) -> None:
        self.recorder, self.table, self.link, self.prober, self.supervisor, self.now = recorder, table, link, prober, supervisor, now

    def collect(self) -> Iterator[Metric]:
        totals = self.recorder.totals
        requests = CounterMetricFamily("agentops_sidecar_requests", "Requests answered through the proxy, by status class.", labels=["code"])
        for code, n in totals.requests_by_class.items():
            requests.add_metric([code], n)
        yield requests

        cumulative, buckets = 0, []
        for bound, n in zip((*DURATION_BUCKETS_S, float("inf")), totals.duration_buckets):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily("agentops_sidecar_request_duration_seconds",
                                    "Time from a request's arrival to its last response byte, injected delays included.",
                                    buckets=buckets, sum_value=totals.duration_sum_s)

        upstream = CounterMetricFamily("agentops_sidecar_upstream_errors", "Requests the agent did not answer, by kind.", labels=["kind"])
        for kind, n in totals.upstream_errors.items():
            upstream.add_metric([kind], n)
        yield upstream

        injected = CounterMetricFamily("agentops_sidecar_faults_injected", "Requests hit by a fault, by fault type.", labels=["type"])
        for kind, n in totals.injected.items():
            injected.add_metric([kind], n)
        yield injected

        yield GaugeMetricFamily("agentops_sidecar_faults_enforced", "Faults enforced now.", value=len(self.table.effective))
        yield GaugeMetricFamily("agentops_sidecar_faults_assigned", "Faults in the last assignment from the operator.", value=len(self.table.assigned))
        yield CounterMetricFamily("agentops_sidecar_fault_expirations", "Faults stopped by the sidecar at their own expiresAt.", value=self.table.expirations)
        yield CounterMetricFamily("agentops_sidecar_lease_expirations", "Times every fault was dropped because the operator was not reached for a lease.",
                                  value=self.table.lease_expirations)
        deadline = self.table.lease_deadline()
        yield GaugeMetricFamily("agentops_sidecar_operator_lease_remaining_seconds",
                                "Seconds until faults are dropped unless the operator is reached (0: expired or never reached).",
                                value=max(0.0, deadline - self.now()) if deadline != float("inf") else 0.0)
        yield CounterMetricFamily("agentops_sidecar_assignment_updates", "Changed assignment sets received.", value=self.link.assignment_updates)

        reports = CounterMetricFamily("agentops_sidecar_telemetry_reports", "Telemetry reports, by outcome.", labels=["result"])
        for result, n in self.link.reports.items():
            reports.add_metric([result], n)
        yield reports

        probes = CounterMetricFamily("agentops_sidecar_probes", "Health probes of the agent, by result.", labels=["result"])
        for result, n in self.prober.totals.items():
            probes.add_metric([result], n)
        yield probes
        yield GaugeMetricFamily("agentops_sidecar_agent_up", "1 when the last health probe passed.", value=1.0 if self.prober.last_ok else 0.0)

        restarts = CounterMetricFamily("agentops_sidecar_agent_restarts", "Restarts of the supervised agent, by reason.", labels=["reason"])
        for reason, n in (self.supervisor.restarts if self.supervisor else {"exited": 0, "requested": 0}).items():
            restarts.add_metric([reason], n)
        yield restarts


def registry(collector: SidecarCollector) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    return reg
