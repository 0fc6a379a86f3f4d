"""The contracts on the wire between a sidecar and the operator.

Two payloads cross it:

* a **telemetry report** (sidecar → operator, ``POST /v1/telemetry``): a summary of
  one window of traffic and probes beside one agent instance;
* a **fault assignment** (operator → sidecar, ``GET /v1/assignments/{ns}/{agent}``,
  long poll): the complete set of faults the sidecar must enforce right now.

Assignments are level-based: the sidecar enforces exactly the set it was last given,
so a Fault deleted while the operator was down simply stops appearing.

Latency travels as a sparse histogram keyed by bucket upper bound (milliseconds, as
strings because JSON keys are strings). Histograms from many windows and replicas can
be added bucket by bucket, which quantiles cannot; the operator derives p50/p95 from
the sum. `LATENCY_BUCKETS_MS` is the sidecar's default layout: a geometric series with
a 10% step, so an interpolated quantile is within about 5% of the true value.
"""

from __future__ import annotations

import math
from typing import Any, TypedDict

from agentops.api_types import CrashParams, ErrorParams, FaultType, LatencyParams
from agentops.errors import InvalidField

# Error classes a sidecar counts. 4xx answers are the caller's fault and do not count
# toward an agent's error rate; the others do.
ERROR_CLASSES = ("http5xx", "http4xx", "timeout", "connection")
SERVER_ERROR_CLASSES = ("http5xx", "timeout", "connection")

# 1 ms … ~10 min in 10% steps: 142 bounds. The overflow bucket is "+Inf".
LATENCY_BUCKETS_MS: tuple[float, ...] = tuple(
    round(1.1**i, 3) for i in range(0, 143)
)

# Upper bounds on what one report may carry, so a broken or hostile sidecar cannot
# make the operator hold unbounded state.
MAX_WINDOW_SECONDS = 3600.0
MAX_COUNT = 10**9
MAX_BUCKETS = 512
MAX_APPLIED_FAULTS = 256
MAX_ID_LENGTH = 253
MAX_ERROR_TEXT = 1024


class AgentRef(TypedDict):
    namespace: str
    name: str


class InstanceInfo(TypedDict):
    id: str  # changes whenever the agent process/pod is replaced
    restarts: int  # restarts seen by whoever supervises the instance


class LatencyHistogram(TypedDict):
    buckets: dict[str, int]  # upper bound in ms (or "+Inf") → count


class ProbeSummary(TypedDict):
    ok: int
    failed: int
    consecutiveFailures: int
    lastError: str | None
    # The instance has not passed a probe yet and is within its startup grace: it is
    # starting, not sick. Optional on the wire (older sidecars omit it: False).
    starting: bool


class TelemetryReport(TypedDict):
    agent: AgentRef
    sidecar: str  # identity of the reporting sidecar (pod name, host:pid)
    instance: InstanceInfo
    windowSeconds: float
    requests: int
    errors: dict[str, int]  # class (ERROR_CLASSES) → count
    latencyMs: LatencyHistogram
    probes: ProbeSummary
    appliedFaults: list[str]  # uids of the faults the sidecar enforced in this window


class FaultAssignment(TypedDict, total=False):
    uid: str
    name: str
    type: FaultType
    expiresAt: str  # RFC 3339; the sidecar stops the fault here on its own
    percentage: float  # 0–100, share of requests the fault hits
    latency: LatencyParams  # the Fault's spec block of its type, as written
    error: ErrorParams
    crash: CrashParams


class AssignmentSet(TypedDict):
    agent: AgentRef
    version: int  # changes whenever the set changes; pass it back to wait for the next
    leaseSeconds: float  # drop every fault if the operator is not reached for this long
    serverTime: str  # the operator's clock; expiresAt is read relative to it (no skew)
    faults: list[FaultAssignment]
    # An opaque restart request, level-based like the faults: a supervising sidecar
    # restarts its agent once whenever this changes to a value it has not acted on
    # (the first value it sees is adopted without a restart). None: no request.
    restart: str | None


def _obj(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidField(field, f"must be an object, got {type(value).__name__}")
    return value


def _str(value: Any, field: str, max_length: int = MAX_ID_LENGTH) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidField(field, "must be a non-empty string")
    if len(value) > max_length:
        raise InvalidField(field, f"must be at most {max_length} characters")
    return value


def _count(value: Any, field: str) -> int:
    # bool is an int subclass in Python; true/false is never a count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidField(field, "must be an integer")
    if not 0 <= value <= MAX_COUNT:
        raise InvalidField(field, f"must be between 0 and {MAX_COUNT}")
    return value


def _bucket_bound(key: str, field: str) -> float:
    if key == "+Inf":
        return math.inf
    try:
        bound = float(key)
    except ValueError:
        raise InvalidField(field, f"bucket bound {key!r} is not a number of milliseconds or '+Inf'") from None
    if not math.isfinite(bound) or bound <= 0:
        raise InvalidField(field, f"bucket bound {key!r} must be a positive number of milliseconds")
    return bound


def validate_report(payload: Any) -> TelemetryReport:
    """Check a decoded telemetry report; return it normalised or raise InvalidField.

    Unknown top-level fields are refused rather than ignored: a typo in a sidecar
    would otherwise silently drop data.
    """
    body = _obj(payload, "report")
    known = set(TelemetryReport.__annotations__)
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidField(unknown[0], f"unknown field; allowed fields are {', '.join(sorted(known))}")
    for name in sorted(known):
        if name not in body:
            raise InvalidField(name, "is required")

    agent = _obj(body["agent"], "agent")
    agent_ref = AgentRef(
        namespace=_str(agent.get("namespace"), "agent.namespace", 63),
        name=_str(agent.get("name"), "agent.name"),
    )
    instance = _obj(body["instance"], "instance")
    instance_info = InstanceInfo(
        id=_str(instance.get("id"), "instance.id"),
        restarts=_count(instance.get("restarts", 0), "instance.restarts"),
    )

    window = body["windowSeconds"]
    if isinstance(window, bool) or not isinstance(window, (int, float)) or not math.isfinite(window):
        raise InvalidField("windowSeconds", "must be a number of seconds")
    if not 0 < window <= MAX_WINDOW_SECONDS:
        raise InvalidField("windowSeconds", f"must be more than 0 and at most {MAX_WINDOW_SECONDS:g}")

    requests = _count(body["requests"], "requests")

    errors_in = _obj(body["errors"], "errors")
    errors: dict[str, int] = {}
    for cls, value in errors_in.items():
        if cls not in ERROR_CLASSES:
            raise InvalidField(f"errors.{cls}", f"unknown error class; allowed: {', '.join(ERROR_CLASSES)}")
        errors[cls] = _count(value, f"errors.{cls}")
    if sum(errors.values()) > requests:
        raise InvalidField("errors", f"count {sum(errors.values())} exceeds requests {requests}")

    latency = _obj(body["latencyMs"], "latencyMs")
    buckets_in = _obj(latency.get("buckets"), "latencyMs.buckets")
    if len(buckets_in) > MAX_BUCKETS:
        raise InvalidField("latencyMs.buckets", f"at most {MAX_BUCKETS} buckets are allowed")
    buckets: dict[str, int] = {}
    for key, value in buckets_in.items():
        _bucket_bound(key, "latencyMs.buckets")
        buckets[key] = _count(value, f"latencyMs.buckets.{key}")
    if sum(buckets.values()) > requests:
        raise InvalidField("latencyMs.buckets", f"counts add up to {sum(buckets.values())}, more than requests {requests}")

    probes_in = _obj(body["probes"], "probes")
    last_error = probes_in.get("lastError")
    if last_error is not None and not isinstance(last_error, str):
        raise InvalidField("probes.lastError", "must be a string or null")
    starting = probes_in.get("starting", False)
    if not isinstance(starting, bool):
        raise InvalidField("probes.starting", "must be true or false")
    probes = ProbeSummary(
        starting=starting,
        ok=_count(probes_in.get("ok", 0), "probes.ok"),
        failed=_count(probes_in.get("failed", 0), "probes.failed"),
        consecutiveFailures=_count(probes_in.get("consecutiveFailures", 0), "probes.consecutiveFailures"),
        lastError=last_error[:MAX_ERROR_TEXT] if last_error else None,
    )

    applied_in = body["appliedFaults"]
    if not isinstance(applied_in, list):
        raise InvalidField("appliedFaults", "must be a list of fault uids")
    if len(applied_in) > MAX_APPLIED_FAULTS:
        raise InvalidField("appliedFaults", f"at most {MAX_APPLIED_FAULTS} entries are allowed")
    applied = [_str(uid, f"appliedFaults[{i}]") for i, uid in enumerate(applied_in)]

    return TelemetryReport(
        agent=agent_ref,
        sidecar=_str(body["sidecar"], "sidecar"),
        instance=instance_info,
        windowSeconds=float(window),
        requests=requests,
        errors=errors,
        latencyMs=LatencyHistogram(buckets=buckets),
        probes=probes,
        appliedFaults=applied,
    )


def bucket_bound(key: str) -> float:
    """The upper bound of a validated histogram key, in milliseconds."""
    return _bucket_bound(key, "latencyMs.buckets")
