"""The Agent and Fault resources as types: the one contract between writers and readers.

The operator writes these shapes into `status`; the UI, the Firestore mirror and the
tests read them. Each TypedDict mirrors one object of the CRD schemas in `crds/`
(field for field, enum for `Literal`), and `tests/unit/test_api_types.py` walks both
to keep them equal, so a field added to one and not the other fails a test instead
of being dropped by the API server's pruning or misread by the UI.

Defaults live in the settings dataclasses of `agentops_operator.resources` (one per
spec block); the same test checks each CRD `default:` against them.

The API server validates every status write against the schema, so a reader may take
these shapes as given: a field is present or absent (`total=False`), never of another
type. Readers do not re-derive what the writer decided.

The words used in these types (assigned, applied, cured, restart token, ledger, count)
are defined once, in the glossary of the `agentops` package docstring.
"""

from __future__ import annotations

from typing import Literal, NotRequired, Required, TypedDict

# ------------------------------------------------------------------ enums

ConditionStatus = Literal["True", "False", "Unknown"]
AgentPhase = Literal["Unknown", "Healthy", "Degraded", "Unhealthy"]
FaultPhase = Literal["Pending", "Active", "Expired", "Halted", "Aborted", "Failed"]
# Faults on the requests *into* an agent, enforced by the sidecar's proxy.
TrafficFaultType = Literal["Latency", "Error", "Crash"]
# Faults on the agent's own calls *out* to its model provider, enforced by the sidecar's
# model gateway, each shaped as the provider sends it (agentops_sidecar.model_shapes).
ModelFaultType = Literal[
    "ModelRateLimit",  # 429, retryable, with the provider's retry-after hint
    "ModelQuotaExhausted",  # 429 that must not be retried
    "ModelOverloaded",  # 503 (Gemini, OpenAI), 529 (Anthropic)
    "ModelServerError",  # 500
    "ModelTimeout",  # no answer until the caller gives up (or model.delay)
    "ModelSlowFirstToken",  # the answer's first byte held back by model.delay
    "ModelSlowStream",  # model.delay between stream events
    "ModelStreamStall",  # the stream stops after model.afterChunks events and hangs
    "ModelStreamCut",  # the connection closes after model.afterChunks events, before the end marker
    "ModelMalformedJson",  # a 200 whose JSON is cut short
    "ModelCorruptToolArguments",  # tool-call arguments that do not parse (or do not fit their schema)
    "ModelContextLength",  # 400: the prompt exceeds the model's context window
    "ModelSafetyBlock",  # a 200 refusal: the provider's safety filter withheld the answer
]
FaultType = Literal[TrafficFaultType, ModelFaultType]
ModelProvider = Literal["Gemini", "OpenAI", "Anthropic"]
# OpenTelemetry's gen_ai.operation.name values for the calls a gateway tells apart.
ModelOperation = Literal["chat", "generate_content", "text_completion", "embeddings", "count_tokens", "other"]
RuntimeType = Literal["Kubernetes", "CloudRun", "Process", "None"]
SelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
HealingStateName = Literal["Idle", "Waiting", "Backoff", "Queued", "Restarting", "Verifying", "Stalled", "Disabled",
                           "ObserveOnly"]
RestartRequestKind = Literal["ManualRecover", "ManualRestart"]
# What healing does about an agent that is Unhealthy for TokenBurn (spec.healing.onTokenBurn).
TokenBurnAction = Literal["Restart", "ScaleToZero"]
HealingActionType = Literal["Restart", "ScaleToZero"]
IncidentTrigger = Literal["Unhealthy", "ManualRecover", "ManualRestart"]
IncidentState = Literal["Open", "Recovered", "Healed", "Escalated", "Observed"]


# ------------------------------------------------------------------ shared


class Condition(TypedDict):
    """One entry of `status.conditions` (metav1.Condition)."""

    type: str
    status: ConditionStatus
    observedGeneration: NotRequired[int]  # optional in metav1.Condition; other writers may omit it
    lastTransitionTime: str
    reason: str
    message: str


class LabelSelectorRequirement(TypedDict, total=False):
    key: Required[str]
    operator: Required[SelectorOperator]
    values: list[str]


class LabelSelectorSpec(TypedDict, total=False):
    """metav1.LabelSelector."""

    matchLabels: dict[str, str]
    matchExpressions: list[LabelSelectorRequirement]


# ------------------------------------------------------------------ Agent


class DeploymentRef(TypedDict):
    name: str


class CloudRunRef(TypedDict, total=False):
    project: Required[str]
    region: Required[str]
    service: Required[str]
    rollbackOnFailure: bool
    serviceAccount: str  # the Google service account e-mail its sidecar's ID token must name


class RuntimeBlock(TypedDict, total=False):
    type: RuntimeType
    deployment: DeploymentRef
    cloudRun: CloudRunRef


class LatencyThresholds(TypedDict, total=False):
    degraded: int  # milliseconds
    unhealthy: int


class ErrorRateThresholds(TypedDict, total=False):
    degraded: float  # share of requests, 0–1
    unhealthy: float


class HealthBlock(TypedDict, total=False):
    heartbeatTimeout: str
    window: str
    minSamples: int
    probeFailureThreshold: int
    latencyP95Ms: LatencyThresholds
    errorRate: ErrorRateThresholds
    model: ModelHealthBlock


class RestartBudget(TypedDict, total=False):
    maxRestarts: int
    window: str


class BackoffBlock(TypedDict, total=False):
    initial: str
    max: str


class HealingBlock(TypedDict, total=False):
    enabled: bool
    unhealthyFor: str
    verifyTimeout: str
    budget: RestartBudget
    backoff: BackoffBlock
    onTokenBurn: TokenBurnAction


class ModelPrice(TypedDict):
    """What one model costs, in US dollars per million tokens, for the cost estimate."""

    model: str
    inputPerMillionTokens: float
    outputPerMillionTokens: float


class ModelsBlock(TypedDict, total=False):
    """spec.models: the model providers the agent calls through its sidecar's gateway."""

    providers: list[ModelProvider]
    prices: list[ModelPrice]


class TokenRateThresholds(TypedDict, total=False):
    degraded: int  # tokens per minute
    unhealthy: int


class CostRateThresholds(TypedDict, total=False):
    unhealthy: float  # US dollars per hour


class ModelHealthBlock(TypedDict, total=False):
    minCalls: int
    errorRate: ErrorRateThresholds
    timeToFirstTokenP95Ms: LatencyThresholds
    tokensPerMinute: TokenRateThresholds
    costPerHour: CostRateThresholds


class IdentityBlock(TypedDict, total=False):
    serviceAccounts: list[str]  # ServiceAccounts of the Agent's namespace that may speak for it; empty: any


class AgentSpecBody(TypedDict, total=False):
    runtime: RuntimeBlock
    health: HealthBlock
    healing: HealingBlock
    models: ModelsBlock
    identity: IdentityBlock


class AgentMetrics(TypedDict, total=False):
    latencyP50Ms: float
    latencyP95Ms: float
    errorRate: float
    requestRate: float
    requests: int
    windowSeconds: float
    probeSuccessRatio: float


class AgentModelMetrics(TypedDict, total=False):
    """status.model: the agent's calls to its model providers over the health window."""

    calls: int
    errorRate: float
    errors: dict[str, int]  # error type (agentops.wire.MODEL_ERROR_TYPES) → count
    retries: int
    streamsInterrupted: int
    latencyP95Ms: float
    timeToFirstTokenP95Ms: float
    inputTokens: int
    outputTokens: int
    tokensPerMinute: float
    costPerHourUsd: float
    providers: list[ModelProvider]
    windowSeconds: float


class AgentTelemetry(TypedDict, total=False):
    lastReportTime: str
    reporters: int
    instances: list[str]


class ActiveFaultStatus(TypedDict, total=False):
    """A fault assigned to the agent; `applied` once a sidecar reports enforcing it."""

    name: Required[str]
    type: FaultType
    expiresAt: str
    applied: bool


class HealingRecord(TypedDict, total=False):
    """status.healing: the healing policy's state machine, persisted across restarts."""

    state: HealingStateName
    message: str
    unhealthySince: str
    restarts: list[str]  # start times of the restarts within the budget window
    nextRestartTime: str
    verifyDeadline: str
    instancesBefore: list[str]
    restartToken: str
    handledRestart: str
    handledRecover: str
    pendingRequest: RestartRequestKind
    stalledReason: str
    incidentSeq: int
    action: HealingActionType  # what the runtime call in flight does (absent: Restart)


class IncidentAction(TypedDict, total=False):
    type: HealingActionType
    startedAt: str
    finishedAt: str
    result: str
    message: str


class Incident(TypedDict, total=False):
    id: Required[str]
    trigger: Required[IncidentTrigger]
    state: Required[IncidentState]
    reason: str
    message: str
    faults: list[str]
    observedAt: str
    detectedAt: str
    endedAt: str
    actions: list[IncidentAction]


class AgentStatus(TypedDict, total=False):
    phase: AgentPhase
    observedGeneration: int
    conditions: list[Condition]
    metrics: AgentMetrics
    model: AgentModelMetrics
    telemetry: AgentTelemetry
    activeFaults: list[ActiveFaultStatus]
    activeFaultCount: int
    restartCount: int
    healing: HealingRecord
    incidents: list[Incident]


# ------------------------------------------------------------------ Fault


class FaultTarget(TypedDict, total=False):
    agent: str
    selector: LabelSelectorSpec


class LatencyParams(TypedDict, total=False):
    delayMs: Required[int]
    jitterMs: int


class ErrorParams(TypedDict, total=False):
    statusCode: int
    body: str


class CrashParams(TypedDict, total=False):
    statusCode: int


class ModelFaultParams(TypedDict, total=False):
    """spec.model of a Model* fault: which model calls it hits, and its type's parameters."""

    providers: list[ModelProvider]  # absent or empty: every provider
    models: list[str]  # exact model names; absent or empty: every model
    operations: list[ModelOperation]  # absent or empty: every operation
    firstAttempts: int  # hit only attempts 1..N of each call; absent: every attempt
    retryAfter: str  # ModelRateLimit, ModelOverloaded: the retry hint sent
    delay: str  # ModelTimeout, ModelSlowFirstToken, ModelSlowStream, ModelStreamStall
    afterChunks: int  # ModelStreamStall, ModelStreamCut: stream events passed before it strikes


class FaultMatch(TypedDict, total=False):
    percentage: float


class StopConditionSpec(TypedDict, total=False):
    errorRateAbove: float
    latencyP95MsAbove: int
    unhealthyFor: str
    modelErrorRateAbove: float
    tokensPerMinuteAbove: int


class FaultTemplate(TypedDict, total=False):
    """A Fault's spec without its target: also a ResilienceCheck's spec.experiments[].fault."""

    type: Required[FaultType]
    latency: LatencyParams
    error: ErrorParams
    crash: CrashParams
    model: ModelFaultParams
    match: FaultMatch
    duration: Required[str]
    stopConditions: list[StopConditionSpec]


class FaultSpecBody(FaultTemplate, total=False):
    target: Required[FaultTarget]


class FaultStatus(TypedDict, total=False):
    phase: FaultPhase
    observedGeneration: int
    conditions: list[Condition]
    startedAt: str
    expiresAt: str
    endedAt: str
    targets: list[str]  # agents the fault is assigned to
    curedTargets: list[str]  # agents a restart cured of a Crash fault: no longer assigned
    targetSummary: str
    message: str


# ------------------------------------------------------------------ defaults

# The Fault parameters' defaults, read by the operator and the sidecar alike; the CRD
# states the same values (test_api_types applies the CRD's defaults and compares).
# The Agent's defaults are the field defaults of agentops_operator.resources.
DEFAULT_PERCENTAGE = 100.0  # spec.match.percentage: every request
DEFAULT_JITTER_MS = 0  # spec.latency.jitterMs
DEFAULT_ERROR_STATUS = 503  # spec.error.statusCode: Service Unavailable, what an overloaded agent answers
DEFAULT_CRASH_STATUS = 503  # spec.crash.statusCode
DEFAULT_RETRY_AFTER = "1s"  # spec.model.retryAfter of ModelRateLimit: a short hint, as providers send under load
DEFAULT_AFTER_CHUNKS = 1  # spec.model.afterChunks: the stream breaks after its first event


# ------------------------------------------------------------------ ResilienceCheck

CheckPhase = Literal["Pending", "Scheduled", "Running", "Completed", "Aborted", "Failed"]
RunPhase = Literal["Baseline", "Running", "Completed", "Aborted", "Failed"]
RunTrigger = Literal["Created", "Requested", "Schedule"]
ExperimentState = Literal["Pending", "Settling", "Injecting", "Observing", "Recovering", "Done"]
Verdict = Literal["Resilient", "Degraded", "Vulnerable", "Aborted"]


class SteadyStateSpec(TypedDict, total=False):
    baseline: str
    settle: str
    timeout: str
    minRequests: int
    maxErrorRate: float
    maxLatencyP95Ms: int
    maxTimeToFirstTokenP95Ms: int
    maxTokensPerMinute: int


class ExpectSpec(TypedDict, total=False):
    detectedWithin: str
    recoveredWithin: str
    recoveryDeadline: str
    maxErrorRate: float
    maxLatencyP95Ms: int
    maxTimeToFirstTokenP95Ms: int
    maxTokensPerMinute: int
    allowEscalation: bool


class ExperimentSpec(TypedDict, total=False):
    name: Required[str]
    weight: int
    fault: Required[FaultTemplate]
    expect: ExpectSpec


class CheckSpecBody(TypedDict, total=False):
    agent: Required[str]
    steadyState: SteadyStateSpec
    experiments: Required[list[ExperimentSpec]]
    schedule: str
    suspend: bool
    historyLimit: int
    passingScore: int
    failOnVulnerableWeight: int


class Measurement(TypedDict, total=False):
    """The Agent's numbers over one window of a run (baseline, a fault's active window)."""

    seconds: float
    requests: int
    errors: int
    errorRate: float
    latencyP95Ms: float
    modelCalls: int
    modelErrors: int
    timeToFirstTokenP95Ms: float
    tokensPerMinute: float


class ExperimentResult(TypedDict, total=False):
    name: Required[str]
    faultType: FaultType
    weight: int
    state: ExperimentState
    verdict: Verdict
    findings: list[str]
    fault: str
    faultUID: str
    faultPhase: FaultPhase
    faultMessage: str
    startedAt: str
    faultStartedAt: str
    faultEndedAt: str
    detectedAt: str
    recoveredAt: str
    finishedAt: str
    detectionSeconds: float
    recoverySeconds: float
    worstPhase: AgentPhase
    restarts: int
    escalated: bool
    incident: str
    incidentState: IncidentState
    during: Measurement


class SeriesPoint(TypedDict, total=False):
    offsetSeconds: Required[float]
    requests: int
    errorRate: float
    latencyP95Ms: float
    phase: AgentPhase


class CheckRun(TypedDict, total=False):
    id: Required[int]
    trigger: RunTrigger
    phase: RunPhase
    generation: int
    startedAt: str
    finishedAt: str
    score: int
    passed: bool
    message: str
    baseline: Measurement
    experiments: list[ExperimentResult]
    series: list[SeriesPoint]


class CheckStatus(TypedDict, total=False):
    phase: CheckPhase
    observedGeneration: int
    conditions: list[Condition]
    progress: str
    score: int
    summary: str
    message: str
    nextRunAt: str
    runRequest: str
    runs: list[CheckRun]


# The annotation `agentops check run` sets to ask for a new run; any new value does.
RUN_REQUESTED_ANNOTATION = "agentops.dev/run-requested"
# Labels on the Faults a check creates: which check, run and experiment they belong to.
CHECK_LABEL = "agentops.dev/resilience-check"
RUN_LABEL = "agentops.dev/check-run"
EXPERIMENT_LABEL = "agentops.dev/experiment"
# Verdict values in the score (CheckRun.score): documented in the CRD and the README.
VERDICT_VALUE: dict[Verdict, float] = {"Resilient": 1.0, "Degraded": 0.5, "Vulnerable": 0.0}
