"""The CI gate of `agentops check run`: from a finished run and two thresholds to an exit code. Pure.

The thresholds default to the check's own spec.passingScore and
spec.failOnVulnerableWeight, so without flags the gate agrees with the operator's
Passed condition; `--min-score` and `--fail-on-vulnerable-weight` tighten or loosen
it for one pipeline. The run's score is the operator's (status.runs[].score): the gate
compares it, it never recomputes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentops.api_types import CheckRun
from agentops.check_report import DEFAULT_FAIL_ON_VULNERABLE_WEIGHT, DEFAULT_PASSING_SCORE

# The exit codes, as `agentops check run --help` documents them.
EXIT_PASSED = 0
EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_COMPLETED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

EXIT_CODES_HELP = f"""exit codes:
  {EXIT_PASSED}    the run passed the gate
  {EXIT_GATE_FAILED}    the gate failed: score below --min-score, or a Vulnerable experiment of weight
       at least --fail-on-vulnerable-weight
  {EXIT_BAD_INPUT}    bad input: the file is unreadable or not a ResilienceCheck, or the API server
       rejected it (its message names the field)
  {EXIT_NOT_COMPLETED}    the run did not complete: Aborted, Failed, the check deleted, or --timeout
       reached (the check is left in the cluster)
  {EXIT_INTERRUPTED}  Ctrl-C: following stopped; the run goes on in the cluster"""

FINISHED_PHASES = ("Completed", "Aborted", "Failed")


@dataclass(frozen=True)
class Thresholds:
    min_score: int
    fail_on_vulnerable_weight: int

    @classmethod
    def of(cls, spec: dict[str, Any], min_score: int | None = None, fail_on_vulnerable_weight: int | None = None) -> Thresholds:
        """The flags where given, else the spec's values, else the CRD's defaults."""
        return cls(
            min_score=spec.get("passingScore", DEFAULT_PASSING_SCORE) if min_score is None else min_score,
            fail_on_vulnerable_weight=(spec.get("failOnVulnerableWeight", DEFAULT_FAIL_ON_VULNERABLE_WEIGHT)
                                       if fail_on_vulnerable_weight is None else fail_on_vulnerable_weight),
        )


@dataclass(frozen=True)
class GateResult:
    exit_code: int
    reasons: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.exit_code == EXIT_PASSED

    def summary(self) -> str:
        """One line for the end of a CI log."""
        word = {EXIT_PASSED: "PASSED", EXIT_GATE_FAILED: "FAILED"}.get(self.exit_code, "NOT COMPLETED")
        return f"gate {word}: " + "; ".join(self.reasons)


def gate(run: CheckRun, thresholds: Thresholds) -> GateResult:
    """The exit code for `run` (see EXIT_CODES_HELP) and the reasons, in words with the numbers."""
    phase = run.get("phase")
    if phase != "Completed":
        if phase in FINISHED_PHASES:
            why = f": {run['message']}" if run.get("message") else ""
            return GateResult(EXIT_NOT_COMPLETED, (f"run {run['id']} {phase}{why}",))
        return GateResult(EXIT_NOT_COMPLETED, (f"run {run['id']} has not finished (phase {phase or 'Pending'})",))
    reasons: list[str] = []
    score = run.get("score")
    if score is None:
        reasons.append("no experiment was judged, so there is no score")
    elif score < thresholds.min_score:
        reasons.append(f"score {score} is below {thresholds.min_score}")
    heavy = [e for e in run.get("experiments") or []
             if e.get("verdict") == "Vulnerable" and e.get("weight", 1) >= thresholds.fail_on_vulnerable_weight]
    reasons += [f"experiment {e['name']} is Vulnerable with weight {e.get('weight', 1)} "
                f"(≥ {thresholds.fail_on_vulnerable_weight})" for e in heavy]
    if reasons:
        return GateResult(EXIT_GATE_FAILED, tuple(reasons))
    return GateResult(EXIT_PASSED, (f"score {score} ≥ {thresholds.min_score}, no Vulnerable experiment of weight "
                                    f"≥ {thresholds.fail_on_vulnerable_weight}",))
