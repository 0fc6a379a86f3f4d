"""One run of a ResilienceCheck as a report: a JSON document, Markdown, JUnit XML. Pure functions.

The input is the check as the API server returns it (metadata, spec, status). Every
renderer goes through one document, `build(check, run_id)`, so Markdown, JSON and
JUnit never disagree on a number. The operator decided the verdicts, findings, score
and `passed`; this module only shows them (a reader never re-derives what the writer
decided). Expectations are not in the run: they come from the check's spec, matched by
experiment name, and when the run followed an older generation of the spec the report
says "spec changed since this run".

The JSON document (`Report`, reportVersion 1) is the stable interface for scripts:
every key is always present, a value not measured or not known is null.

- `check`, `namespace`, `agent`, `generation` (the check's metadata.generation now),
  `specChanged` (the run followed another generation).
- `run`: id, trigger, phase, generation, startedAt, finishedAt, durationSeconds, score,
  passed, message.
- `baseline`: the Agent's numbers over the baseline period (a Measurement; {} if none).
- `experiments[]`: name, faultType, weight, state, verdict, findings, startedAt,
  finishedAt, durationSeconds, detectionSeconds, recoverySeconds, worstPhase, restarts,
  escalated, incident, incidentState, fault, faultPhase, during (a Measurement), and
  expect (the spec's expectations for it; null when the spec no longer has it).
- `score`: value, formula (the arithmetic in words), terms (weight and value of each
  judged experiment), passingScore and failOnVulnerableWeight from the spec.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any, Literal, TypedDict, cast

from agentops.api_types import VERDICT_VALUE, CheckRun, ExpectSpec, ExperimentResult, Measurement, Verdict
from agentops.durations import format_duration
from agentops.errors import AgentOpsError
from agentops.times import parse_time

REPORT_VERSION = 1
Format = Literal["markdown", "json", "junit"]
FORMATS: tuple[Format, ...] = ("markdown", "json", "junit")
# The CRD's defaults, for a check read from a file or an old object that lacks them.
DEFAULT_PASSING_SCORE = 80
DEFAULT_FAIL_ON_VULNERABLE_WEIGHT = 100
# Shown for a number that was not measured (a dash, so a table column stays readable).
NONE = "–"


class NoRun(AgentOpsError):
    """The check has no run yet, or not the one asked for."""


class RunReport(TypedDict):
    id: int
    trigger: str | None
    phase: str | None
    generation: int | None
    startedAt: str | None
    finishedAt: str | None
    durationSeconds: float | None
    score: int | None
    passed: bool | None
    message: str | None


class ExperimentReport(TypedDict):
    name: str
    faultType: str | None
    weight: int
    state: str | None
    verdict: Verdict | None
    findings: list[str]
    startedAt: str | None
    finishedAt: str | None
    durationSeconds: float | None
    detectionSeconds: float | None
    recoverySeconds: float | None
    worstPhase: str | None
    restarts: int | None
    escalated: bool
    incident: str | None
    incidentState: str | None
    fault: str | None
    faultPhase: str | None
    during: Measurement
    expect: ExpectSpec | None


class ScoreTerm(TypedDict):
    name: str
    weight: int
    value: float


class ScoreReport(TypedDict):
    value: int | None
    formula: str
    terms: list[ScoreTerm]
    passingScore: int
    failOnVulnerableWeight: int


class Report(TypedDict):
    reportVersion: int
    check: str
    namespace: str
    agent: str
    generation: int | None
    specChanged: bool
    run: RunReport
    baseline: Measurement
    experiments: list[ExperimentReport]
    score: ScoreReport


# ------------------------------------------------------------------ the document


def select_run(check: dict[str, Any], run_id: int | None = None) -> CheckRun:
    """The run `run_id`, or the newest (status.runs is newest first); NoRun if there is none."""
    name = check.get("metadata", {}).get("name", "?")
    runs: list[CheckRun] = list((check.get("status") or {}).get("runs") or [])
    if not runs:
        raise NoRun(f"ResilienceCheck {name} has no run yet")
    if run_id is None:
        return runs[0]
    for run in runs:
        if run["id"] == run_id:
            return run
    kept = ", ".join(str(r["id"]) for r in runs)
    raise NoRun(f"ResilienceCheck {name} has no run {run_id} (status.runs keeps runs {kept})")


def _seconds(start: str | None, end: str | None) -> float | None:
    a, b = parse_time(start), parse_time(end)
    return None if a is None or b is None else (b - a).total_seconds()


def _experiment(result: ExperimentResult, expect: ExpectSpec | None) -> ExperimentReport:
    return ExperimentReport(
        name=result["name"], faultType=result.get("faultType"), weight=result.get("weight", 1),
        state=result.get("state"), verdict=result.get("verdict"), findings=list(result.get("findings") or []),
        startedAt=result.get("startedAt"), finishedAt=result.get("finishedAt"),
        durationSeconds=_seconds(result.get("startedAt"), result.get("finishedAt")),
        detectionSeconds=result.get("detectionSeconds"), recoverySeconds=result.get("recoverySeconds"),
        worstPhase=result.get("worstPhase"), restarts=result.get("restarts"), escalated=bool(result.get("escalated")),
        incident=result.get("incident"), incidentState=result.get("incidentState"), fault=result.get("fault"),
        faultPhase=result.get("faultPhase"), during=Measurement(**(result.get("during") or {})), expect=expect,
    )


def _score(run: CheckRun, spec: dict[str, Any]) -> ScoreReport:
    terms = [ScoreTerm(name=e["name"], weight=e.get("weight", 1), value=VERDICT_VALUE[e["verdict"]])
             for e in run.get("experiments") or [] if e.get("verdict") in VERDICT_VALUE]
    value = run.get("score")
    if terms:
        total = sum(t["weight"] for t in terms)
        sums = " + ".join(f"{t['weight']}×{t['value']:g}" for t in terms)
        formula = f"score = round(100 × ({sums}) / {total}) = {NONE if value is None else value}"
    else:
        formula = "no experiment judged: no score"
    return ScoreReport(value=value, formula=formula, terms=terms,
                       passingScore=spec.get("passingScore", DEFAULT_PASSING_SCORE),
                       failOnVulnerableWeight=spec.get("failOnVulnerableWeight", DEFAULT_FAIL_ON_VULNERABLE_WEIGHT))


def build(check: dict[str, Any], run_id: int | None = None) -> Report:
    """The report document of one run (the newest by default); NoRun if there is none."""
    run = select_run(check, run_id)
    metadata = check.get("metadata") or {}
    spec = check.get("spec") or {}
    expectations = {e["name"]: cast(ExpectSpec, dict(e.get("expect") or {})) for e in spec.get("experiments") or []}
    generation = metadata.get("generation")
    return Report(
        reportVersion=REPORT_VERSION, check=metadata.get("name", ""), namespace=metadata.get("namespace", ""),
        agent=spec.get("agent", ""), generation=generation,
        specChanged=generation is not None and run.get("generation") is not None and run.get("generation") != generation,
        run=RunReport(id=run["id"], trigger=run.get("trigger"), phase=run.get("phase"), generation=run.get("generation"),
                      startedAt=run.get("startedAt"), finishedAt=run.get("finishedAt"),
                      durationSeconds=_seconds(run.get("startedAt"), run.get("finishedAt")),
                      score=run.get("score"), passed=run.get("passed"), message=run.get("message")),
        baseline=Measurement(**(run.get("baseline") or {})),
        experiments=[_experiment(e, expectations.get(e["name"])) for e in run.get("experiments") or []],
        score=_score(run, spec),
    )


# ------------------------------------------------------------------ Markdown


def _cell(text: object) -> str:
    """A table cell: pipes escaped, newlines flattened (either would break the row)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(value: float | None, unit: str = "", digits: int = 1) -> str:
    return NONE if value is None else f"{value:.{digits}f}{unit}"


def _against(measured: str, limit: str | None) -> str:
    return measured if limit is None else f"{measured} (≤ {limit})"


def _baseline_line(m: Measurement) -> str:
    if not m:
        return "Not measured."
    parts = [f"{_num(m.get('seconds'), 's')} window", f"{m.get('requests', 0)} requests",
             f"{m.get('errors', 0)} errors (error rate {_num(m.get('errorRate'), digits=3)})",
             f"p95 latency {_num(m.get('latencyP95Ms'), ' ms', 0)}"]
    if m.get("modelCalls"):
        parts += [f"{m['modelCalls']} model calls, {m.get('modelErrors', 0)} failed",
                  f"time to first token p95 {_num(m.get('timeToFirstTokenP95Ms'), ' ms', 0)}",
                  f"{_num(m.get('tokensPerMinute'), digits=0)} tokens/min"]
    return ", ".join(parts) + "."


def _row(e: ExperimentReport) -> str:
    expect = e["expect"] or ExpectSpec()
    during = e["during"]
    limit_p95 = expect.get("maxLatencyP95Ms")
    limit_errors = expect.get("maxErrorRate")
    incident = NONE if not e["incident"] else f"{e['incident']} ({e['incidentState'] or '?'})"
    cells = [
        e["name"], e["faultType"] or NONE, e["weight"], e["verdict"] or e["state"] or "Pending",
        _against(_num(e["detectionSeconds"], "s"), expect.get("detectedWithin")),
        _against(_num(e["recoverySeconds"], "s"), expect.get("recoveredWithin")),
        _against(_num(during.get("errorRate"), digits=3), None if limit_errors is None else f"{limit_errors:g}"),
        _against(_num(during.get("latencyP95Ms"), " ms", 0), None if limit_p95 is None else f"{limit_p95} ms"),
        NONE if e["restarts"] is None else e["restarts"], incident,
    ]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _passed_text(report: Report) -> str:
    run, score = report["run"], report["score"]
    rule = (f"passing score {score['passingScore']}; a Vulnerable experiment of weight ≥ "
            f"{score['failOnVulnerableWeight']} fails the run")
    if run["passed"] is None:
        return f"Score {NONE if run['score'] is None else run['score']} / 100 — not judged ({rule})"
    verdict = "passed" if run["passed"] else "did not pass"
    return f"Score {NONE if run['score'] is None else run['score']} / 100 — {verdict} ({rule})"


def markdown(report: Report) -> str:
    run = report["run"]
    took = NONE if run["durationSeconds"] is None else format_duration(run["durationSeconds"])
    lines = [
        f"# ResilienceCheck `{report['check']}` on Agent `{report['agent']}` (namespace `{report['namespace']}`)",
        "",
        f"Run {run['id']} ({run['trigger'] or '?'}): **{run['phase'] or 'Pending'}**, "
        f"started {run['startedAt'] or NONE}, finished {run['finishedAt'] or NONE} ({took}).",
        "",
        f"**{_passed_text(report)}**",
    ]
    if run["message"]:
        lines += ["", f"> {run['message']}"]
    if report["specChanged"]:
        lines += ["", f"> spec changed since this run: the run followed generation {run['generation']}, the check is "
                      f"at generation {report['generation']}; the expectations shown are the current spec's."]
    lines += ["", "## Baseline", "", _baseline_line(report["baseline"]), "", "## Experiments", "",
              "| Experiment | Fault | Weight | Verdict | Detection | Recovery | Error rate | p95 latency | Restarts | Incident |",
              "|---|---|---:|---|---:|---:|---:|---:|---:|---|"]
    lines += [_row(e) for e in report["experiments"]]
    lines += ["", "## Findings", ""]
    for e in report["experiments"]:
        lines.append(f"### {e['name']} — {e['verdict'] or 'not judged yet'}")
        lines.append("")
        if e["expect"] is None:
            lines += ["_This experiment is no longer in the spec: its expectations are unknown._", ""]
        if e["findings"]:
            lines += [f"- {finding}" for finding in e["findings"]]
        elif e["verdict"] == "Resilient":
            lines.append("Every expectation met.")
        else:
            lines.append("No findings.")
        lines.append("")
    lines += ["## Score", "", f"`{report['score']['formula']}`", ""]
    aborted = [e["name"] for e in report["experiments"] if e["verdict"] == "Aborted"]
    if aborted:
        lines += [f"Aborted experiments are left out of the score: {', '.join(aborted)}.", ""]
    lines.append("Resilient counts 1, Degraded 0.5, Vulnerable 0, weighted by each experiment's weight.")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ JUnit XML


def _time(seconds: float | None) -> str:
    # Surefire's time format (digits, a dot, digits): no exponent, never negative.
    return f"{max(seconds or 0.0, 0.0):.3f}"


def _testcase(e: ExperimentReport, classname: str, degraded_as_failure: bool) -> tuple[ET.Element, str]:
    """The testcase of one experiment and what it counts as: passed, failure or skipped."""
    case = ET.Element("testcase", name=e["name"], classname=classname, time=_time(e["durationSeconds"]))
    findings = "\n".join(e["findings"])
    verdict = e["verdict"]
    if verdict == "Vulnerable" or (verdict == "Degraded" and degraded_as_failure):
        first = e["findings"][0] if e["findings"] else f"the experiment is {verdict}"
        failure = ET.SubElement(case, "failure", message=f"{verdict}: {first}", type=verdict)
        failure.text = findings or None
        return case, "failure"
    if verdict == "Aborted" or verdict is None:
        why = findings or ("not judged yet" if verdict is None else "aborted")
        ET.SubElement(case, "skipped", message=f"{verdict or e['state'] or 'Pending'}: {why}")
        return case, "skipped"
    out = ET.SubElement(case, "system-out")
    out.text = (f"Degraded: passes, but soft expectations were missed:\n{findings}" if verdict == "Degraded"
                else "Resilient: every expectation met.")
    return case, "passed"


def junit(report: Report, *, degraded_as_failure: bool = False) -> str:
    """One testsuite for the run, one testcase per experiment (see the module docstring)."""
    run = report["run"]
    classname = f"agentops.{report['namespace']}.{report['check']}"
    cases = [_testcase(e, classname, degraded_as_failure) for e in report["experiments"]]
    failures = sum(1 for _, kind in cases if kind == "failure")
    skipped = sum(1 for _, kind in cases if kind == "skipped")
    # A run that did not complete is one error of the suite, so CI shows it even when
    # every experiment it judged passed.
    errors = 1 if run["phase"] in ("Aborted", "Failed") else 0
    total_time = _time(run["durationSeconds"])
    root = ET.Element("testsuites", name=f"agentops resilience check {report['namespace']}/{report['check']}",
                      tests=str(len(cases)), failures=str(failures), errors=str(errors), time=total_time)
    suite = ET.SubElement(root, "testsuite", name=f"{classname} run {run['id']}", tests=str(len(cases)),
                          failures=str(failures), errors=str(errors), skipped=str(skipped), time=total_time,
                          id=str(run["id"]), package=classname)
    if run["startedAt"]:
        suite.set("timestamp", run["startedAt"])
    properties = ET.SubElement(suite, "properties")
    for name, value in (("agent", report["agent"]), ("run", run["id"]), ("trigger", run["trigger"]),
                        ("phase", run["phase"]), ("score", run["score"]), ("passed", run["passed"]),
                        ("passingScore", report["score"]["passingScore"]),
                        ("failOnVulnerableWeight", report["score"]["failOnVulnerableWeight"])):
        if value is not None:
            ET.SubElement(properties, "property", name=name, value=str(value).lower() if isinstance(value, bool) else str(value))
    suite.extend(case for case, _ in cases)
    out = ET.SubElement(suite, "system-out")
    out.text = "\n".join(line for line in (report["score"]["formula"], run["message"] or "",
                                           "spec changed since this run" if report["specChanged"] else "") if line)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# ------------------------------------------------------------------ one entry point


def render(check: dict[str, Any], fmt: Format, run_id: int | None = None, *, degraded_as_failure: bool = False) -> str:
    """The report of one run in `fmt`; NoRun when the check has no such run."""
    report = build(check, run_id)
    if fmt == "json":
        return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if fmt == "junit":
        return junit(report, degraded_as_failure=degraded_as_failure)
    return markdown(report)
