"""Prometheus metrics of the operator (names follow the Prometheus conventions:
base units, `_total` for counters, label values from small fixed sets only — never an
agent or fault name, which would make series unbounded at 10,000 objects)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from agentops_operator.callers import REFUSAL_REASONS

# Results of the sidecar-injection webhook (operator/admission.py): the pod got the sidecar,
# was admitted unchanged (opted out, already injected, not injectable...), the review was
# malformed (400), or deciding failed (a bug: the pod is admitted unchanged).
ADMISSION_RESULTS = ("injected", "skipped", "invalid", "error")


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.telemetry_reports = Counter(
            "agentops_telemetry_reports_total", "Telemetry reports received, by result.", ["result"], registry=r
        )
        self.agents = Gauge("agentops_agents", "Agents known to the operator, by phase.", ["phase"], registry=r)
        self.faults = Gauge("agentops_faults", "Faults known to the operator, by phase.", ["phase"], registry=r)
        self.api_writes = Counter(
            "agentops_kubernetes_writes_total", "Writes to the Kubernetes API, by kind and result.", ["kind", "result"], registry=r
        )
        self.writes_in_flight = Gauge("agentops_kubernetes_writes_in_flight", "Kubernetes API writes in progress.", registry=r)
        self.events_dropped = Counter(
            "agentops_events_dropped_total", "Events dropped because the event queue was full.", registry=r
        )
        self.assignment_waiters = Gauge(
            "agentops_assignment_waiters", "Sidecar long polls waiting for a fault assignment change.", registry=r
        )
        self.assignment_changes = Counter(
            "agentops_assignment_changes_total", "Changes to an agent's set of assigned faults.", registry=r
        )
        self.restarts = Counter(
            "agentops_restarts_total",
            "Agent restarts by the healing loop, by runtime and result (Started, Verified, NotVerified or the runtime's failure reason).",
            ["runtime", "result"], registry=r,
        )
        self.escalations = Counter(
            "agentops_healing_escalations_total", "Times healing gave up on an agent (Stalled=True), by reason.", ["reason"], registry=r
        )
        self.incidents = Counter("agentops_incidents_total", "Incidents that ended, by how they ended.", ["state"], registry=r)
        self.check_experiments = Counter(
            "agentops_check_experiments_total", "ResilienceCheck experiments judged, by verdict.", ["verdict"], registry=r
        )
        self.check_runs = Counter(
            "agentops_check_runs_total", "ResilienceCheck runs ended, by phase (Completed, Aborted, Failed).", ["phase"], registry=r
        )
        self.restart_slots_in_use = Gauge(
            "agentops_restart_slots_in_use", "Agents restarting or verifying a restart (bounded by --max-concurrent-restarts).", registry=r
        )
        self.healing_states = Gauge("agentops_agents_healing", "Agents by healing state.", ["state"], registry=r)
        self.fault_early_stops = Counter(
            "agentops_fault_early_stops_total", "Faults ended before their duration: Halted (halt switch, recover) or Aborted (stop condition).",
            ["phase"], registry=r,
        )
        self.api_refusals = Counter(
            "agentops_api_refusals_total",
            "Sidecar API calls refused for who the caller is (401, 403) or because its identity could not be checked (503), by reason.",
            ["reason"], registry=r,
        )
        for reason in REFUSAL_REASONS:  # every reason shows, at 0, before it first happens
            self.api_refusals.labels(reason=reason)
        self.token_reviews = Counter(
            "agentops_token_reviews_total", "TokenReviews sent to the API server to verify sidecar tokens (cache misses).", registry=r
        )
        self.tls_not_after = Gauge(
            "agentops_tls_certificate_expiry_timestamp_seconds", "When the sidecar API's serving certificate expires (Unix time).", registry=r
        )
        self.admission_reviews = Counter(
            "agentops_admission_reviews_total",
            "Pod admission reviews answered by the sidecar-injection webhook, by result (injected, skipped, invalid, error); "
            "every pod is admitted whatever the result.",
            ["result"], registry=r,
        )
        for result in ADMISSION_RESULTS:  # every result shows, at 0, before it first happens
            self.admission_reviews.labels(result=result)
        # The API server waits for this inside its --request-timeout for the pod's create
        # call (the webhook's own timeout is 5 s): the buckets resolve sub-millisecond answers.
        self.admission_seconds = Histogram(
            "agentops_admission_review_duration_seconds",
            "Time from an admission review's arrival to the operator's answer (reading and parsing included).",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0),
            registry=r,
        )
        self.reconcile_seconds = Histogram(
            "agentops_reconcile_pass_duration_seconds",
            "Time spent in one pass of the reconcile loop.",
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
            registry=r,
        )
