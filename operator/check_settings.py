"""A ResilienceCheck's spec as the operator reads it.

Frozen dataclasses whose field defaults are the CRD's defaults, stated once
(tests/unit/test_api_types.py applies the CRD's defaults and compares). A spec that the
API server accepted parses; what the schema cannot say (a schedule that is no cron
expression) raises InvalidField naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from agentops.api_types import FaultTemplate, FaultType
from agentops.durations import parse_duration
from agentops.errors import InvalidField

if TYPE_CHECKING:
    from agentops import cron


def _seconds(block: dict[str, Any], name: str, default_s: float | None, where: str) -> float | None:
    return parse_duration(block[name], f"{where}.{name}") if name in block else default_s


@dataclass(frozen=True)
class Limits:
    """Upper bounds on the Agent's numbers over a window; None: not judged."""

    max_error_rate: float | None = None
    max_latency_p95_ms: int | None = None
    max_ttft_p95_ms: int | None = None
    max_tokens_per_minute: int | None = None

    @classmethod
    def from_block(cls, block: dict[str, Any]) -> Limits:
        return cls(
            max_error_rate=block.get("maxErrorRate"),
            max_latency_p95_ms=block.get("maxLatencyP95Ms"),
            max_ttft_p95_ms=block.get("maxTimeToFirstTokenP95Ms"),
            max_tokens_per_minute=block.get("maxTokensPerMinute"),
        )


@dataclass(frozen=True)
class SteadyState:
    baseline_s: float = 30.0
    settle_s: float = 15.0
    timeout_s: float = 300.0
    min_requests: int = 1
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_block(cls, block: dict[str, Any]) -> SteadyState:
        where, d = "spec.steadyState", cls()
        return cls(
            baseline_s=_seconds(block, "baseline", d.baseline_s, where) or d.baseline_s,
            settle_s=_seconds(block, "settle", d.settle_s, where) or d.settle_s,
            timeout_s=_seconds(block, "timeout", d.timeout_s, where) or d.timeout_s,
            min_requests=int(block.get("minRequests", d.min_requests)),
            limits=Limits.from_block(block),
        )


# spec.experiments[].expect.maxErrorRate: 5% of requests may fail while a fault is on.
DEFAULT_ERROR_BUDGET = 0.05
# spec.experiments[].expect.recoveryDeadline: an agent not Healthy two minutes after a
# fault ended did not survive it.
DEFAULT_RECOVERY_DEADLINE_S = 120.0


@dataclass(frozen=True)
class Expectations:
    detected_within_s: float | None = None
    recovered_within_s: float | None = None
    recovery_deadline_s: float = DEFAULT_RECOVERY_DEADLINE_S
    max_error_rate: float = DEFAULT_ERROR_BUDGET
    soft: Limits = field(default_factory=Limits)  # p95, time to first token, tokens/min (max_error_rate unused)
    allow_escalation: bool = False

    @classmethod
    def from_block(cls, block: dict[str, Any], where: str) -> Expectations:
        d = cls()
        limits = Limits.from_block(block)
        return cls(
            detected_within_s=_seconds(block, "detectedWithin", None, where),
            recovered_within_s=_seconds(block, "recoveredWithin", None, where),
            recovery_deadline_s=_seconds(block, "recoveryDeadline", d.recovery_deadline_s, where) or d.recovery_deadline_s,
            max_error_rate=float(block.get("maxErrorRate", d.max_error_rate)),
            soft=Limits(max_latency_p95_ms=limits.max_latency_p95_ms, max_ttft_p95_ms=limits.max_ttft_p95_ms,
                        max_tokens_per_minute=limits.max_tokens_per_minute),
            allow_escalation=bool(block.get("allowEscalation", d.allow_escalation)),
        )


@dataclass(frozen=True)
class Experiment:
    name: str
    fault: FaultTemplate
    weight: int = 1
    expect: Expectations = field(default_factory=Expectations)

    @property
    def fault_type(self) -> FaultType:
        return self.fault["type"]


@dataclass(frozen=True)
class CheckSettings:
    agent: str
    experiments: tuple[Experiment, ...]
    steady: SteadyState = field(default_factory=SteadyState)
    schedule: cron.Schedule | None = None
    suspend: bool = False
    history_limit: int = 3
    passing_score: int = 80
    fail_on_vulnerable_weight: int = 100

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> CheckSettings:
        if not isinstance(spec.get("agent"), str) or not spec["agent"]:
            raise InvalidField("spec.agent", "the name of an Agent in the check's namespace is required")
        raw = spec.get("experiments")
        if not isinstance(raw, list) or not raw:
            raise InvalidField("spec.experiments", "at least one experiment is required")
        experiments = []
        for i, item in enumerate(raw):
            where = f"spec.experiments[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("fault"), dict) or "type" not in item["fault"]:
                raise InvalidField(f"{where}.fault", "a Fault spec without target is required")
            experiments.append(Experiment(
                name=str(item.get("name") or f"experiment-{i + 1}"),
                fault=cast(FaultTemplate, dict(item["fault"])),
                weight=int(item.get("weight", 1)),
                expect=Expectations.from_block(item.get("expect") or {}, f"{where}.expect"),
            ))
        d = cls(agent="", experiments=())
        schedule = None
        if spec.get("schedule"):
            from agentops.cron import Schedule  # only checks with a schedule need it

            schedule = Schedule.parse(spec["schedule"])  # its CronError names spec.schedule
        return cls(
            agent=spec["agent"],
            experiments=tuple(experiments),
            steady=SteadyState.from_block(spec.get("steadyState") or {}),
            schedule=schedule,
            suspend=bool(spec.get("suspend", d.suspend)),
            history_limit=int(spec.get("historyLimit", d.history_limit)),
            passing_score=int(spec.get("passingScore", d.passing_score)),
            fail_on_vulnerable_weight=int(spec.get("failOnVulnerableWeight", d.fail_on_vulnerable_weight)),
        )
