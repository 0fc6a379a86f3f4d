"""Judging one experiment of a ResilienceCheck, and scoring a run. Pure functions.

An experiment is judged once its Fault has ended and the Agent is Healthy again (or
the recovery deadline has passed), from what was recorded in its result: the times
the Agent left and regained Healthy, escalation, how the Fault ended, and the numbers
over the Fault's active window. The rules (the CRD says the same):

- Vulnerable: a hard expectation missed - the error budget (`maxErrorRate`) spent,
  not Healthy again within `recoveryDeadline` of the Fault ending, healing escalated
  (unless `allowEscalation`), or one of the Fault's stop conditions ended it.
- Degraded: every hard expectation met, a soft one missed - detected later than
  `detectedWithin`, Healthy again later than `recoveredWithin` after the Fault started,
  p95 latency, time to first token or tokens per minute above their limits.
- Resilient: everything met. An Agent that never left Healthy was "not affected": it
  detected nothing and recovered at once.

The score of a run is round(100 x sum(weight x value) / sum(weight)) over its judged
experiments, value 1 for Resilient, 0.5 for Degraded and 0 for Vulnerable; Aborted
experiments are left out (they say nothing of the Agent), and a run with none judged
has no score.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

from agentops.api_types import VERDICT_VALUE, ExperimentResult, Measurement, Verdict
from agentops.durations import format_duration
from agentops.times import parse_time
from agentops_operator.check_settings import Expectations, Limits


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    findings: tuple[str, ...]


def seconds_between(later: str | None, earlier: str | None) -> float | None:
    """Seconds from one recorded time (RFC 3339) to another, to the millisecond; None if either is absent."""
    a, b = parse_time(later), parse_time(earlier)
    return None if a is None or b is None else round((a - b).total_seconds(), 3)


def limit_findings(numbers: Measurement, limits: Limits, what: str) -> list[str]:
    """Each limit the numbers exceed, in words; a number not measured is not judged."""
    out = []
    requests, errors = numbers.get("requests", 0), numbers.get("errors", 0)
    if limits.max_error_rate is not None and requests and errors / requests > limits.max_error_rate:
        out.append(f"error rate {errors / requests:.3f} ({errors}/{requests}) {what} is above {limits.max_error_rate:g}")
    p95 = numbers.get("latencyP95Ms")
    if limits.max_latency_p95_ms is not None and p95 is not None and p95 > limits.max_latency_p95_ms:
        out.append(f"p95 latency {p95:g}ms {what} is above {limits.max_latency_p95_ms}ms")
    ttft = numbers.get("timeToFirstTokenP95Ms")
    if limits.max_ttft_p95_ms is not None and ttft is not None and ttft > limits.max_ttft_p95_ms:
        out.append(f"p95 time to first token {ttft:g}ms {what} is above {limits.max_ttft_p95_ms}ms")
    tpm = numbers.get("tokensPerMinute")
    if limits.max_tokens_per_minute is not None and tpm is not None and tpm > limits.max_tokens_per_minute:
        out.append(f"{tpm:g} tokens per minute {what} is above {limits.max_tokens_per_minute}")
    return out


def judge(result: ExperimentResult, expect: Expectations) -> Judgement:
    """The verdict of an experiment whose Fault has ended (see the module docstring)."""
    hard: list[str] = []
    soft: list[str] = []
    during = result.get("during") or Measurement()
    requests, errors = during.get("requests", 0), during.get("errors", 0)
    if requests and errors / requests > expect.max_error_rate:
        hard.append(f"error budget spent: {errors}/{requests} requests failed during the fault "
                    f"({errors / requests:.3f} > {expect.max_error_rate:g})")
    detected = "detectedAt" in result
    recovered_after_end = seconds_between(result.get("recoveredAt"), result.get("faultEndedAt"))
    if detected and "recoveredAt" not in result:
        hard.append(f"not Healthy again within {format_duration(expect.recovery_deadline_s)} of the fault ending")
    elif recovered_after_end is not None and recovered_after_end > expect.recovery_deadline_s:
        hard.append(f"Healthy again only {recovered_after_end:.1f}s after the fault ended "
                    f"(deadline {format_duration(expect.recovery_deadline_s)})")
    if result.get("escalated") and not expect.allow_escalation:
        hard.append("healing escalated (Stalled): restart budget spent or a restart not verified")
    if result.get("faultPhase") == "Aborted":
        hard.append(f"a stop condition ended the fault: {result.get('faultMessage', '')}".rstrip(": "))
    detection = result.get("detectionSeconds")
    if expect.detected_within_s is not None and detection is not None and detection > expect.detected_within_s:
        soft.append(f"detected after {detection:.1f}s (expected within {format_duration(expect.detected_within_s)})")
    recovery = result.get("recoverySeconds")
    if expect.recovered_within_s is not None and detected and (recovery is None or recovery > expect.recovered_within_s):
        took = "not at all" if recovery is None else f"after {recovery:.1f}s"
        soft.append(f"Healthy again {took} (expected within {format_duration(expect.recovered_within_s)} of the fault starting)")
    soft += limit_findings(during, expect.soft, "during the fault")
    if hard:
        return Judgement("Vulnerable", tuple(hard + soft))
    if soft:
        return Judgement("Degraded", tuple(soft))
    return Judgement("Resilient", ())


def score(experiments: list[ExperimentResult]) -> int | None:
    """The run's score 0..100 (module docstring), None when no experiment was judged."""
    judged = [(e.get("weight", 1), VERDICT_VALUE[e["verdict"]]) for e in experiments
              if e.get("verdict") in VERDICT_VALUE]
    total = sum(w for w, _ in judged)
    if not total:
        return None
    # Half up, as a person computes it (Python's round() would take 62.5 to 62).
    return math.floor(100 * sum(w * v for w, v in judged) / total + 0.5)


def passed(experiments: list[ExperimentResult], run_score: int | None, *, passing_score: int,
           fail_on_vulnerable_weight: int) -> bool:
    """Whether a completed run passes: its score reaches `passing_score` and no Vulnerable
    experiment weighs `fail_on_vulnerable_weight` or more."""
    if run_score is None or run_score < passing_score:
        return False
    return not any(e.get("verdict") == "Vulnerable" and e.get("weight", 1) >= fail_on_vulnerable_weight for e in experiments)


def summary(experiments: list[ExperimentResult]) -> str:
    """The verdicts counted, for kubectl get: '2 Resilient, 1 Vulnerable'."""
    counts: dict[str, int] = {}
    for e in experiments:
        if "verdict" in e:
            counts[e["verdict"]] = counts.get(e["verdict"], 0) + 1
    order: tuple[Verdict, ...] = ("Resilient", "Degraded", "Vulnerable", "Aborted")
    return ", ".join(f"{counts[v]} {v}" for v in order if v in counts)
