"""`agentops ui`: the read-only web UI (import name `agentops_ui`, folder `ui/`).

Layers, imports in one direction:

* `settings` → `main` wire things together (flags, signals, start/stop order);
* `kube_watch` reads Agents, Faults, ResilienceChecks and Events from the API server (list + watch in a
  thread pool) into `store`, the in-memory state; `changes` fans store changes out to
  the browsers connected to `/live`;
* `agent_summaries`, `fault_summaries`, `event_summaries` and `check_summaries` (with `time_text`, and
  agentops.label_selector) turn the store into the typed records that both the HTML pages
  and the JSON mirror show, so the two can never disagree; `typed_objects` is where a
  stored object becomes typed (agentops.api_types), shared by all of them;
* `markup`, `widgets`, `layout` render escaped HTML, `assets` holds the stylesheet and
  the page script; one `view_*` module per page or endpoint, each getting the store
  through `context`; `app` assembles the routes and the middlewares that make the
  server read-only. `check_chart` draws a check run's chart as inline SVG.

Nothing here writes to the API server or reads a Secret: the only calls are list and
watch on agents, faults, resiliencechecks and events.
"""
