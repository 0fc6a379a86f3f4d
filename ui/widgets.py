"""Small pieces of HTML the views share: badges, numbers, times, the latency sparkline.

Each returns `Markup` built with `markup.el`, so every value in them is escaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from agentops_ui.agent_summaries import ActiveFaultView, HistoryPoint
from agentops_ui.markup import Child, Markup, el
from agentops_ui.store import SourceState
from agentops_ui.time_text import format_ago, format_left, parse_time
from agentops_ui.typed_objects import ConditionView

DASH = "—"


def agent_url(namespace: str, name: str) -> str:
    return f"/agents/{quote(namespace, safe='')}/{quote(name, safe='')}"


def check_url(namespace: str, name: str, run: int | None = None) -> str:
    return f"/checks/{quote(namespace, safe='')}/{quote(name, safe='')}" + ("" if run is None else f"?run={run}")


def css_token(value: str) -> str:
    """A value safe inside a class name (phases are enums, but the page must not trust that)."""
    return re.sub(r"[^A-Za-z0-9-]", "", value) or "Unknown"


def phase_badge(phase: str) -> Markup:
    # The phase is spelled out, never shown by colour alone.
    return el("span", phase, class_=f"phase-badge phase-{css_token(phase)}")


def fault_phase_badge(phase: str) -> Markup:
    return el("span", phase, class_=f"fault-phase fault-phase-{css_token(phase)}")


def latency(ms: float | None) -> str:
    if ms is None:
        return DASH
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


def percent(fraction: float | None) -> str:
    return DASH if fraction is None else f"{fraction * 100:.1f} %"


def rate(per_second: float | None) -> str:
    return DASH if per_second is None else f"{per_second:.2f} req/s"


def time_ago(stamp: str | None, seconds: float | None) -> Markup:
    """A relative time that the page script keeps ticking (data-ago is the age when rendered)."""
    if stamp is None or seconds is None:
        return el("span", "never", class_="ago never")
    return el("time", format_ago(seconds), class_="ago", datetime=stamp, title=stamp, data_ago=f"{seconds:.1f}")


def time_left(stamp: str | None, seconds: float | None) -> Markup:
    if stamp is None or seconds is None:
        return el("span", DASH, class_="left")
    return el("time", format_left(seconds), class_="left", datetime=stamp, title=f"until {stamp}",
              data_left=f"{seconds:.1f}")


def timestamp(stamp: str | None) -> Markup:
    if stamp is None:
        return el("span", DASH)
    return el("time", stamp.replace("T", " ").replace("Z", " UTC"), datetime=stamp)


def labels_list(labels: Mapping[str, str], class_: str = "labels") -> Markup:
    if not labels:
        return Markup("")
    return el("ul", [el("li", f"{k}={v}", class_="label") for k, v in sorted(labels.items())], class_=class_)


def definition_list(pairs: Iterable[tuple[str, Child]], class_: str | None = None) -> Markup:
    return el("dl", [[el("dt", k), el("dd", v)] for k, v in pairs], class_=class_)


def value_text(value: Any) -> str:
    """Any JSON value as one line of text (escaped later like everything else)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def active_faults(faults: list[ActiveFaultView]) -> Markup:
    if not faults:
        return el("p", "No active faults", class_="no-faults")
    items = []
    for f in faults:
        title = {"applied": "enforced by the sidecar", "assigned": "assigned; not yet confirmed by the sidecar",
                 "pending": "applied; not yet processed by the operator"}.get(f["state"], f["state"])
        if f["expiresAt"]:
            title += f"; ends {f['expiresAt']}"
        # The text is exactly "NAME (TYPE)"; the state rides in the class and the tooltip.
        items.append(el("li", f"{f['name']} ({f['type']})", class_=f"fault {css_token(f['state'])}",
                        data_fault=f["name"], title=title))
    return el("ul", items, class_="faults")


def conditions_table(conds: list[ConditionView], id_: str = "conditions") -> Markup:
    head = el("thead", el("tr", [el("th", h, scope="col") for h in ("Type", "Status", "Reason", "Message", "Last transition")]))
    if not conds:
        body = el("tbody", el("tr", el("td", "No conditions reported yet", colspan=5)))
    else:
        body = el("tbody", [
            el("tr", el("td", c["type"]), el("td", c["status"], class_=f"cond-{css_token(c['status'])}"),
               el("td", c["reason"]), el("td", c["message"], class_="message"), el("td", timestamp(c["lastTransitionTime"])),
               data_condition=c["type"])
            for c in conds
        ])
    return el("div", el("table", head, body, id=id_), class_="table-wrap")


# The sparkline's drawing box, in SVG user units; CSS scales it to the card.
CHART_W, CHART_H, CHART_PAD = 120.0, 32.0, 3.0


def sparkline(points: list[HistoryPoint]) -> Markup:
    """p95 latency over the recent status updates, on a zero-based axis (so a jump looks like one)."""
    values = [p["latencyP95Ms"] for p in points]
    if values:
        label = f"p95 latency over the last {len(values)} status updates: {latency(min(values))} to {latency(max(values))}, now {latency(values[-1])}"
    else:
        label = "no latency samples yet"
    box = {"class_": "latency-chart", "viewBox": f"0 0 {CHART_W:g} {CHART_H:g}", "width": f"{CHART_W:g}",
           "height": f"{CHART_H:g}", "role": "img", "aria_label": label, "preserveAspectRatio": "none"}
    title = el("title", label)
    baseline = CHART_H - CHART_PAD
    if not values:
        return el("svg", title, el("line", x1=0, y1=f"{baseline:g}", x2=f"{CHART_W:g}", y2=f"{baseline:g}", class_="chart-empty"), **box)
    times = [parse_time(p["time"]) or 0.0 for p in points]
    span = times[-1] - times[0]
    top = max(values) or 1.0
    coords = []
    for i, (t, v) in enumerate(zip(times, values)):
        # By time when the samples span some; evenly otherwise (one sample, or equal stamps).
        x = (t - times[0]) / span * CHART_W if span > 0 else (i / (len(values) - 1) * CHART_W if len(values) > 1 else CHART_W)
        y = baseline - v / top * (CHART_H - 2 * CHART_PAD)
        coords.append((x, y))
    if len(coords) == 1:
        coords.insert(0, (0.0, coords[0][1]))
    line = el("polyline", points=" ".join(f"{x:.1f},{y:.1f}" for x, y in coords), class_="chart-line")
    # The latest sample as a zero-length line with round caps: unlike a circle it stays
    # round when CSS stretches the chart to the card's width (non-scaling stroke).
    end_x, end_y = f"{coords[-1][0]:.1f}", f"{coords[-1][1]:.1f}"
    dot = el("line", x1=end_x, y1=end_y, x2=end_x, y2=end_y, class_="chart-dot")
    return el("svg", title, line, dot, **box)


def chart_caption(points: list[HistoryPoint]) -> Markup:
    """The chart's scale in words, for everyone (the SVG's label is for screen readers)."""
    values = [p["latencyP95Ms"] for p in points]
    if not values:
        return el("p", "p95 latency: no samples yet", class_="chart-caption")
    return el("p", f"p95 over the last {len(values)} update(s): {latency(min(values))} – {latency(max(values))}",
              class_="chart-caption")


def sources_banner(sources: Iterable[SourceState], now: float) -> Markup:
    """Why the page may be incomplete or stale: lists not done yet, watches failing."""
    notes = []
    for s in sorted(sources, key=lambda s: (s.kind, s.namespace or "")):
        scope = f"{s.kind}s in {s.namespace or 'all namespaces'}"
        if s.error is not None:
            notes.append(el("li", f"{scope}: {s.error} (since {format_ago(now - s.since)}; "
                                  f"{'showing the last known state' if s.synced else 'nothing loaded yet'})"))
        elif not s.synced:
            notes.append(el("li", f"{scope}: loading…"))
    if not notes:
        return Markup("")
    return el("div", el("ul", notes), class_="banner", role="status")
