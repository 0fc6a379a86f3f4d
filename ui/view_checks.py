"""`/checks` (every ResilienceCheck) and `/checks/{namespace}/{name}` (one check, one run).

A check's page shows one run — the latest, or `?run=ID` for an older one still kept in
status.runs — as the operator recorded it: the header (agent, phase, score, Passed,
trigger, times, schedule), the baseline numbers, a table of the experiments with each
measurement next to the expectation it was judged against, and the run's chart.

When the cluster does not serve ResilienceChecks (the CRD is not installed), these pages
say so; the rest of the UI is unaffected.
"""

from __future__ import annotations

from aiohttp import web

from agentops.api_types import Measurement
from agentops_ui import check_chart
from agentops_ui.check_summaries import (
    CheckDetail, CheckSummary, ExperimentRow, RunLink, RunNotKept, RunView, check_detail, checks_absent, checks_overview,
)
from agentops_ui.context import context
from agentops_ui.layout import respond
from agentops_ui.markup import Child, Markup, el
from agentops_ui.store import Store
from agentops_ui.time_text import format_span
from agentops_ui.widgets import (
    DASH, agent_url, check_url, conditions_table, css_token, definition_list, latency, percent, sources_banner, time_ago,
    time_left, timestamp,
)

COLUMNS = ("Name", "Namespace", "Agent", "Phase", "Progress", "Score", "Passed", "Last run")
EXPERIMENT_COLUMNS = ("Experiment", "Fault", "Weight", "Verdict", "Detection", "Recovery", "Error rate", "p95 latency",
                      "Restarts", "Incident", "Findings")


# ------------------------------------------------------------------ small pieces


def check_phase_badge(phase: str) -> Markup:
    return el("span", phase, class_=f"check-phase check-phase-{css_token(phase)}")


def verdict_badge(verdict: str | None) -> Markup:
    # Spelled out, never colour alone; "pending" until the operator has judged it.
    text = verdict or "pending"
    return el("span", text, class_=f"verdict verdict-{css_token(verdict or 'Pending')}")


def passed_badge(passed: bool | None) -> Markup:
    if passed is None:
        return el("span", DASH, class_="passed passed-none", title="no run has completed yet")
    return el("span", "Passed" if passed else "Not passed", class_=f"passed passed-{'yes' if passed else 'no'}")


def score_text(score: int | None) -> str:
    return DASH if score is None else str(score)


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    return f"{seconds:.1f} s" if seconds < 60 else format_span(seconds)


def _vs(measured: str, limit: str | None, word: str) -> Markup:
    """A measurement and, under it, what it was judged against."""
    return Markup(el("span", measured, class_="measured")
                  + (el("span", f"{word} {limit}", class_="limit") if limit is not None else Markup("")))


def not_served(reason: str) -> Markup:
    return el("div", el("p", "ResilienceChecks are not available: this cluster's API server does not serve them "
                             "(install the CRD crds/resiliencecheck.yaml). The rest of the UI works without them."),
              el("p", reason, class_="muted"), class_="banner not-served", role="status")


# ------------------------------------------------------------------ lists (the checks page, an agent's checks)


def check_row(check: CheckSummary, *, show_agent: bool = True) -> Markup:
    ns, name = check["namespace"], check["name"]
    return el(
        "tr",
        el("td", el("a", name, href=check_url(ns, name)), class_="check-name"),
        el("td", ns),
        el("td", el("a", check["agent"], href=agent_url(ns, check["agent"])), class_="check-agent") if show_agent else None,
        el("td", check_phase_badge(check["phase"])),
        el("td", check["progress"] or DASH, class_="check-progress"),
        el("td", score_text(check["score"]), class_="check-score"),
        el("td", passed_badge(check["passed"])),
        el("td", time_ago(check["lastRunAt"], check["secondsSinceLastRun"]) if check["lastRunAt"] else "no run yet",
           class_="check-last-run"),
        data_check=f"{ns}/{name}", data_phase=check["phase"],
    )


def checks_table(checks: list[CheckSummary], *, show_agent: bool = True, id_: str | None = "checks") -> Markup:
    columns = [c for c in COLUMNS if show_agent or c != "Agent"]
    head = el("thead", el("tr", [el("th", c, scope="col") for c in columns]))
    rows = ([check_row(c, show_agent=show_agent) for c in checks]
            or [el("tr", el("td", "No resilience checks", colspan=len(columns)), class_="empty")])
    return el("div", el("table", head, el("tbody", rows), id=id_, class_="checks-table"), class_="table-wrap")


def check_links(checks: list[CheckSummary]) -> Markup:
    """An agent's checks in one line (the overview's cards): name, score, Passed."""
    if not checks:
        return Markup("")
    items = [el("li", el("a", c["name"], href=check_url(c["namespace"], c["name"])), " ",
                el("span", f"score {score_text(c['score'])}", class_="muted"), " ", passed_badge(c["passed"]),
                data_check=f"{c['namespace']}/{c['name']}")
             for c in checks]
    return el("div", el("span", "Resilience checks", class_="muted"), el("ul", items, class_="check-links"),
              class_="card-checks")


def render_list(checks: list[CheckSummary], store: Store, scope: str, now: float) -> Markup:
    absent = checks_absent(store)
    if absent is not None:
        return Markup(sources_banner(store.sources.values(), now) + el("h1", "Resilience checks") + not_served(absent))
    passing = sum(1 for c in checks if c["passed"])
    heading = el("h1", "Resilience checks ", el("span", f"({len(checks)} in {scope}, {passing} passing)", class_="muted"))
    return Markup(sources_banner(store.sources.values(), now) + heading + checks_table(checks))


# ------------------------------------------------------------------ one check


def _run_links(detail: CheckDetail, shown: int | None) -> Markup:
    check = detail["check"]
    if not detail["runs"]:
        return Markup("")

    def link(r: RunLink, latest: bool) -> Markup:
        text = f"#{r['id']}{' (latest)' if latest else ''} · {r['phase'] or DASH} · score {score_text(r['score'])}"
        href = check_url(check["namespace"], check["name"], None if latest else r["id"])
        return el("li", el("a", text, href=href, aria_current="page" if r["id"] == shown else None),
                  " ", el("span", r["trigger"] or "", class_="muted"), data_run=r["id"])

    return el("nav", el("span", "Runs kept: ", class_="muted"),
              el("ol", [link(r, i == 0) for i, r in enumerate(detail["runs"])], class_="run-links"),
              aria_label="Runs", class_="runs")


def _header(detail: CheckDetail, run: RunView | None) -> Markup:
    check = detail["check"]
    ns, name = check["namespace"], check["name"]
    heading = el("h1", name, " ", check_phase_badge(check["phase"]), " ", el("span", f"namespace {ns}", class_="muted"),
                 class_="check-title", data_check=f"{ns}/{name}", data_phase=check["phase"])
    schedule = check["schedule"] or "none (runs when created and when asked)"
    if check["suspend"]:
        schedule += " — suspended"
    passing = detail["passingScore"]
    pairs: list[tuple[str, Child]] = [
        ("agent", el("a", check["agent"], href=agent_url(ns, check["agent"]), class_="check-agent")),
        ("phase", check_phase_badge(check["phase"])),
        ("progress", check["progress"] or DASH),
        ("score", el("span", score_text(run["score"] if run else None), class_="run-score",
                     title=None if passing is None else f"passing score {passing}")),
        ("passed", el("span", passed_badge(run["passed"] if run else None), class_="run-passed")),
        ("run", DASH if run is None else f"#{run['id']}, {run['phase'] or DASH}"),
        ("trigger", (run["trigger"] if run else None) or DASH),
        ("started", timestamp(run["startedAt"] if run else None)),
        ("finished", timestamp(run["finishedAt"] if run else None)),
        ("schedule", schedule),
        ("next run", time_left(check["nextRunAt"], check["secondsToNextRun"]) if check["nextRunAt"] else DASH),
        ("verdicts", check["summary"] or DASH),
    ]
    message = (run["message"] if run else None) or check["message"]
    notes = []
    if message:
        notes.append(el("p", message, class_="run-message"))
    if run is not None and run["specChanged"]:
        notes.append(el("p", f"The spec has changed since this run (the run followed generation {run['generation']}, "
                             f"the check is at {detail['generation']}): the expectations below are the current spec's.",
                        class_="banner spec-changed", role="note"))
    return Markup(heading + el("section", definition_list(pairs, class_="metrics check-metrics"), notes, id="run-summary"))


def _baseline(baseline: Measurement | None) -> Markup:
    if not baseline:
        return el("section", el("h2", "Baseline"), el("p", "No baseline measured yet.", class_="muted"), id="baseline")
    pairs: list[tuple[str, Child]] = [
        ("window", seconds_text(baseline.get("seconds"))),
        ("requests", baseline.get("requests", 0)),
        ("error rate", percent(baseline.get("errorRate"))),
        ("p95 latency", latency(baseline.get("latencyP95Ms"))),
    ]
    if "modelCalls" in baseline:
        pairs.append(("model calls", f"{baseline.get('modelCalls', 0)} ({baseline.get('modelErrors', 0)} failed)"))
    if "timeToFirstTokenP95Ms" in baseline:
        pairs.append(("time to first token p95", latency(baseline.get("timeToFirstTokenP95Ms"))))
    if "tokensPerMinute" in baseline:
        pairs.append(("tokens / min", f"{baseline.get('tokensPerMinute', 0):,.0f}"))
    return el("section", el("h2", "Baseline ", el("span", "(steady state before the first experiment)", class_="muted")),
              definition_list(pairs, class_="metrics baseline-metrics"), id="baseline")


def _within(seconds: float | None) -> str | None:
    return None if seconds is None else f"≤ {seconds_text(seconds)}"


def experiment_row(e: ExperimentRow, namespace: str, agent: str) -> Markup:
    during = e["during"] or Measurement()
    recovery = _vs(seconds_text(e["recoverySeconds"]), _within(e["recoveredWithinSeconds"]), "expected")
    if e["recoveryDeadlineSeconds"] is not None:
        recovery = Markup(recovery + el("span", f"deadline {seconds_text(e['recoveryDeadlineSeconds'])} after the fault",
                                        class_="limit"))
    restarts = DASH if e["restarts"] is None else str(e["restarts"])
    incident: Child = DASH
    if e["incident"]:
        incident = el("a", e["incident"], href=agent_url(namespace, agent) + "#incidents", class_="incident-link",
                      title=e["incidentState"] or None)
        if e["incidentState"]:
            incident = Markup(incident + el("span", e["incidentState"], class_="limit"))
    findings = list(e["findings"])
    if e["faultMessage"] and e["faultPhase"] != "Expired":  # why it ended early (a stop condition, a halt)
        findings.append(f"Fault: {e['faultMessage']}")
    state = "" if e["verdict"] else (e["state"] or "")
    return el(
        "tr",
        el("th", e["name"], scope="row", class_="experiment-name"),
        el("td", e["faultType"], el("span", e["fault"] or "", class_="limit") if e["fault"] else None, class_="fault-type"),
        el("td", DASH if e["weight"] is None else e["weight"], class_="weight"),
        el("td", verdict_badge(e["verdict"]), el("span", state, class_="limit") if state else None, class_="verdict-cell"),
        el("td", _vs(seconds_text(e["detectionSeconds"]), _within(e["detectedWithinSeconds"]), "expected"), class_="detection"),
        el("td", recovery, class_="recovery"),
        el("td", _vs(percent(during.get("errorRate")), None if e["maxErrorRate"] is None else percent(e["maxErrorRate"]),
                     "budget"), class_="error-rate"),
        el("td", _vs(latency(during.get("latencyP95Ms")),
                     None if e["maxLatencyP95Ms"] is None else f"≤ {latency(e['maxLatencyP95Ms'])}", "expected"),
           class_="latency"),
        el("td", restarts, el("span", "escalated", class_="limit escalated") if e["escalated"] else None, class_="restarts"),
        el("td", incident, class_="incident"),
        el("td", el("ul", [el("li", f) for f in findings], class_="findings") if findings else DASH, class_="findings-cell"),
        data_experiment=e["name"], data_verdict=e["verdict"] or "", class_=None if e["inSpec"] else "not-in-spec",
    )


def experiments_table(run: RunView, namespace: str, agent: str) -> Markup:
    head = el("thead", el("tr", [el("th", c, scope="col") for c in EXPERIMENT_COLUMNS]))
    rows = ([experiment_row(e, namespace, agent) for e in run["experiments"]]
            or [el("tr", el("td", "No experiment has started yet", colspan=len(EXPERIMENT_COLUMNS)), class_="empty")])
    return el("div", el("table", head, el("tbody", rows), id="experiments"), class_="table-wrap")


def render_detail(detail: CheckDetail, store: Store, now: float) -> Markup:
    check, run = detail["check"], detail["run"]
    parts = [sources_banner(store.sources.values(), now), _header(detail, run),
             _run_links(detail, run["id"] if run else None)]
    if run is None:
        parts.append(el("p", "No run yet: the operator starts one when the check is created (and its agent exists), "
                             "when asked, or on the schedule.", class_="muted no-run"))
    else:
        parts += [
            _baseline(run["baseline"]),
            el("section", el("h2", "Experiments"), experiments_table(run, check["namespace"], check["agent"]),
               id="experiments-section"),
            el("section", el("h2", "Through the run"), check_chart.chart(run["series"], run["bands"]), id="chart"),
        ]
    parts.append(el("section", el("h2", "Conditions"), conditions_table(check["conditions"], id_="check-conditions"),
                    id="conditions-section"))
    return Markup("".join(parts))


def not_found(namespace: str, name: str, reason: str | None = None) -> Markup:
    return el("div", el("h1", "Resilience check not found"),
              el("p", reason or f"There is no ResilienceCheck {name} in namespace {namespace} "
                                "(or it is outside the namespaces this UI shows)."),
              el("p", el("a", "All resilience checks", href="/checks")), class_="not-found")


# ------------------------------------------------------------------ handlers


async def checks(request: web.Request) -> web.Response:
    ctx = context(request)
    now = ctx.clock()
    return respond(request, "Resilience checks", render_list(checks_overview(ctx.store, now), ctx.store, ctx.scope_text, now),
                   nav="checks")


def requested_run(request: web.Request) -> int | None:
    """`?run=ID`, or None for the latest; a value that is not a run number is a 400."""
    value = request.query.get("run")
    if value is None or value == "":
        return None
    if not value.isdigit():
        # A fixed reason: the value itself never goes into the status line.
        raise web.HTTPBadRequest(reason="?run= takes a run number (1, 2, ...)")
    return int(value)


async def check(request: web.Request) -> web.Response:
    ctx = context(request)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    now = ctx.clock()
    absent = checks_absent(ctx.store)
    if absent is not None:
        return respond(request, "Resilience checks not served", Markup(el("h1", "Resilience checks") + not_served(absent)),
                       nav="checks", status=404)
    try:
        detail = check_detail(ctx.store, namespace, name, now, requested_run(request))
    except RunNotKept as exc:
        return respond(request, "Run not kept", not_found(namespace, name, str(exc)), nav="checks", status=404)
    if detail is None:
        return respond(request, "Resilience check not found", not_found(namespace, name), nav="checks", status=404)
    return respond(request, f"{name} ({namespace})", render_detail(detail, ctx.store, now), nav="checks")
