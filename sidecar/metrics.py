"""The sidecar's Prometheus metrics, collected at scrape time.

The proxy counts into plain integers (`window.Totals`); this collector turns them into
metric families when /metrics is read. That keeps locks and label lookups off the
request path, where prometheus_client's own counters would cost several microseconds
per request.

Names follow the Prometheus conventions: base units (seconds), counters end in
`_total` (written out here so that a grep for the exposed name finds its source;
prometheus_client strips and re-adds the suffix), and every label has a small fixed set
of values — never a fault's or an agent's name; the scrape target says which agent.
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
        requests = CounterMetricFamily("agentops_sidecar_requests_total", "Requests answered through the proxy, by status class.", labels=["code"])
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

        upstream = CounterMetricFamily("agentops_sidecar_upstream_errors_total", "Requests the agent did not answer, by kind.", labels=["kind"])
        for kind, n in totals.upstream_errors.items():
            upstream.add_metric([kind], n)
        yield upstream

        injected = CounterMetricFamily("agentops_sidecar_faults_injected_total", "Requests hit by a fault, by fault type.", labels=["type"])
        for kind, n in totals.injected.items():
            injected.add_metric([kind], n)
        yield injected

        yield GaugeMetricFamily("agentops_sidecar_faults_enforced", "Faults enforced now.", value=len(self.table.effective))
        yield GaugeMetricFamily("agentops_sidecar_faults_assigned", "Faults in the last assignment from the operator.", value=len(self.table.assigned))
        yield CounterMetricFamily("agentops_sidecar_fault_expirations_total", "Faults stopped by the sidecar at their own expiresAt.", value=self.table.expirations)
        yield CounterMetricFamily("agentops_sidecar_lease_expirations_total", "Times every fault was dropped because the operator was not reached for a lease.",
                                  value=self.table.lease_expirations)
        now, deadline = self.now(), self.table.lease_deadline()
        yield GaugeMetricFamily("agentops_sidecar_operator_lease_remaining_seconds",
                                "Seconds until faults are dropped unless the operator is reached (0: expired or never reached).",
                                value=max(0.0, deadline - now) if deadline != float("inf") else 0.0)
        yield self._overdue(now, deadline)
        yield CounterMetricFamily("agentops_sidecar_assignment_updates_total", "Changed assignment sets received.", value=self.link.assignment_updates)

        reports = CounterMetricFamily("agentops_sidecar_telemetry_reports_total", "Telemetry reports, by outcome.", labels=["result"])
        for result, n in self.link.reports.items():
            reports.add_metric([result], n)
        yield reports

        probes = CounterMetricFamily("agentops_sidecar_probes_total", "Health probes of the agent, by result.", labels=["result"])
        for result, n in self.prober.totals.items():
            probes.add_metric([result], n)
        yield probes
        yield GaugeMetricFamily("agentops_sidecar_agent_up", "1 when the last health probe passed.", value=1.0 if self.prober.last_ok else 0.0)

        restarts = CounterMetricFamily("agentops_sidecar_agent_restarts_total", "Restarts of the supervised agent, by reason.", labels=["reason"])
        for reason, n in (self.supervisor.restarts if self.supervisor else {"exited": 0, "requested": 0}).items():
            restarts.add_metric([reason], n)
        yield restarts

    def _overdue(self, now: float, lease_deadline: float) -> GaugeMetricFamily:
        """How far past a safety deadline the enforced set reaches, read at scrape time.

        The table drops a fault at its expiresAt and every fault at the end of the lease
        when it is refreshed (by the deadline task, a request, or /v1/state); /metrics
        does not refresh it, so a stuck deadline task or a bug in the table shows here
        as a growing value — the signal for "a fault outlived its resource or its
        controller". Normally 0, or the few milliseconds of one event-loop turn.
        """
        enforced = self.table.effective
        past_expiry = max((now - f.expires_at for f in enforced), default=0.0)
        past_lease = now - lease_deadline if enforced and lease_deadline != float("inf") else 0.0
        overdue = GaugeMetricFamily(
            "agentops_sidecar_fault_overdue_seconds",
            "Seconds the sidecar has been enforcing a fault past a safety deadline: its own expiresAt (deadline=expiry) "
            "or the operator lease (deadline=lease); 0 when no enforced fault is past either.",
            labels=["deadline"])
        overdue.add_metric(["expiry"], max(0.0, past_expiry))
        overdue.add_metric(["lease"], max(0.0, past_lease))
        return overdue


def registry(collector: SidecarCollector) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    return reg
