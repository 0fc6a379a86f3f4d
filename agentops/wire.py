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
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict, get_args

from agentops.api_types import CrashParams, ErrorParams, FaultType, LatencyParams, ModelFaultParams, ModelProvider
from agentops.errors import InvalidField

# Error classes a sidecar counts. 4xx answers are the caller's fault and do not count
# toward an agent's error rate; the others do.
ERROR_CLASSES = ("http5xx", "http4xx", "timeout", "connection")
SERVER_ERROR_CLASSES = ("http5xx", "timeout", "connection")

# 1 ms … ~10 min in 10% steps: 142 bounds. The overflow bucket is "+Inf".
LATENCY_BUCKETS_MS: tuple[float, ...] = tuple(
    round(1.1**i, 3) for i in range(0, 143)
)
# A sidecar counts into a dense array, one slot per bound and one for the overflow
# (`bisect_left(LATENCY_BUCKETS_MS, ms)` is the slot); slot i goes on the wire as key i.
LATENCY_BUCKET_KEYS: tuple[str, ...] = tuple(repr(b) for b in LATENCY_BUCKETS_MS) + ("+Inf",)

# Upper bounds on what one report may carry, so a broken or hostile sidecar cannot
# make the operator hold unbounded state.
MAX_WINDOW_SECONDS = 3600.0
MAX_COUNT = 10**9
MAX_BUCKETS = 512
MAX_APPLIED_FAULTS = 256
MAX_ID_LENGTH = 253
MAX_ERROR_TEXT = 1024
# Distinct (provider, model) pairs one report may carry; a gateway folds the rest into
# model "other" so an agent cycling through model names cannot grow the operator's state.
MAX_MODEL_SERIES = 32
MAX_MODEL_NAME = 128
MAX_TOKENS = 10**12

# How a model call failed, as the gateway classifies the provider's answer. Every one
# counts toward the agent's model error rate: the agent did not get a usable answer.
MODEL_ERROR_TYPES = (
    "rate_limit",  # 429 the caller may retry
    "quota_exhausted",  # 429 it may not
    "overloaded",  # 503, 529
    "server_error",  # other 5xx
    "timeout",  # no answer (or no next chunk) in time
    "connection",  # the provider could not be reached, or closed the connection early
    "context_length",  # 400: the prompt is too long
    "safety_block",  # the answer was withheld by a safety filter
    "malformed_response",  # a 2xx whose body or tool-call arguments do not parse
    "stream_interrupted",  # a stream that ended before its end marker
    "client_error",  # other 4xx (a bad key, a bad request)
)
MODEL_PROVIDERS: tuple[str, ...] = get_args(ModelProvider)
# The NotRequired fields of TelemetryReport (string annotations hide them from
# __required_keys__ at run time, so they are named here; test_wire checks the two agree).
OPTIONAL_REPORT_FIELDS = frozenset({"model"})


class AgentRef(TypedDict):
    namespace: str
    name: str


class InstanceInfo(TypedDict):
    id: str  # changes whenever the agent process/pod is replaced
    restarts: int  # restarts seen by whoever supervises the instance


class LatencyHistogram(TypedDict):
    buckets: dict[str, int]  # upper bound in ms (or "+Inf") → count


def sparse_latency(counts: Sequence[int]) -> LatencyHistogram:
    """A dense count array (len(LATENCY_BUCKET_KEYS) slots) as the wire's sparse histogram."""
    return LatencyHistogram(buckets={LATENCY_BUCKET_KEYS[i]: n for i, n in enumerate(counts) if n})


class ProbeSummary(TypedDict):
    ok: int
    failed: int
    consecutiveFailures: int
    lastError: str | None
    # The instance has not passed a probe yet and is within its startup grace: it is
    # starting, not sick. Optional on the wire (older sidecars omit it: False).
    starting: bool


class ModelCallSummary(TypedDict):
    """One window of an agent's calls to one model of one provider, through its gateway.

    A call is one HTTP attempt; `retries` counts the attempts that repeated an earlier
    one (same request within a short time, or the SDK's own retry header).
    """

    provider: ModelProvider
    model: str  # as requested; "" when the request named none, "other" past MAX_MODEL_SERIES
    calls: int
    retries: int
    errors: dict[str, int]  # MODEL_ERROR_TYPES → count
    latencyMs: LatencyHistogram  # whole call, first byte sent to last byte received
    firstChunkMs: LatencyHistogram  # to the first byte of the answer's body
    inputTokens: int
    outputTokens: int
    streams: int
    streamsInterrupted: int


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
    # The agent's model calls through the gateway; absent from sidecars without one.
    model: NotRequired[list[ModelCallSummary]]


class FaultAssignment(TypedDict, total=False):
    uid: str
    name: str
    type: FaultType
    expiresAt: str  # RFC 3339; the sidecar stops the fault here on its own
    percentage: float  # 0–100, share of requests the fault hits
    latency: LatencyParams  # the Fault's spec block of its type, as written
    error: ErrorParams
    crash: CrashParams
    model: ModelFaultParams


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
    for name in sorted(known - OPTIONAL_REPORT_FIELDS):
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

    buckets = _histogram(body["latencyMs"], "latencyMs", requests, "requests")

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

    report = TelemetryReport(
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
    if "model" in body:
        report["model"] = _model_calls(body["model"])
    return report


def _histogram(value: Any, field: str, total: int, total_name: str) -> dict[str, int]:
    latency = _obj(value, field)
    buckets_in = _obj(latency.get("buckets"), f"{field}.buckets")
    if len(buckets_in) > MAX_BUCKETS:
        raise InvalidField(f"{field}.buckets", f"at most {MAX_BUCKETS} buckets are allowed")
    buckets: dict[str, int] = {}
    for key, count in buckets_in.items():
        _bucket_bound(key, f"{field}.buckets")
        buckets[key] = _count(count, f"{field}.buckets.{key}")
    if sum(buckets.values()) > total:
        raise InvalidField(f"{field}.buckets", f"counts add up to {sum(buckets.values())}, more than {total_name} {total}")
    return buckets


def _model_calls(value: Any) -> list[ModelCallSummary]:
    if not isinstance(value, list):
        raise InvalidField("model", "must be a list of per-model summaries")
    if len(value) > MAX_MODEL_SERIES:
        raise InvalidField("model", f"at most {MAX_MODEL_SERIES} entries are allowed")
    known = set(ModelCallSummary.__annotations__)
    out: list[ModelCallSummary] = []
    seen: set[tuple[str, str]] = set()
    for i, raw in enumerate(value):
        where = f"model[{i}]"
        entry = _obj(raw, where)
        unknown = sorted(set(entry) - known)
        if unknown:
            raise InvalidField(f"{where}.{unknown[0]}", f"unknown field; allowed fields are {', '.join(sorted(known))}")
        provider = entry.get("provider")
        if provider not in MODEL_PROVIDERS:
            raise InvalidField(f"{where}.provider", f"must be one of {', '.join(MODEL_PROVIDERS)}")
        model = entry.get("model", "")
        if not isinstance(model, str) or len(model) > MAX_MODEL_NAME:
            raise InvalidField(f"{where}.model", f"must be a string of at most {MAX_MODEL_NAME} characters")
        if (provider, model) in seen:
            raise InvalidField(where, f"a second entry for provider {provider} model {model!r}")
        seen.add((provider, model))
        calls = _count(entry.get("calls", 0), f"{where}.calls")
        errors: dict[str, int] = {}
        for kind, n in _obj(entry.get("errors", {}), f"{where}.errors").items():
            if kind not in MODEL_ERROR_TYPES:
                raise InvalidField(f"{where}.errors.{kind}", f"unknown error type; allowed: {', '.join(MODEL_ERROR_TYPES)}")
            errors[kind] = _count(n, f"{where}.errors.{kind}")
        if sum(errors.values()) > calls:
            raise InvalidField(f"{where}.errors", f"count {sum(errors.values())} exceeds calls {calls}")
        retries = _count(entry.get("retries", 0), f"{where}.retries")
        streams = _count(entry.get("streams", 0), f"{where}.streams")
        interrupted = _count(entry.get("streamsInterrupted", 0), f"{where}.streamsInterrupted")
        for name, n, bound in (("retries", retries, calls), ("streams", streams, calls), ("streamsInterrupted", interrupted, streams)):
            if n > bound:
                raise InvalidField(f"{where}.{name}", f"{n} is more than {'streams' if name == 'streamsInterrupted' else 'calls'} {bound}")
        tokens = {}
        for name in ("inputTokens", "outputTokens"):
            n = entry.get(name, 0)
            if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_TOKENS:
                raise InvalidField(f"{where}.{name}", f"must be an integer between 0 and {MAX_TOKENS}")
            tokens[name] = n
        out.append(ModelCallSummary(
            provider=provider, model=model, calls=calls, retries=retries, errors=errors,
            latencyMs=LatencyHistogram(buckets=_histogram(entry.get("latencyMs", {"buckets": {}}), f"{where}.latencyMs", calls, "calls")),
            firstChunkMs=LatencyHistogram(buckets=_histogram(entry.get("firstChunkMs", {"buckets": {}}), f"{where}.firstChunkMs", calls, "calls")),
            inputTokens=tokens["inputTokens"], outputTokens=tokens["outputTokens"],
            streams=streams, streamsInterrupted=interrupted,
        ))
    return out


def bucket_bound(key: str) -> float:
    """The upper bound of a validated histogram key, in milliseconds."""
    return _bucket_bound(key, "latencyMs.buckets")
