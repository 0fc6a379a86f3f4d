"""A ResilienceCheck's conditions and progress, from its newest run (kstatus-compatible).

Ready: no run in progress and the newest completed. Passed: the newest completed run
reached the passing score with no heavy Vulnerable experiment. Reconciling: a run in
progress (or waiting to start). Stalled: the newest run Failed.
"""

from __future__ import annotations

from datetime import datetime

from agentops.api_types import CheckRun, CheckStatus
from agentops.times import format_time
from agentops_operator import check_verdict
from agentops_operator.check_settings import CheckSettings
from agentops_operator.conditions import ConditionSpec, merge_conditions


def summarize(status: CheckStatus, settings: CheckSettings, generation: int, now: datetime) -> None:
    """Set progress, the newest run's `passed` and the conditions, from the newest run."""
    runs = status.get("runs") or []
    run = runs[0] if runs else None
    status["observedGeneration"] = generation
    wanted: list[ConditionSpec] = []
    if run is None:
        status.pop("progress", None)
        idle = "Scheduled" if status.get("phase") == "Scheduled" else "Pending"
        wanted += [ConditionSpec("Ready", "False", "NoRunYet", status.get("message", "")),
                   ConditionSpec("Passed", "Unknown", "NoRunYet", "no run has completed yet"),
                   ConditionSpec("Reconciling", "True" if idle == "Pending" else "False", idle, status.get("message", "")),
                   ConditionSpec("Stalled", "False", idle, "")]
    else:
        experiments = run.get("experiments") or []
        done = sum(1 for e in experiments if e.get("state") == "Done")
        status["progress"] = f"{done}/{len(experiments)}"
        phase = run.get("phase")
        message = status.get("message", "")
        if phase in ("Baseline", "Running"):
            wanted += [ConditionSpec("Ready", "False", "RunInProgress", message),
                       ConditionSpec("Reconciling", "True", "RunInProgress", message),
                       ConditionSpec("Stalled", "False", "RunInProgress", "")]
        elif phase == "Completed":
            run["passed"] = check_verdict.passed(experiments, run.get("score"), passing_score=settings.passing_score,
                                                 fail_on_vulnerable_weight=settings.fail_on_vulnerable_weight)
            wanted += [ConditionSpec("Ready", "True", "RunCompleted", message),
                       ConditionSpec("Reconciling", "False", "RunCompleted", ""),
                       ConditionSpec("Stalled", "False", "RunCompleted", "")]
        else:
            run["passed"] = False
            wanted += [ConditionSpec("Ready", "False", f"Run{phase}", message),
                       ConditionSpec("Reconciling", "False", f"Run{phase}", ""),
                       ConditionSpec("Stalled", "True" if phase == "Failed" else "False", f"Run{phase}",
                                     message if phase == "Failed" else "")]
        if "passed" in run:
            wanted.append(ConditionSpec("Passed", "True" if run["passed"] else "False", *_passed_reason(settings, run)))
    status["conditions"] = merge_conditions(status.get("conditions"), wanted, generation=generation,
                                                 now=format_time(now))

def _passed_reason(settings: CheckSettings, run: CheckRun) -> tuple[str, str]:
    score = run.get("score")
    if run.get("phase") != "Completed":
        return f"Run{run.get('phase')}", f"run {run['id']} did not complete"
    heavy = [e["name"] for e in run.get("experiments") or []
             if e.get("verdict") == "Vulnerable" and e.get("weight", 1) >= settings.fail_on_vulnerable_weight]
    if heavy:
        return "VulnerableExperiment", (f"run {run['id']}: Vulnerable with weight >= {settings.fail_on_vulnerable_weight}: "
                                        + ", ".join(heavy))
    if score is None or score < settings.passing_score:
        return "ScoreBelowPassing", f"run {run['id']}: score {score} is below {settings.passing_score}"
    return "ScoreReached", f"run {run['id']}: score {score} reaches {settings.passing_score}"
