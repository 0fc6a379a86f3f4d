"""The stylesheet and the page script, served from memory at /static/… .

Kept as Python strings (not files) so they ship with the package without any
package-data configuration, and served from our own origin so the Content Security
Policy can forbid every inline script and style. URLs carry a content hash, so the
files can be cached for a long time and a new version is still picked up at once.

The script is progressive enhancement only: every page is complete as served. With
JavaScript it opens `EventSource('/live')`; on each `change` it waits ~200 ms for the
burst to settle, fetches the same URL with `X-Partial: 1` and swaps the server-rendered
(server-escaped) fragment into `<main id="content">`. Between fetches it keeps the
relative times ("12s ago", "4m left") ticking, using the age the server rendered plus
the time since — so a browser whose clock is off still shows the right ages.
"""

from __future__ import annotations

import hashlib

from aiohttp import web

STYLE_CSS = """\
:root { --fg: #1f2328; --muted: #59636e; --bg: #f6f8fa; --card: #ffffff; --line: #d1d9e0;
        --healthy: #1a7f37; --degraded: #9a6700; --amber: #e3a008; --unhealthy: #cf222e; --unknown: #6e7781; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.5rem; padding: .6rem 1rem; background: #24292f; color: #fff; }
header .brand { font-weight: 700; color: #fff; text-decoration: none; }
header nav a { color: #e6edf3; margin-right: 1rem; text-decoration: none; }
header nav a[aria-current="page"] { text-decoration: underline; font-weight: 600; }
#live-status { margin-left: auto; font-size: .8rem; color: #c9d1d9; }
main { padding: 1rem; max-width: 90rem; margin: 0 auto; }
h1 { font-size: 1.4rem; margin: .2rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
a { color: #0969da; }
.banner { background: #fff8c5; border: 1px solid #d4a72c; padding: .5rem .8rem; border-radius: 6px; margin-bottom: 1rem; }
.muted, .namespace { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(19rem, 1fr)); gap: 1rem; }
.agent-card { background: var(--card); border: 1px solid var(--line); border-left: 6px solid var(--unknown); border-radius: 8px; padding: .8rem 1rem; min-width: 0; }
.agent-card[data-phase="Healthy"] { border-left-color: var(--healthy); }
.agent-card[data-phase="Degraded"] { border-left-color: var(--amber); }
.agent-card[data-phase="Unhealthy"] { border-left-color: var(--unhealthy); }
.agent-card .card-head { display: flex; justify-content: space-between; align-items: baseline; gap: .5rem; }
.agent-card h2 { margin: 0; font-size: 1.1rem; overflow-wrap: anywhere; }
.agent-card .namespace { margin: 0 0 .5rem; font-size: .85rem; overflow-wrap: anywhere; }
.phase-badge { display: inline-block; padding: .1rem .55rem; border-radius: 999px; font-size: .8rem; font-weight: 700; color: #fff; background: var(--unknown); white-space: nowrap; }
.phase-badge::before { content: "\\25CF\\00A0"; }
.phase-Healthy { background: var(--healthy); }
.phase-Degraded { background: var(--amber); color: #1f2328; }
.phase-Unhealthy { background: var(--unhealthy); }
.phase-Unknown { background: var(--unknown); }
dl.metrics { display: grid; grid-template-columns: auto 1fr; gap: .15rem .8rem; margin: .5rem 0; font-size: .9rem; }
dl.metrics dt { color: var(--muted); }
dl.metrics dd { margin: 0; font-variant-numeric: tabular-nums; }
.latency-chart { width: 100%; height: 2.5rem; display: block; margin: .4rem 0; background: #f6f8fa; border-radius: 4px; }
.chart-line { fill: none; stroke: #0969da; stroke-width: 1.5; vector-effect: non-scaling-stroke; }
.chart-dot { stroke: #0969da; stroke-width: 6; stroke-linecap: round; vector-effect: non-scaling-stroke; }
.chart-caption { margin: 0 0 .4rem; font-size: .75rem; color: var(--muted); }
#summary .latency-chart { max-width: 32rem; }
.chart-empty { stroke: var(--line); stroke-dasharray: 3 3; vector-effect: non-scaling-stroke; }
ul.faults, ul.labels, ul.timeline, ol.timeline { padding-left: 1.1rem; margin: .3rem 0; }
li.fault { color: var(--unhealthy); overflow-wrap: anywhere; }
li.fault.pending, li.fault.assigned { font-style: italic; }
ul.labels { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .3rem; }
li.label { background: #ddf4ff; border-radius: 4px; padding: 0 .35rem; font-size: .78rem; overflow-wrap: anywhere; }
.no-faults { color: var(--muted); margin: .3rem 0; font-size: .9rem; }
details.annotations { font-size: .85rem; overflow-wrap: anywhere; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; background: var(--card); font-size: .9rem; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eef1f4; }
td.message { overflow-wrap: anywhere; min-width: 12rem; }
.fault-phase { font-weight: 600; }
.fault-phase-Active { color: var(--unhealthy); }
.fault-phase-Pending { color: var(--degraded); }
.fault-phase-Expired, .fault-phase-Halted, .fault-phase-Aborted { color: var(--muted); }
.fault-phase-Failed { color: var(--unhealthy); text-decoration: line-through; }
.event-Warning td:first-child { color: var(--unhealthy); font-weight: 600; }
ol.timeline li { margin: .3rem 0; overflow-wrap: anywhere; }
.stage { display: inline-block; min-width: 5.5rem; font-weight: 700; font-size: .8rem; text-transform: uppercase; }
.stage-fault { color: var(--unhealthy); } .stage-detected { color: var(--degraded); } .stage-action { color: #8250df; }
.stage-verified { color: var(--healthy); } .stage-escalated { color: var(--unhealthy); }
.incident dl { display: grid; grid-template-columns: auto 1fr; gap: .1rem .8rem; margin: .2rem 0 .8rem; }
.incident dd { margin: 0; overflow-wrap: anywhere; }
.check-phase, .verdict, .passed { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .8rem; font-weight: 700; white-space: nowrap; background: #eef1f4; color: var(--fg); }
.check-phase-Running { background: #ddf4ff; color: #0550ae; }
.check-phase-Completed { background: #dafbe1; color: var(--healthy); }
.check-phase-Aborted, .check-phase-Failed { background: #ffebe9; color: var(--unhealthy); }
.verdict-Resilient, .passed-yes { background: var(--healthy); color: #fff; }
.verdict-Degraded { background: var(--amber); color: #1f2328; }
.verdict-Vulnerable, .passed-no { background: var(--unhealthy); color: #fff; }
.verdict-Aborted { background: var(--unknown); color: #fff; }
.verdict-Pending { background: #eef1f4; color: var(--muted); font-weight: 400; }
@media (min-width: 60rem) { dl.check-metrics { grid-template-columns: auto 1fr auto 1fr auto 1fr; } }
#experiments td, #experiments th { font-variant-numeric: tabular-nums; }
#experiments .limit { display: block; font-size: .75rem; color: var(--muted); }
#experiments .escalated { color: var(--unhealthy); font-weight: 600; }
#experiments tr.not-in-spec th { color: var(--muted); font-style: italic; }
ul.findings { margin: 0; padding-left: 1rem; font-size: .85rem; overflow-wrap: anywhere; min-width: 14rem; }
nav.runs { display: flex; flex-wrap: wrap; align-items: baseline; gap: .3rem; margin: .6rem 0; font-size: .9rem; }
ol.run-links { display: flex; flex-wrap: wrap; gap: .2rem 1rem; list-style: none; margin: 0; padding: 0; }
ol.run-links a[aria-current="page"] { font-weight: 700; text-decoration: none; color: var(--fg); }
.run-message { margin: .3rem 0; overflow-wrap: anywhere; }
#run-chart { margin: .5rem 0; }
.run-chart { width: 100%; max-width: 60rem; height: auto; display: block; background: var(--card); border: 1px solid var(--line); border-radius: 6px; }
.run-chart .panel { fill: #f6f8fa; stroke: var(--line); }
.run-chart .grid { stroke: #e3e8ee; }
.run-chart text { font-size: 10px; fill: var(--muted); }
.run-chart .axis-label { text-anchor: end; }
.run-chart .panel-title { font-weight: 700; fill: var(--fg); }
.run-chart .tick-label { text-anchor: middle; }
.run-chart .band-label { fill: var(--fg); font-weight: 600; }
.band-area { fill: #8c959f; fill-opacity: .18; stroke: #8c959f; stroke-opacity: .5; stroke-dasharray: 3 2; }
.band-Resilient .band-area { fill: var(--healthy); stroke: var(--healthy); }
.band-Degraded .band-area { fill: var(--amber); stroke: var(--amber); }
.band-Vulnerable .band-area { fill: var(--unhealthy); stroke: var(--unhealthy); }
.band-open .band-area { fill: #0969da; stroke: #0969da; }
.series-latency, .series-errors { fill: none; stroke-width: 1.8; stroke-linejoin: round; }
.series-latency { stroke: #0969da; }
.series-errors { stroke: var(--unhealthy); }
.run-chart-dot { stroke-width: 5; stroke-linecap: round; }
.phase-cell { fill: var(--unknown); }
.phase-cell-Healthy { fill: var(--healthy); }
.phase-cell-Degraded { fill: var(--amber); }
.phase-cell-Unhealthy { fill: var(--unhealthy); }
.chart-legend { font-size: .8rem; margin: .3rem 0; display: flex; flex-wrap: wrap; gap: .3rem 1rem; }
.key::before { content: ""; display: inline-block; width: .9rem; height: .6rem; margin-right: .3rem; border-radius: 2px; vertical-align: middle; }
.key-latency::before { background: #0969da; height: .2rem; }
.key-errors::before { background: var(--unhealthy); height: .2rem; }
.key-band::before { background: #8c959f; opacity: .4; }
.card-checks { margin-top: .4rem; font-size: .9rem; }
ul.check-links { list-style: none; padding: 0; margin: .2rem 0; }
ul.check-links li { overflow-wrap: anywhere; }
@media (max-width: 40rem) {
  .cards { grid-template-columns: 1fr; }
  main { padding: .6rem; }
  header nav a { margin-right: .6rem; }
}
@media (prefers-reduced-motion: no-preference) { .agent-card { transition: border-color .3s; } }
"""

LIVE_JS = """\
(function () {
  "use strict";
  var main = document.getElementById("content");
  var status = document.getElementById("live-status");
  if (!main || !window.EventSource || !window.fetch) { return; }
  var DEBOUNCE_MS = 200;
  var timer = null, inFlight = false, again = false, renderedAt = Date.now(), broken = false;

  function show(text) { if (status) { status.textContent = text; } }

  function span(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    if (s < 60) { return s + "s"; }
    var m = Math.floor(s / 60); s = s % 60;
    if (m < 60) { return s ? m + "m " + s + "s" : m + "m"; }
    var h = Math.floor(m / 60); m = m % 60;
    if (h < 24) { return m ? h + "h " + m + "m" : h + "h"; }
    var d = Math.floor(h / 24); h = h % 24;
    return h ? d + "d " + h + "h" : d + "d";
  }

  function tick() {
    var elapsed = (Date.now() - renderedAt) / 1000;
    var i, el, v;
    var agos = main.querySelectorAll("time[data-ago]");
    for (i = 0; i < agos.length; i++) {
      el = agos[i]; v = parseFloat(el.getAttribute("data-ago")) + elapsed;
      el.textContent = v < 1 ? "just now" : span(v) + " ago";
    }
    var lefts = main.querySelectorAll("time[data-left]");
    for (i = 0; i < lefts.length; i++) {
      el = lefts[i]; v = parseFloat(el.getAttribute("data-left")) - elapsed;
      el.textContent = v <= 0 ? "ending" : span(v) + " left";
    }
  }

  function refresh() {
    timer = null;
    if (inFlight) { again = true; return; }
    inFlight = true;
    fetch(window.location.pathname + window.location.search,
          {headers: {"X-Partial": "1"}, cache: "no-store", credentials: "same-origin"})
      .then(function (r) {
        // A 404 fragment ("agent not found") is content too; only server errors are not.
        if (r.status >= 500) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) {
        // Server-rendered and server-escaped; scripts in innerHTML never run anyway.
        main.innerHTML = html;
        renderedAt = Date.now();
        show("live");
      })
      .catch(function () { show("live (refresh failed)"); })
      .then(function () {
        inFlight = false;
        if (again) { again = false; schedule(); }
      });
  }

  function schedule() { if (timer === null) { timer = window.setTimeout(refresh, DEBOUNCE_MS); } }

  var source = new EventSource("/live");
  source.addEventListener("change", schedule);
  source.addEventListener("open", function () {
    show("live");
    // Changes may have been missed while disconnected.
    if (broken) { broken = false; schedule(); }
  });
  source.addEventListener("error", function () { broken = true; show("reconnecting\\u2026"); });
  window.setInterval(tick, 1000);
})();
"""


def _versioned(path: str, body: str) -> str:
    return f"{path}?v={hashlib.sha256(body.encode()).hexdigest()[:12]}"


STYLE_URL = _versioned("/static/style.css", STYLE_CSS)
SCRIPT_URL = _versioned("/static/live.js", LIVE_JS)
# Safe to cache for a day: a changed file gets a new URL (the ?v= hash).
_CACHE = "public, max-age=86400"


async def style(request: web.Request) -> web.Response:
    return web.Response(text=STYLE_CSS, content_type="text/css", headers={"Cache-Control": _CACHE})


async def script(request: web.Request) -> web.Response:
    return web.Response(text=LIVE_JS, content_type="application/javascript", headers={"Cache-Control": _CACHE})
