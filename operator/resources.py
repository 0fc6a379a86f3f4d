"""The Agent and Fault kinds as the operator reads them.

Raw bodies arrive from watches as plain dicts. This module turns the parts the
operator reasons about into small frozen dataclasses. Their field defaults are the
Agent's defaults, stated once: a block or field missing from a body (one written
before a default was introduced) reads as the field default, and
tests/unit/test_api_types.py checks that the CRD schemas default to the same values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, get_args

from agentops import API_VERSION
from agentops.api_types import DEFAULT_PERCENTAGE, FaultType, RuntimeType, TokenBurnAction
from agentops.durations import parse_duration
from agentops.errors import InvalidField
from agentops.label_selector import LabelSelector

AGENTS = "agents"
FAULTS = "faults"
# Set (or change) this annotation on an Agent to restart it once, as `kubectl rollout
# restart` does for a Deployment: `kubectl annotate agent chat agentops.dev/restart="$(date +%s)" --overwrite`.
RESTART_ANNOTATION = "agentops.dev/restart"
# Set (or change) this one to end every active fault on the agent (they become Halted)
# and restart it once: the "get me out of here" button, as a kubectl one-liner.
RECOVER_ANNOTATION = "agentops.dev/recover"
# On a Namespace: halt every active fault in it and refuse new ones while it is set.
# The value says why: `kubectl annotate namespace team-a agentops.dev/halt="incident 42"`.
HALT_ANNOTATION = "agentops.dev/halt"
# On the operator's own namespace (--control-namespace): the same for the whole cluster.
HALT_ALL_ANNOTATION = "agentops.dev/halt-all"


class Key(NamedTuple):
    """Namespace and name: the identity of a namespaced object."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ObjectRef:
    """Enough of an object to address it and to point an Event at it."""

    kind: str
    plural: str
    key: Key
    uid: str
    api_version: str = API_VERSION


def _seconds(block: dict[str, Any], name: str, default_s: float, where: str) -> float:
    """A duration field of a spec block, or the field default when it is absent."""
    return parse_duration(block[name], f"{where}.{name}") if name in block else default_s


def _choice(block: dict[str, Any], name: str, default: Any, allowed: tuple[Any, ...], where: str) -> Any:
    value = block.get(name, default)
    if value not in allowed:
        raise InvalidField(f"{where}.{name}", f"{value!r} is not allowed; use one of {', '.join(allowed)}")
    return value


def _optional_number(block: dict[str, Any], name: str) -> float | None:
    return float(block[name]) if name in block else None


@dataclass(frozen=True)
class HealthThresholds:
    heartbeat_timeout_s: float = 30.0
    window_s: float = 60.0
    min_samples: int = 10
    probe_failure_threshold: int = 3
    latency_p95_degraded_ms: float = 1000.0
    latency_p95_unhealthy_ms: float = 4000.0
    error_rate_degraded: float = 0.05
    error_rate_unhealthy: float = 0.25
    # spec.health.model: the agent's calls to its model providers.
    model_min_calls: int = 5
    model_error_rate_degraded: float = 0.1
    model_error_rate_unhealthy: float = 0.5
    first_token_p95_degraded_ms: float = 5000.0
    first_token_p95_unhealthy_ms: float = 20000.0
    # The runaway guards are off unless set.
    tokens_per_minute_degraded: float | None = None
    tokens_per_minute_unhealthy: float | None = None
    cost_per_hour_unhealthy: float | None = None
    # spec.models.prices: model → (USD per million input tokens, per million output tokens).
    prices: tuple[tuple[str, float, float], ...] = ()

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> HealthThresholds:
        health = spec.get("health") or {}
        latency = health.get("latencyP95Ms") or {}
        errors = health.get("errorRate") or {}
        model = health.get("model") or {}
        model_errors = model.get("errorRate") or {}
        first_token = model.get("timeToFirstTokenP95Ms") or {}
        burn = model.get("tokensPerMinute") or {}
        cost = model.get("costPerHour") or {}
        prices = ((spec.get("models") or {}).get("prices")) or ()
        d = cls()
        return cls(
            heartbeat_timeout_s=_seconds(health, "heartbeatTimeout", d.heartbeat_timeout_s, "spec.health"),
            window_s=_seconds(health, "window", d.window_s, "spec.health"),
            min_samples=int(health.get("minSamples", d.min_samples)),
            probe_failure_threshold=int(health.get("probeFailureThreshold", d.probe_failure_threshold)),
            latency_p95_degraded_ms=float(latency.get("degraded", d.latency_p95_degraded_ms)),
            latency_p95_unhealthy_ms=float(latency.get("unhealthy", d.latency_p95_unhealthy_ms)),
            error_rate_degraded=float(errors.get("degraded", d.error_rate_degraded)),
            error_rate_unhealthy=float(errors.get("unhealthy", d.error_rate_unhealthy)),
            model_min_calls=int(model.get("minCalls", d.model_min_calls)),
            model_error_rate_degraded=float(model_errors.get("degraded", d.model_error_rate_degraded)),
            model_error_rate_unhealthy=float(model_errors.get("unhealthy", d.model_error_rate_unhealthy)),
            first_token_p95_degraded_ms=float(first_token.get("degraded", d.first_token_p95_degraded_ms)),
            first_token_p95_unhealthy_ms=float(first_token.get("unhealthy", d.first_token_p95_unhealthy_ms)),
            tokens_per_minute_degraded=_optional_number(burn, "degraded"),
            tokens_per_minute_unhealthy=_optional_number(burn, "unhealthy"),
            cost_per_hour_unhealthy=_optional_number(cost, "unhealthy"),
            prices=tuple(sorted((str(p["model"]), float(p["inputPerMillionTokens"]), float(p["outputPerMillionTokens"]))
                                for p in prices)),
        )

    def price(self, model: str) -> tuple[float, float] | None:
        """USD per million (input, output) tokens of `model`, or None when it has no price."""
        for name, per_input, per_output in self.prices:
            if name == model:
                return per_input, per_output
        return None


@dataclass(frozen=True)
class HealingPolicy:
    """spec.healing, with the CRD's defaults."""

    enabled: bool = True
    unhealthy_for_s: float = 30.0
    verify_timeout_s: float = 120.0
    max_restarts: int = 3
    budget_window_s: float = 3600.0
    backoff_initial_s: float = 30.0
    backoff_max_s: float = 600.0
    on_token_burn: TokenBurnAction = "Restart"

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> HealingPolicy:
        raw = spec.get("healing") or {}
        budget = raw.get("budget") or {}
        backoff = raw.get("backoff") or {}
        d = cls()
        return cls(
            enabled=bool(raw.get("enabled", d.enabled)),
            unhealthy_for_s=_seconds(raw, "unhealthyFor", d.unhealthy_for_s, "spec.healing"),
            verify_timeout_s=_seconds(raw, "verifyTimeout", d.verify_timeout_s, "spec.healing"),
            max_restarts=int(budget.get("maxRestarts", d.max_restarts)),
            budget_window_s=_seconds(budget, "window", d.budget_window_s, "spec.healing.budget"),
            backoff_initial_s=_seconds(backoff, "initial", d.backoff_initial_s, "spec.healing.backoff"),
            backoff_max_s=_seconds(backoff, "max", d.backoff_max_s, "spec.healing.backoff"),
            on_token_burn=_choice(raw, "onTokenBurn", d.on_token_burn, get_args(TokenBurnAction), "spec.healing"),
        )


@dataclass(frozen=True)
class StopCondition:
    """One guard of spec.stopConditions: exactly one field is set."""

    error_rate_above: float | None = None
    latency_p95_ms_above: float | None = None
    unhealthy_for_s: float | None = None
    model_error_rate_above: float | None = None
    tokens_per_minute_above: float | None = None

    @classmethod
    def from_spec(cls, raw: dict[str, Any], index: int) -> StopCondition:
        where = f"spec.stopConditions[{index}]"
        cond = cls(
            error_rate_above=_optional_number(raw, "errorRateAbove"),
            latency_p95_ms_above=_optional_number(raw, "latencyP95MsAbove"),
            unhealthy_for_s=parse_duration(raw["unhealthyFor"], f"{where}.unhealthyFor") if "unhealthyFor" in raw else None,
            model_error_rate_above=_optional_number(raw, "modelErrorRateAbove"),
            tokens_per_minute_above=_optional_number(raw, "tokensPerMinuteAbove"),
        )
        guards = (cond.error_rate_above, cond.latency_p95_ms_above, cond.unhealthy_for_s, cond.model_error_rate_above,
                  cond.tokens_per_minute_above)
        if sum(v is not None for v in guards) != 1:
            raise InvalidField(where, "must set exactly one of errorRateAbove, latencyP95MsAbove, unhealthyFor, "
                                      "modelErrorRateAbove, tokensPerMinuteAbove")
        return cond


@dataclass(frozen=True)
class RuntimeSpec:
    """spec.runtime: where the agent runs, hence how a restart is done."""

    type: RuntimeType = "None"
    deployment: str | None = None  # Kubernetes: Deployment name in the Agent's namespace
    project: str | None = None  # CloudRun
    region: str | None = None
    service: str | None = None
    # CloudRun: send traffic back to the last ready revision when the new one fails.
    rollback_on_failure: bool = True
    service_account: str | None = None  # CloudRun: the Google service account its sidecar's ID token must name

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> RuntimeSpec:
        runtime = spec.get("runtime") or {}
        cloud = runtime.get("cloudRun") or {}
        d = cls()
        kind = runtime.get("type", d.type)
        if kind not in get_args(RuntimeType):
            raise InvalidField("spec.runtime.type", f"{kind!r} is not allowed; use one of {', '.join(get_args(RuntimeType))}")
        return cls(
            type=kind,
            deployment=(runtime.get("deployment") or {}).get("name"),
            project=cloud.get("project"),
            region=cloud.get("region"),
            service=cloud.get("service"),
            rollback_on_failure=bool(cloud.get("rollbackOnFailure", d.rollback_on_failure)),
            service_account=cloud.get("serviceAccount") or None,
        )

    def describe(self) -> str:
        if self.type == "Kubernetes":
            return f"Deployment {self.deployment}"
        if self.type == "CloudRun":
            return f"Cloud Run service projects/{self.project}/locations/{self.region}/services/{self.service}"
        if self.type == "Process":
            return "the process its sidecar supervises"
        return "nothing (runtime None: observe only)"


def params_block(fault_type: str) -> str:
    """The spec block holding a fault type's parameters: latency, error, crash or model."""
    return "model" if fault_type.startswith("Model") else fault_type.lower()


@dataclass(frozen=True)
class FaultSpec:
    type: FaultType
    duration_s: float
    percentage: float
    target_agent: str | None
    target_selector: LabelSelector | None
    params: dict[str, Any] = field(default_factory=dict)  # the type's own block, e.g. {"delayMs": 2500}
    stop_conditions: tuple[StopCondition, ...] = ()

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> FaultSpec:
        target = spec.get("target") or {}
        fault_type = spec.get("type", "")
        if fault_type not in get_args(FaultType):
            raise InvalidField("spec.type", f"{fault_type!r} is not allowed; use one of {', '.join(get_args(FaultType))}")
        selector = target.get("selector")
        return cls(
            type=fault_type,
            duration_s=parse_duration(spec.get("duration", ""), "spec.duration"),
            percentage=float((spec.get("match") or {}).get("percentage", DEFAULT_PERCENTAGE)),
            target_agent=target.get("agent"),
            target_selector=LabelSelector.from_spec(selector, "spec.target.selector") if selector is not None else None,
            # The type's own block (e.g. spec.latency), named as the type in lower case;
            # every Model* type shares spec.model.
            params=dict(spec.get(params_block(fault_type)) or {}),
            stop_conditions=tuple(StopCondition.from_spec(c or {}, i) for i, c in enumerate(spec.get("stopConditions") or ())),
        )
