"""Rolling telemetry windows per agent, in memory (soft state).

Telemetry is never written to the API server as it arrives; this store keeps the last
window of reports per reporting sidecar and merges them on demand into the summary
that `health.assess` judges. After an operator restart it starts empty: the next
reports refill it within one reporting interval.

Memory is bounded: at most `MAX_REPORTS_PER_REPORTER` reports per sidecar and
`MAX_REPORTERS_PER_AGENT` sidecars per agent; the oldest go first.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from agentops.wire import SERVER_ERROR_CLASSES, ModelCallSummary, TelemetryReport
from agentops_operator import model_health
from agentops_operator.health import WindowSummary
from agentops_operator.histograms import add_buckets, add_counts
from agentops_operator.resources import Key

# One hour of 1-second reports, or the longest allowed window at the default interval.
MAX_REPORTS_PER_REPORTER = 3600
# More replicas than this behind one Agent is unusual; beyond it the quietest go.
MAX_REPORTERS_PER_AGENT = 256


@dataclass
class _Entry:
    received: float  # monotonic seconds
    requests: int
    server_errors: int
    buckets: dict[float, int]
    window_s: float
    probes_ok: int
    probes_failed: int
    consecutive_failures: int
    starting: bool
    instance: str
    restarts: int
    applied: frozenset[str]
    model: tuple[ModelCallSummary, ...] = ()


@dataclass
class _Reporter:
    entries: deque[_Entry] = field(default_factory=lambda: deque(maxlen=MAX_REPORTS_PER_REPORTER))


@dataclass
class _AgentWindows:
    reporters: dict[str, _Reporter] = field(default_factory=dict)
    last_report_wall: datetime | None = None


class TelemetryStore:
    def __init__(self) -> None:
        self._agents: dict[Key, _AgentWindows] = {}

    def add(self, key: Key, report: TelemetryReport, *, received: float, wall: datetime) -> None:
        windows = self._agents.setdefault(key, _AgentWindows())
        reporter = windows.reporters.get(report["sidecar"])
        if reporter is None:
            if len(windows.reporters) >= MAX_REPORTERS_PER_AGENT:
                quietest = min(windows.reporters, key=lambda s: windows.reporters[s].entries[-1].received if windows.reporters[s].entries else 0.0)
                del windows.reporters[quietest]
            reporter = windows.reporters[report["sidecar"]] = _Reporter()
        elif reporter.entries and reporter.entries[-1].instance != report["instance"]["id"]:
            # A new agent instance behind the same sidecar (a restart): it is judged on
            # its own traffic, not on the errors that got its predecessor restarted.
            reporter.entries.clear()
        reporter.entries.append(
            _Entry(
                received=received,
                requests=report["requests"],
                server_errors=sum(report["errors"].get(c, 0) for c in SERVER_ERROR_CLASSES),
                buckets=add_buckets({}, report["latencyMs"]["buckets"]),
                window_s=report["windowSeconds"],
                probes_ok=report["probes"]["ok"],
                probes_failed=report["probes"]["failed"],
                consecutive_failures=report["probes"]["consecutiveFailures"],
                starting=report["probes"].get("starting", False),
                instance=report["instance"]["id"],
                restarts=report["instance"]["restarts"],
                applied=frozenset(report["appliedFaults"]),
                model=tuple(report.get("model", ())),
            )
        )
        windows.last_report_wall = wall

    def forget(self, key: Key) -> None:
        self._agents.pop(key, None)

    def last_report_wall(self, key: Key) -> datetime | None:
        windows = self._agents.get(key)
        return windows.last_report_wall if windows else None

    def summary(self, key: Key, *, now: float, window_s: float, stale_s: float | None = None) -> WindowSummary | None:
        """Merge every report received within `window_s` before `now` (monotonic).

        A reporter silent for longer than `stale_s` (the heartbeat timeout) does not
        speak for the agent while another one is fresh: after a rolling restart the old
        pods' last (failing) reports must not outvote the new pods for a whole window.

        Also prunes what has aged out, so memory follows the window. Returns None when
        nothing was ever received for this agent.
        """
        windows = self._agents.get(key)
        if windows is None or not windows.reporters:
            return None
        horizon = now - window_s
        newest = max((r.entries[-1].received for r in windows.reporters.values() if r.entries), default=0.0)
        fresh_exists = stale_s is not None and newest >= now - stale_s
        requests = errors = ok = failed = 0
        restarts = 0
        buckets: dict[float, int] = {}
        covered = 0.0
        last_received = 0.0
        instances: list[str] = []
        consecutive: list[int] = []
        starting = 0
        applied: set[str] = set()
        model: list[ModelCallSummary] = []
        for sidecar in list(windows.reporters):
            entries = windows.reporters[sidecar].entries
            if entries:
                last_received = max(last_received, entries[-1].received)
            # Keep the newest entry even when it is old: it carries the reporter's
            # latest probe state and lets staleness be measured.
            while len(entries) > 1 and entries[0].received < horizon:
                entries.popleft()
            latest = entries[-1]
            if latest.received < horizon:
                # A reporter silent for a whole window no longer speaks for the agent
                # (a replaced pod, a scaled-down replica).
                if len(windows.reporters) > 1:
                    del windows.reporters[sidecar]
                continue
            if fresh_exists and stale_s is not None and latest.received < now - stale_s:
                continue  # gone quiet while others report: a replaced pod
            reporter_covered = 0.0
            for e in entries:
                requests += e.requests
                errors += e.server_errors
                ok += e.probes_ok
                failed += e.probes_failed
                reporter_covered += e.window_s
                model += e.model
                add_counts(buckets, e.buckets)
            covered = max(covered, min(reporter_covered, window_s))
            consecutive.append(latest.consecutive_failures)
            starting += latest.starting
            instances.append(latest.instance)
            restarts += latest.restarts
            applied |= latest.applied
        return WindowSummary(
            requests=requests,
            server_errors=errors,
            latency_buckets=buckets,
            covered_seconds=covered,
            last_report_age_s=max(0.0, now - last_received),
            reporters=len(consecutive),
            instances=tuple(sorted(set(instances))),
            consecutive_probe_failures=tuple(consecutive),
            starting_reporters=starting,
            probes_ok=ok,
            probes_failed=failed,
            applied_fault_uids=frozenset(applied),
            restarts=restarts,
            model=model_health.merge(model),
        )
