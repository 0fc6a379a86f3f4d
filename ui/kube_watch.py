"""Agents, Faults, ResilienceChecks and Events from the API server into the store: list, then watch.

One `SourceWatch` per kind and namespace (or per kind cluster-wide): list, hand the
result to the store, then watch from the list's resourceVersion; when the watch ends
(the server closes it every few minutes) watch again from the last version seen; on
410 Gone list again; on errors back off (`BACKOFF`) and record the error so the pages
can say why they are stale. An optional kind whose list answers 404 (its CRD is not
installed: ResilienceChecks came later than Agents and Faults) is recorded as absent
and listed again on the backoff's slow end, so installing the CRD later is picked up
without a restart and the rest of the UI never waits for it.

pykube-ng is synchronous, so every call runs in a thread pool that holds one thread
per source: a watch blocks its thread reading the stream and hands each event to the
event loop with `loop.call_soon_threadsafe`, which keeps the events in order. On
shutdown each stream's socket is shut down so the blocked threads return at once.

The only requests made are GET list and GET watch on agents, faults, resiliencechecks and events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pykube
import requests

from agentops import API_VERSION, kube_credentials
from agentops.backoff import Backoff
from agentops.errors import AgentOpsError, ConfigError
from agentops_ui.store import AGENT, CHECK, EVENT, FAULT, Obj, Store

log = logging.getLogger("agentops_ui.kube")

# A list page answers in well under a second on a healthy API server; these bound a hung one.
CONNECT_TIMEOUT_S = 5.0
LIST_READ_TIMEOUT_S = 15.0
LIST_PAGE_SIZE = 500
# The server ends each watch after timeoutSeconds (randomised so that many sources do
# not reconnect in lockstep); the client's read timeout is longer, so it only fires on
# a connection that died silently.
WATCH_SECONDS = (240, 300)
WATCH_READ_GRACE_S = 30.0
# After a failed list or watch: 0.5 s, so a blip costs the pages half a second of
# staleness; at most 30 s, so an API server in trouble gets one request per source
# every 30 s. Jitter (±20 %): the sources that failed together retry apart.
BACKOFF = Backoff(first_s=0.5, cap_s=30.0, jitter=(0.8, 1.2))
# A watch that ends sooner than this delivered nothing useful; re-watching at once
# would spin, so it counts as a failure for the backoff.
MIN_WATCH_S = 1.0


@dataclass(frozen=True)
class Resource:
    kind: str
    api_version: str
    plural: str
    field_selector: str | None = None
    optional: bool = False  # a 404 on list means "not installed", not an error


AGENTS = Resource(AGENT, API_VERSION, "agents")
FAULTS = Resource(FAULT, API_VERSION, "faults")
CHECKS = Resource(CHECK, API_VERSION, "resiliencechecks", optional=True)
# Only Events about this project's objects; the kind (Agent or Fault) is checked by the
# store, since a field selector takes one value per field.
EVENTS = Resource(EVENT, "v1", "events", field_selector=f"involvedObject.apiVersion={API_VERSION}")
RESOURCES = (AGENTS, FAULTS, CHECKS, EVENTS)
# How often an absent kind is listed again: installing its CRD shows up within this long.
ABSENT_RETRY_S = 30.0


class KubeError(AgentOpsError):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"Kubernetes API {status or 'unreachable'}: {message}")
        self.status = status


class Gone(KubeError):
    """The resourceVersion is too old to watch from: list again."""


class StreamSlot:
    """The response a watch thread is reading, so that the event loop can end it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._response: requests.Response | None = None
        self.stopped = False

    def hold(self, response: requests.Response | None) -> None:
        with self._lock:
            self._response = response
        if response is not None and self.stopped:
            _shutdown(response)

    def abort(self) -> None:
        with self._lock:
            self.stopped = True
            response = self._response
        if response is not None:
            _shutdown(response)


def _shutdown(response: requests.Response) -> None:
    # Closing a socket from another thread does not wake a blocked read; shutting it
    # down does (urllib3 ≥ 2.3 offers exactly that as HTTPResponse.shutdown).
    try:
        response.raw.shutdown()
    except (AttributeError, ValueError, RuntimeError, OSError):
        response.close()


def _error(resp: requests.Response) -> KubeError:
    try:
        message = str(resp.json().get("message") or resp.text)
    except ValueError:
        message = resp.text
    cls = Gone if resp.status_code == 410 else KubeError
    return cls(resp.status_code, message[:500])


class KubeReader:
    """Blocking list and watch through pykube; call only from worker threads."""

    def __init__(self, *, max_connections: int, load_config: Callable[[], Any] = kube_credentials.load) -> None:
        self._load_config = load_config
        self._max_connections = max_connections
        self._api = self._client()

    def _client(self) -> Any:
        try:
            config = self._load_config()
        except (pykube.PyKubeError, FileNotFoundError, OSError) as exc:
            raise ConfigError(f"no Kubernetes credentials: not in a cluster and no usable kubeconfig ({exc}); set KUBECONFIG") from exc
        # One pooled connection per source: a watch holds its connection for minutes.
        adapter = pykube.http.KubernetesHTTPAdapter(config, pool_maxsize=self._max_connections)
        return pykube.HTTPClient(config, timeout=(CONNECT_TIMEOUT_S, LIST_READ_TIMEOUT_S), http_adapter=adapter)

    @property
    def server(self) -> str:
        return str(self._api.url)

    def reload_credentials(self) -> None:
        """Read the credentials again: an in-cluster token is rotated on disk."""
        try:
            fresh = self._client()
        except ConfigError as exc:
            log.warning("keeping the old credentials: %s", exc)
            return
        old, self._api = self._api, fresh
        old.session.close()

    def close(self) -> None:
        self._api.session.close()

    def list(self, res: Resource, namespace: str | None) -> tuple[list[Obj], str]:
        """Every object of `res` in `namespace` (all when None), paged; and the list's resourceVersion."""
        api = self._api
        items: list[Obj] = []
        params: dict[str, Any] = {"limit": LIST_PAGE_SIZE}
        if res.field_selector:
            params["fieldSelector"] = res.field_selector
        while True:
            try:
                resp = api.get(version=res.api_version, namespace=namespace, url=res.plural, params=dict(params))
            except requests.RequestException as exc:
                raise KubeError(None, str(exc)) from exc
            if resp.status_code >= 400:
                raise _error(resp)
            page = resp.json()
            for item in page.get("items") or ():
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", res.kind)
                items.append(item)
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                return items, str(meta.get("resourceVersion") or "")
            params["continue"] = meta["continue"]

    def watch(self, res: Resource, namespace: str | None, version: str,
              deliver: Callable[[str, Obj], None], slot: StreamSlot) -> str:
        """Stream events from `version` until the server ends the watch; return the last version seen."""
        if slot.stopped:
            return version
        seconds = random.randint(*WATCH_SECONDS)
        params: dict[str, Any] = {"watch": "true", "resourceVersion": version, "allowWatchBookmarks": "true",
                                  "timeoutSeconds": seconds}
        if res.field_selector:
            params["fieldSelector"] = res.field_selector
        try:
            resp = self._api.get(version=res.api_version, namespace=namespace, url=res.plural, params=params,
                                 stream=True, timeout=(CONNECT_TIMEOUT_S, seconds + WATCH_READ_GRACE_S))
        except requests.RequestException as exc:
            raise KubeError(None, str(exc)) from exc
        slot.hold(resp)
        try:
            if resp.status_code >= 400:
                raise _error(resp)
            for line in resp.iter_lines():
                if slot.stopped:
                    break
                if not line:
                    continue
                event = json.loads(line)
                type_, obj = event.get("type"), event.get("object") or {}
                if type_ == "ERROR":
                    code = obj.get("code")
                    cls = Gone if code == 410 else KubeError
                    raise cls(code if isinstance(code, int) else None, str(obj.get("message") or obj)[:500])
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if type_ in ("ADDED", "MODIFIED", "DELETED"):
                    obj.setdefault("apiVersion", res.api_version)
                    obj.setdefault("kind", res.kind)
                    deliver(str(type_), obj)
        except (requests.RequestException, OSError, ValueError) as exc:
            # The stream broke (or was shut down): watch again from the last version;
            # if the server is really gone, connecting will fail and say so.
            if not slot.stopped:
                log.debug("watch of %s ended: %s", res.plural, exc)
        finally:
            slot.hold(None)
            resp.close()
        return version


class SourceWatch:
    """List + watch of one kind in one namespace (or all), for as long as its task runs."""

    def __init__(self, reader: KubeReader, pool: ThreadPoolExecutor, store: Store, res: Resource,
                 namespace: str | None, *, clock: Callable[[], float] = time.time) -> None:
        self.reader, self.pool, self.store, self.res, self.namespace = reader, pool, store, res, namespace
        self.clock = clock
        self.slot = StreamSlot()

    @property
    def scope(self) -> str:
        return f"{self.res.plural} in {self.namespace or 'all namespaces'}"

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0  # in a row; any watch that lasted MIN_WATCH_S ends the row

        def deliver(type_: str, obj: Obj) -> None:  # on the watch thread
            if not self.slot.stopped:
                loop.call_soon_threadsafe(self._apply, type_, obj)

        listed_at = 0.0
        try:
            while True:
                try:
                    items, version = await loop.run_in_executor(self.pool, self.reader.list, self.res, self.namespace)
                    state = self.store.sources.get((self.res.kind, self.namespace))
                    first = state is None or not state.synced
                    listed_at = time.monotonic()
                    self.store.replace(self.res.kind, self.namespace, items, self.clock())
                    self.store.source_synced(self.res.kind, self.namespace, self.clock())
                    if first:
                        log.info("listed %d %s", len(items), self.scope)
                    while True:
                        started = time.monotonic()
                        version = await loop.run_in_executor(
                            self.pool, self.reader.watch, self.res, self.namespace, version, deliver, self.slot)
                        if time.monotonic() - started < MIN_WATCH_S:
                            failures += 1
                            await asyncio.sleep(BACKOFF.delay(failures))
                        else:
                            failures = 0
                except Gone:
                    log.info("%s: resourceVersion expired; listing again", self.scope)
                    if time.monotonic() - listed_at < MIN_WATCH_S:
                        failures += 1  # a server that keeps saying Gone must not spin us
                        await asyncio.sleep(BACKOFF.delay(failures))
                except KubeError as exc:
                    if exc.status == 404 and self.res.optional:
                        failures = 0
                        state = self.store.sources.get((self.res.kind, self.namespace))
                        if state is None or state.absent is None:
                            log.info("%s: not served (is its CRD installed?); listing again every %.0fs",
                                     self.scope, ABSENT_RETRY_S)
                        self.store.source_absent(self.res.kind, self.namespace, str(exc), self.clock())
                        await asyncio.sleep(ABSENT_RETRY_S)
                        continue
                    failures += 1
                    delay = BACKOFF.delay(failures)
                    log.warning("%s: %s; retrying in %.1fs", self.scope, exc, delay)
                    self.store.source_failed(self.res.kind, self.namespace, str(exc), self.clock())
                    if exc.status == 401:
                        await loop.run_in_executor(self.pool, self.reader.reload_credentials)
                    await asyncio.sleep(delay)
        finally:
            self.slot.abort()

    def _apply(self, type_: str, obj: Obj) -> None:
        self.store.apply(self.res.kind, type_, obj, self.clock())
