"""The run report of a ResilienceCheck: the JSON document, Markdown and JUnit XML, from hand-built checks.

The JUnit output is validated against a JUnit schema (tests/fixtures/junit.xsd, the
format the Jenkins xUnit plugin's junit-10.xsd documents) with xmlschema, and a broken
document is shown to fail that validation, so the check can fail.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from agentops.check_report import NoRun, build, junit, markdown, render, select_run

SCHEMA = xmlschema.XMLSchema(Path(__file__).resolve().parents[1] / "fixtures" / "junit.xsd")


def experiment(name: str, weight: int, verdict: str | None, **fields: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"name": name, "faultType": "Latency", "weight": weight, "state": "Done" if verdict else "Pending",
                         "startedAt": "2025-01-01T12:00:10Z", "finishedAt": "2025-01-01T12:00:40Z", **fields}
    if verdict:
        e["verdict"] = verdict
    return e


CRASH = experiment("crash", 3, "Resilient", faultType="Crash", detectionSeconds=2.0, recoverySeconds=6.5, restarts=1,
                   incident="inc-7", incidentState="Healed",
                   during={"seconds": 20, "requests": 100, "errors": 12, "errorRate": 0.12, "latencyP95Ms": 40})
LATENCY = experiment("latency", 1, "Degraded", detectionSeconds=4.0, recoverySeconds=14.0, restarts=0,
                     findings=["p95 latency 412ms during the fault is above 250ms"],
                     during={"seconds": 12, "requests": 50, "errors": 0, "errorRate": 0.0, "latencyP95Ms": 412})
RATE_LIMIT = experiment("rate-limit", 2, "Vulnerable", faultType="ModelRateLimit", escalated=True,
                        findings=["healing escalated (Stalled): restart budget spent or a restart not verified",
                                  "error budget spent: 30/60 requests failed during the fault (0.500 > 0.05)"],
                        during={"requests": 60, "errors": 30, "errorRate": 0.5})
SPEC_EXPERIMENTS = [
    {"name": "crash", "weight": 3, "fault": {"type": "Crash", "duration": "20s"},
     "expect": {"detectedWithin": "10s", "recoveredWithin": "25s", "maxErrorRate": 0.9, "recoveryDeadline": "40s"}},
    {"name": "latency", "weight": 1, "fault": {"type": "Latency", "latency": {"delayMs": 400}, "duration": "12s"},
     "expect": {"detectedWithin": "10s", "maxLatencyP95Ms": 250, "maxErrorRate": 0.05}},
    {"name": "rate-limit", "weight": 2, "fault": {"type": "ModelRateLimit", "model": {}, "duration": "20s"},
     "expect": {"maxErrorRate": 0.05}},
]


def check(*, experiments: list[dict[str, Any]] | None = None, generation: int = 1, **run: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": 2, "trigger": "Requested", "phase": "Completed", "generation": 1,
                            "startedAt": "2025-01-01T12:00:00Z", "finishedAt": "2025-01-01T12:03:12Z",
                            "score": 58, "passed": False,
                            "baseline": {"seconds": 30, "requests": 120, "errors": 0, "errorRate": 0.0, "latencyP95Ms": 45},
                            "experiments": copy.deepcopy(experiments if experiments is not None else [CRASH, LATENCY, RATE_LIMIT])}
    body.update(run)
    older = {"id": 1, "trigger": "Created", "phase": "Completed", "score": 100, "passed": True,
             "experiments": [experiment("crash", 3, "Resilient")]}
    return {"apiVersion": "agentops.dev/v1alpha1", "kind": "ResilienceCheck",
            "metadata": {"name": "suite", "namespace": "shop", "generation": generation},
            "spec": {"agent": "chat", "experiments": SPEC_EXPERIMENTS, "passingScore": 80, "failOnVulnerableWeight": 100},
            "status": {"phase": body["phase"], "runs": [body, older]}}


def parse(xml: str) -> ET.Element:
    return ET.fromstring(xml.encode())


# ------------------------------------------------------------------ choosing the run


def test_the_newest_run_is_reported_unless_one_is_named() -> None:
    c = check()
    assert select_run(c)["id"] == 2 and select_run(c, 1)["id"] == 1


def test_a_missing_run_says_which_runs_are_kept() -> None:
    with pytest.raises(NoRun, match="no run 9 .*keeps runs 2, 1"):
        select_run(check(), 9)
    with pytest.raises(NoRun, match="has no run yet"):
        select_run({"metadata": {"name": "new"}, "spec": {}, "status": {}})


# ------------------------------------------------------------------ the JSON document


def test_the_json_document_holds_the_run_numbers_verdicts_and_expectations() -> None:
    doc = json.loads(render(check(), "json"))
    assert doc["reportVersion"] == 1 and (doc["check"], doc["namespace"], doc["agent"]) == ("suite", "shop", "chat")
    assert doc["run"] == {"id": 2, "trigger": "Requested", "phase": "Completed", "generation": 1,
                          "startedAt": "2025-01-01T12:00:00Z", "finishedAt": "2025-01-01T12:03:12Z",
                          "durationSeconds": 192.0, "score": 58, "passed": False, "message": None}
    crash, latency, rate_limit = doc["experiments"]
    assert crash["verdict"] == "Resilient" and crash["expect"]["recoveredWithin"] == "25s"
    assert crash["durationSeconds"] == 30.0 and crash["incident"] == "inc-7" and crash["during"]["errorRate"] == 0.12
    assert latency["findings"] == ["p95 latency 412ms during the fault is above 250ms"]
    assert rate_limit["escalated"] is True and rate_limit["restarts"] is None
    assert doc["score"]["terms"] == [{"name": "crash", "weight": 3, "value": 1.0},
                                     {"name": "latency", "weight": 1, "value": 0.5},
                                     {"name": "rate-limit", "weight": 2, "value": 0.0}]
    assert doc["specChanged"] is False


def test_every_key_is_present_even_when_nothing_was_measured() -> None:
    bare = build(check(experiments=[{"name": "crash"}], score=None, baseline=None))
    (e,) = bare["experiments"]
    assert e["detectionSeconds"] is None and e["verdict"] is None and e["during"] == {} and e["findings"] == []
    assert set(e) == set(build(check())["experiments"][0])


# ------------------------------------------------------------------ Markdown


def test_markdown_has_the_title_the_table_the_findings_and_the_arithmetic() -> None:
    text = markdown(build(check()))
    assert text.startswith("# ResilienceCheck `suite` on Agent `chat` (namespace `shop`)\n")
    expected = [
        "Run 2 (Requested): **Completed**, started 2025-01-01T12:00:00Z, finished 2025-01-01T12:03:12Z (3m12s).",
        "**Score 58 / 100 — did not pass (passing score 80;",
        "30.0s window, 120 requests, 0 errors (error rate 0.000), p95 latency 45 ms.",
        "| crash | Crash | 3 | Resilient | 2.0s (≤ 10s) | 6.5s (≤ 25s) | 0.120 (≤ 0.9) | 40 ms | 1 | inc-7 (Healed) |",
        "| latency | Latency | 1 | Degraded | 4.0s (≤ 10s) | 14.0s | 0.000 (≤ 0.05) | 412 ms (≤ 250 ms) | 0 | – |",
        "### rate-limit — Vulnerable\n\n- healing escalated",
        "### crash — Resilient\n\nEvery expectation met.",
        "`score = round(100 × (3×1 + 1×0.5 + 2×0) / 6) = 58`",
    ]
    assert [fragment for fragment in expected if fragment not in text] == []
    assert "spec changed" not in text


def test_aborted_experiments_are_left_out_of_the_formula_and_named() -> None:
    aborted = experiment("rate-limit", 2, "Aborted", findings=["the run was halted"])
    text = markdown(build(check(experiments=[CRASH, LATENCY, aborted], score=88)))
    assert "`score = round(100 × (3×1 + 1×0.5) / 4) = 88`" in text
    assert "Aborted experiments are left out of the score: rate-limit." in text


def test_a_run_with_nothing_judged_has_no_score() -> None:
    halted = [experiment(n, w, "Aborted", findings=["halted"]) for n, w in (("crash", 3), ("latency", 1))]
    c = check(experiments=halted, phase="Aborted", message="the halt switch is on", score=None, passed=None)
    text = markdown(build(c))
    assert "**Aborted**" in text and "> the halt switch is on" in text
    assert "Score – / 100 — not judged" in text and "`no experiment judged: no score`" in text


def test_a_run_of_an_older_spec_says_the_spec_changed() -> None:
    report = build(check(generation=3))
    assert report["specChanged"] is True
    assert "spec changed since this run: the run followed generation 1, the check is at generation 3" in markdown(report)


def test_an_experiment_no_longer_in_the_spec_has_unknown_expectations() -> None:
    gone = experiment("old-one", 1, "Resilient")
    report = build(check(experiments=[gone]))
    assert report["experiments"][0]["expect"] is None
    assert "no longer in the spec" in markdown(report)


def test_table_cells_cannot_break_the_table() -> None:
    odd = experiment("crash", 3, "Resilient", incident="a|b\nc", incidentState="Open")
    row = next(line for line in markdown(build(check(experiments=[odd]))).splitlines() if line.startswith("| crash"))
    assert "a\\|b c (Open)" in row and row.count(" | ") == 9


# ------------------------------------------------------------------ JUnit XML


def test_junit_is_valid_and_maps_verdicts_to_outcomes() -> None:
    xml = render(check(), "junit")
    SCHEMA.validate(xml)
    root = parse(xml)
    (suite,) = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("3", "1", "0", "0")
    assert suite.get("time") == "192.000" and suite.get("timestamp") == "2025-01-01T12:00:00Z"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert {c.get("classname") for c in cases.values()} == {"agentops.shop.suite"}
    assert cases["crash"].get("time") == "30.000" and cases["crash"].find("failure") is None
    failure = cases["rate-limit"].find("failure")
    assert failure is not None and failure.get("type") == "Vulnerable"
    assert failure.get("message", "").startswith("Vulnerable: healing escalated") and "30/60" in (failure.text or "")
    degraded_out = cases["latency"].find("system-out")
    assert cases["latency"].find("failure") is None and degraded_out is not None
    assert "p95 latency 412ms" in (degraded_out.text or "")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["score"] == "58" and props["passed"] == "false" and props["agent"] == "chat"


def test_degraded_can_count_as_a_failure() -> None:
    xml = render(check(), "junit", degraded_as_failure=True)
    SCHEMA.validate(xml)
    suite = parse(xml).find("testsuite")
    assert suite is not None and suite.get("failures") == "2"
    latency = next(c for c in suite.iter("testcase") if c.get("name") == "latency")
    assert latency.find("failure") is not None and latency.find("failure").get("type") == "Degraded"  # type: ignore[union-attr]


def test_aborted_and_unjudged_experiments_are_skipped_and_an_aborted_run_is_an_error() -> None:
    aborted = experiment("latency", 1, "Aborted", findings=["the operator restarted during this experiment"])
    pending = experiment("rate-limit", 2, None)
    xml = junit(build(check(experiments=[CRASH, aborted, pending], phase="Aborted", message="halted", score=100)))
    SCHEMA.validate(xml)
    suite = parse(xml).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("3", "0", "1", "2")
    skips = {c.get("name"): c.find("skipped") for c in suite.iter("testcase")}
    assert skips["latency"] is not None and skips["latency"].get("message") == "Aborted: the operator restarted during this experiment"
    assert skips["rate-limit"] is not None and skips["rate-limit"].get("message") == "Pending: not judged yet"


def test_junit_escapes_what_it_quotes() -> None:
    nasty = experiment("latency", 1, "Vulnerable", findings=['a stop condition ended the fault: p95 > 5000 & "rising" <x>'])
    xml = render(check(experiments=[nasty]), "junit")
    SCHEMA.validate(xml)
    failure = parse(xml).find("testsuite/testcase/failure")
    assert failure is not None and failure.text == 'a stop condition ended the fault: p95 > 5000 & "rising" <x>'


def test_the_schema_rejects_a_broken_report() -> None:
    """The validation can fail: a testcase without a name, and a suite without its counts."""
    root = parse(render(check(), "junit"))
    suite = root.find("testsuite")
    assert suite is not None
    del suite.find("testcase").attrib["name"]  # type: ignore[union-attr]
    with pytest.raises(xmlschema.XMLSchemaValidationError, match="name"):
        SCHEMA.validate(ET.tostring(root, encoding="unicode"))
    root = parse(render(check(), "junit"))
    del root.find("testsuite").attrib["failures"]  # type: ignore[union-attr]
    assert not SCHEMA.is_valid(ET.tostring(root, encoding="unicode"))
    root = parse(render(check(), "junit"))
    case = root.find("testsuite/testcase")
    assert case is not None
    ET.SubElement(case, "verdict")
    assert not SCHEMA.is_valid(ET.tostring(root, encoding="unicode"))
