"""The UI's HTML building blocks: everything escaped, badges and charts as the pages need them."""

from __future__ import annotations

import re

from agentops_ui.agent_summaries import ActiveFaultView, HistoryPoint
from agentops_ui.markup import Markup, el, escape, join
from agentops_ui.widgets import active_faults, css_token, labels_list, phase_badge, sparkline, time_ago, time_left

HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def test_text_and_attribute_values_are_escaped() -> None:
    html = el("p", HOSTILE, title=HOSTILE, data_agent=HOSTILE)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # Quotes are escaped too, so a value cannot close its attribute.
    assert 'title="&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;"' in html
    assert 'data-agent="' in html


def test_markup_passes_through_once_and_is_never_escaped_twice() -> None:
    inner = el("b", "a & b")
    assert el("p", inner) == "<p><b>a &amp; b</b></p>"
    assert escape(escape("<")) == "&lt;"
    assert isinstance(join(["<", inner], sep=", "), Markup)
    assert join(["<", inner], sep=", ") == "&lt;, <b>a &amp; b</b>"


def test_children_nest_and_none_or_false_vanish() -> None:
    assert el("ul", [el("li", n) for n in (1, 2.5)], None) == "<ul><li>1</li><li>2.5</li></ul>"
    assert el("script", src="/x.js", defer=True, hidden=False, title=None) == '<script src="/x.js" defer></script>'
    assert el("meta", charset="utf-8") == '<meta charset="utf-8">'
    assert el("td", colspan=5, class_="a") == '<td colspan="5" class="a"></td>'


def test_phase_badge_spells_the_phase_and_carries_its_class() -> None:
    for phase in ("Healthy", "Degraded", "Unhealthy", "Unknown"):
        assert phase_badge(phase) == f'<span class="phase-badge phase-{phase}">{phase}</span>'
    odd = phase_badge('Bad" onmouseover="x')
    assert 'class="phase-badge phase-Badonmouseoverx"' in odd and "&quot;" in odd
    assert css_token("<>") == "Unknown"


def test_active_faults_list_the_name_and_type_exactly() -> None:
    faults = [ActiveFaultView(name="slow", type="Latency", expiresAt="2030-01-01T00:00:00Z", secondsLeft=30.0, state="applied"),
              ActiveFaultView(name="<b>x</b>", type="Error", expiresAt=None, secondsLeft=None, state="pending")]
    html = active_faults(faults)
    assert html.startswith('<ul class="faults">')
    assert re.search(r'<li class="fault applied" data-fault="slow" title="[^"]*">slow \(Latency\)</li>', html)
    assert 'data-fault="&lt;b&gt;x&lt;/b&gt;"' in html and "&lt;b&gt;x&lt;/b&gt; (Error)</li>" in html
    assert "No active faults" in active_faults([])


def test_labels_and_annotations_render_as_text() -> None:
    html = labels_list({"team": HOSTILE})
    assert "<script>" not in html and "team=&lt;script&gt;" in html
    assert labels_list({}) == ""


def test_relative_times_carry_their_age_for_the_page_script() -> None:
    ago = time_ago("2024-01-01T00:00:00Z", 75.2)
    assert ago == '<time class="ago" datetime="2024-01-01T00:00:00Z" title="2024-01-01T00:00:00Z" data-ago="75.2">1m 15s ago</time>'
    assert "never" in time_ago(None, None)
    left = time_left("2024-01-01T00:05:00Z", 299.0)
    assert ">4m 59s left</time>" in left and 'data-left="299.0"' in left
    assert "—" in time_left(None, None)


def _points(*values: float) -> list[HistoryPoint]:
    return [HistoryPoint(time=f"2024-01-01T00:00:{i:02d}Z", latencyP95Ms=v) for i, v in enumerate(values)]


def test_sparkline_draws_the_samples_inside_its_box() -> None:
    svg = sparkline(_points(20, 250, 60))
    assert svg.startswith('<svg class="latency-chart"')
    points = re.search(r'<polyline points="([^"]+)"', svg)
    assert points is not None
    coords = [tuple(map(float, p.split(","))) for p in points.group(1).split()]
    assert len(coords) == 3
    assert all(0 <= x <= 120 and 0 <= y <= 32 for x, y in coords)
    assert coords[1][1] < coords[2][1] < coords[0][1]  # higher latency is drawn higher (smaller y)
    assert "20 ms to 250 ms, now 60 ms" in svg  # the same facts for screen readers


def test_sparkline_without_or_with_one_sample() -> None:
    assert 'class="chart-empty"' in sparkline([]) and "no latency samples yet" in sparkline([])
    one = sparkline(_points(1500))
    assert 'points="0.0,3.0 120.0,3.0"' in one and "1.50 s" in one  # a flat line from the left edge to the sample
