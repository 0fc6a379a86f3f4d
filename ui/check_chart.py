"""A run's chart: the agent's p95 latency and error rate through the run, with each
experiment's fault window shaded and named — drawn on the server as inline SVG.

No charting library and no script: the page's Content Security Policy allows only this
origin's own script, and the chart must be there without JavaScript too. Only SVG
attributes are used for geometry; colours and fonts come from classes in the stylesheet
(the CSP's `style-src 'self'` refuses inline `style=` attributes).

Two panels share the time axis (seconds since the run started): latency on top, error
rate below, each on a zero-based scale of its own — one chart with two y axes invites
comparing heights that mean different things. A strip under them colours the agent's
phase per interval. A point without requests has no latency or error rate: the line
breaks there instead of drawing a zero that was never measured.

`geometry` is the pure part (numbers in, coordinates out), so tests check where points
and bands land without parsing SVG; `chart` renders that geometry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentops.api_types import SeriesPoint
from agentops_ui.check_summaries import Band
from agentops_ui.markup import Markup, el
from agentops_ui.time_text import format_span
from agentops_ui.widgets import css_token, latency, percent

# The drawing box in SVG user units; CSS scales the whole (text included) to the page.
WIDTH, HEIGHT = 760.0, 262.0
PLOT_LEFT, PLOT_RIGHT = 64.0, 748.0
LATENCY_TOP, LATENCY_BOTTOM = 26.0, 126.0
ERROR_TOP, ERROR_BOTTOM = 142.0, 212.0
PHASE_TOP, PHASE_BOTTOM = 218.0, 226.0
TICK_LABEL_Y = 244.0
# Error rates below this fill the panel as if they were this high: at a 0-100 % scale a
# 2 % error rate would be a flat line, at a 0-0.1 % scale noise would look like an outage.
MIN_ERROR_SCALE = 0.05
# Candidate spacings of the time axis' grid, in seconds; the first that gives at most
# MAX_TICKS intervals is used.
TICK_STEPS = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)
MAX_TICKS = 8

Point = tuple[float, float]


@dataclass(frozen=True)
class BandBox:
    name: str
    verdict: str | None
    x0: float
    x1: float
    open: bool  # the fault had not ended: the band runs to the last point


@dataclass(frozen=True)
class PhaseBox:
    phase: str
    x0: float
    x1: float


@dataclass(frozen=True)
class Geometry:
    seconds: float  # the time axis runs from 0 to this
    latency_max_ms: float
    error_max: float
    latency: list[list[Point]]  # one list per unbroken run of measured points
    errors: list[list[Point]]
    bands: list[BandBox]
    phases: list[PhaseBox]
    ticks: list[tuple[float, str]]  # x, label


def x_at(offset: float, seconds: float) -> float:
    return PLOT_LEFT + min(max(offset, 0.0), seconds) / seconds * (PLOT_RIGHT - PLOT_LEFT)


def _y_at(value: float, top: float, bottom: float, maximum: float) -> float:
    return bottom - min(max(value, 0.0), maximum) / maximum * (bottom - top)


def _segments(series: Sequence[SeriesPoint], mids: Sequence[float], value: Callable[[SeriesPoint], float | None],
              place: Callable[[float, float], Point]) -> list[list[Point]]:
    out: list[list[Point]] = []
    current: list[Point] = []
    for p, mid in zip(series, mids):
        v = value(p)
        if v is None:
            if current:
                out.append(current)
            current = []
        else:
            current.append(place(mid, v))
    if current:
        out.append(current)
    return out


def _ticks(seconds: float) -> list[tuple[float, str]]:
    step = next((s for s in TICK_STEPS if seconds / s <= MAX_TICKS), TICK_STEPS[-1])
    ticks = []
    t = 0.0
    while t <= seconds + 1e-9:
        ticks.append((x_at(t, seconds), format_span(t)))
        t += step
    return ticks


def _latency(p: SeriesPoint) -> float | None:
    v = p.get("latencyP95Ms")  # absent for an interval without requests
    return float(v) if v is not None else None


def _error_rate(p: SeriesPoint) -> float | None:
    v = p.get("errorRate")
    return float(v) if v is not None else None


def geometry(series: Sequence[SeriesPoint], bands: Sequence[Band]) -> Geometry | None:
    """Where everything goes; None when there is nothing to draw (no point yet)."""
    if not series:
        return None
    points = sorted(series, key=lambda p: p["offsetSeconds"])
    offsets = [p["offsetSeconds"] for p in points]
    # Each point stands for the interval up to the next; the last one is as long as the one before it.
    last_end = offsets[-1] + (offsets[-1] - offsets[-2] if len(offsets) > 1 else 0.0)
    band_ends = [b["end"] for b in bands if b["end"] is not None] + [b["start"] for b in bands]
    seconds = max([last_end, *band_ends, 1.0])
    latencies = [v for p in points if (v := _latency(p)) is not None]
    errors = [v for p in points if (v := _error_rate(p)) is not None]
    latency_max = max(latencies, default=0.0) or 1.0
    error_max = max(max(errors, default=0.0), MIN_ERROR_SCALE)

    def lat_place(offset: float, v: float) -> Point:
        return x_at(offset, seconds), _y_at(v, LATENCY_TOP, LATENCY_BOTTOM, latency_max)

    def err_place(offset: float, v: float) -> Point:
        return x_at(offset, seconds), _y_at(v, ERROR_TOP, ERROR_BOTTOM, error_max)

    boxes = [BandBox(name=b["name"], verdict=b["verdict"], x0=x_at(b["start"], seconds),
                     x1=x_at(offsets[-1] if b["end"] is None else b["end"], seconds), open=b["end"] is None)
             for b in bands]
    ends = offsets[1:] + [last_end]
    # A point sums up its interval: drawn at the interval's middle, a change shows where
    # it happened rather than up to one interval early.
    mids = [(start + end) / 2 for start, end in zip(offsets, ends)]
    phases = [PhaseBox(str(p["phase"]), x_at(p["offsetSeconds"], seconds), x_at(end, seconds))
              for p, end in zip(points, ends) if p.get("phase")]
    return Geometry(seconds=seconds, latency_max_ms=latency_max, error_max=error_max,
                    latency=_segments(points, mids, _latency, lat_place),
                    errors=_segments(points, mids, _error_rate, err_place),
                    bands=boxes, phases=phases, ticks=_ticks(seconds))


def _n(value: float) -> str:
    return f"{value:.1f}"


def _line(points: list[Point], class_: str) -> Markup:
    if len(points) == 1:
        # A lone measurement between gaps: a dot (a zero-length line with round caps).
        x, y = _n(points[0][0]), _n(points[0][1])
        return el("line", x1=x, y1=y, x2=x, y2=y, class_=f"{class_} run-chart-dot")
    return el("polyline", points=" ".join(f"{_n(x)},{_n(y)}" for x, y in points), class_=class_)


def _band(box: BandBox) -> Markup:
    state = "still running" if box.open else (box.verdict or "not judged yet")
    return el("g",
              el("rect", el("title", f"fault window of {box.name} ({state})"),
                 x=_n(box.x0), y=_n(LATENCY_TOP - 4), width=_n(max(box.x1 - box.x0, 1.0)),
                 height=_n(PHASE_BOTTOM - LATENCY_TOP + 4), class_="band-area"),
              el("text", box.name, x=_n(box.x0 + 2), y=_n(LATENCY_TOP - 8), class_="band-label"),
              class_=" ".join(c for c in ("fault-band", box.verdict and f"band-{css_token(box.verdict)}",
                                          box.open and "band-open") if c),
              data_experiment=box.name, data_x0=_n(box.x0), data_x1=_n(box.x1))


def _axes(g: Geometry) -> list[Markup]:
    parts: list[Markup] = []
    for top, bottom, title, high in ((LATENCY_TOP, LATENCY_BOTTOM, "p95", latency(g.latency_max_ms)),
                                     (ERROR_TOP, ERROR_BOTTOM, "errors", percent(g.error_max))):
        parts.append(el("rect", x=_n(PLOT_LEFT), y=_n(top), width=_n(PLOT_RIGHT - PLOT_LEFT), height=_n(bottom - top),
                        class_="panel"))
        parts.append(el("text", high, x=_n(PLOT_LEFT - 4), y=_n(top + 9), class_="axis-label"))
        parts.append(el("text", "0", x=_n(PLOT_LEFT - 4), y=_n(bottom), class_="axis-label"))
        parts.append(el("text", title, x=_n(PLOT_LEFT - 4), y=_n((top + bottom) / 2 + 4), class_="axis-label panel-title"))
    parts.append(el("text", "phase", x=_n(PLOT_LEFT - 4), y=_n(PHASE_BOTTOM), class_="axis-label"))
    for x, label in g.ticks:  # over the panels' fill
        parts.append(el("line", x1=_n(x), y1=_n(LATENCY_TOP), x2=_n(x), y2=_n(PHASE_BOTTOM), class_="grid"))
        parts.append(el("text", label, x=_n(x), y=_n(TICK_LABEL_Y), class_="tick-label"))
    return parts


def _description(g: Geometry, bands: Sequence[Band]) -> str:
    windows = "; ".join(f"{b['name']} {format_span(b['start'])}–{'now' if b['end'] is None else format_span(b['end'])}"
                        for b in bands) or "none yet"
    return (f"The agent through the run's first {format_span(g.seconds)}: p95 latency up to {latency(g.latency_max_ms)}, "
            f"error rate on a scale to {percent(g.error_max)}. Fault windows: {windows}.")


def chart(series: Sequence[SeriesPoint], bands: Sequence[Band]) -> Markup:
    """The run's chart, or a plain statement that there is nothing to draw yet."""
    g = geometry(series, bands)
    if g is None:
        return el("div", el("p", "No data yet: the operator adds a point to the run's series every few seconds "
                                 "once the run has started measuring.", class_="muted"),
                  class_="run-chart-empty", id="run-chart")
    label = _description(g, bands)
    svg = el("svg",
             el("title", label),
             _axes(g),
             [el("rect", el("title", p.phase), x=_n(p.x0), y=_n(PHASE_TOP), width=_n(max(p.x1 - p.x0, 0.5)),
                 height=_n(PHASE_BOTTOM - PHASE_TOP), class_=f"phase-cell phase-cell-{css_token(p.phase)}")
              for p in g.phases],
             [_band(b) for b in g.bands],
             [_line(s, "series-latency") for s in g.latency],
             [_line(s, "series-errors") for s in g.errors],
             viewBox=f"0 0 {WIDTH:g} {HEIGHT:g}", class_="run-chart", role="img", aria_label=label)
    legend = el("p",
                el("span", "p95 latency", class_="key key-latency"), " ",
                el("span", "error rate", class_="key key-errors"), " ",
                el("span", "fault window (named, coloured by verdict)", class_="key key-band"), " ",
                el("span", f"time since the run started (0 – {format_span(g.seconds)})", class_="muted"),
                class_="chart-legend")
    return el("figure", svg, el("figcaption", legend), id="run-chart")
