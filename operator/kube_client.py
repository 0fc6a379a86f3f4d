"""The operator's own Kubernetes calls, through pykube-ng (synchronous).

kopf watches with its own client; this adapter does what the operator writes (status
through the status subresource, Events) and its full re-lists. pykube is blocking, so
every call runs in a dedicated, bounded thread pool (`run`) and never on the event
loop; the pool's size is the bound on API calls in flight.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Callable, TypeVar

import pykube
import requests

from agentops import GROUP, VERSION, kube_credentials
from agentops.errors import AgentOpsError, ConfigError
from agentops.times import format_time
from agentops_operator.resources import ObjectRef

log = logging.getLogger(__name__)
T = TypeVar("T")

# Each call is bounded; a hung API server must not hold a write slot forever.
REQUEST_TIMEOUT_S = 10.0


class KubeError(AgentOpsError):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"Kubernetes API {status or 'error'}: {message}")
        self.status = status

    @property
    def retryable(self) -> bool:
        # Not found: the object is gone and the write is moot. 4xx other than
        # conflicts/throttling are our bug and will not heal by retrying.
        return self.status is None or self.status in (409, 429) or self.status >= 500


class KubeClient:
    def __init__(self, kubeconfig: str | None = None, *, max_in_flight: int = 8) -> None:
        try:
            config = kube_credentials.load(kubeconfig)
        except (pykube.PyKubeError, FileNotFoundError) as exc:
            raise ConfigError(
                f"no Kubernetes credentials: not running in a cluster and no usable kubeconfig ({exc}); set KUBECONFIG"
            ) from exc
        # One pooled connection per worker thread, so a worker never waits for a socket.
        adapter = pykube.http.KubernetesHTTPAdapter(config, pool_maxsize=max_in_flight)
        self.api = pykube.HTTPClient(config, timeout=REQUEST_TIMEOUT_S, http_adapter=adapter)
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="kube-api")
        self.identity = socket.gethostname()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.api.session.close()

    # --- blocking calls (run them through `run`) ---

    def _check(self, resp: requests.Response) -> Any:
        if resp.status_code >= 400:
            try:
                message = resp.json().get("message", resp.text)
            except ValueError:
                message = resp.text
            raise KubeError(resp.status_code, message[:500])
        return resp.json() if resp.content else None

    def call(self, method: str, **kwargs: Any) -> Any:
        """One request (blocking); a 4xx/5xx answer raises KubeError with its status."""
        return self._call(method, **kwargs)

    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            resp = self.api.request(method, **kwargs)
        except requests.RequestException as exc:
            raise KubeError(None, str(exc)) from exc
        return self._check(resp)

    def patch_status(self, ref: ObjectRef, status: dict[str, Any]) -> None:
        """Merge-patch `.status` through the status subresource (spec is never touched)."""
        self._call(
            "PATCH",
            version=f"{GROUP}/{VERSION}",
            namespace=ref.key.namespace,
            url=f"{ref.plural}/{ref.key.name}/status",
            data=json.dumps({"status": status}),
            headers={"Content-Type": "application/merge-patch+json"},
        )

    def create_event(self, ref: ObjectRef, type_: str, reason: str, message: str, now: datetime | None = None) -> None:
        stamp = format_time(now or datetime.now(timezone.utc))
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{ref.key.name}.", "namespace": ref.key.namespace},
            "involvedObject": {
                "apiVersion": ref.api_version,
                "kind": ref.kind,
                "name": ref.key.name,
                "namespace": ref.key.namespace,
                "uid": ref.uid,
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "agentops-operator"},
            "reportingComponent": "agentops.dev/operator",
            "reportingInstance": self.identity,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        self._call("POST", version="v1", namespace=ref.key.namespace, url="events", data=json.dumps(body),
                   headers={"Content-Type": "application/json"})

    def list_objects(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        """All objects of a kind in one namespace, or in all when `namespace` is None (paged)."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 500}
        while True:
            kwargs: dict[str, Any] = {"version": f"{GROUP}/{VERSION}", "url": plural, "params": dict(params)}
            if namespace is not None:
                kwargs["namespace"] = namespace
            page = self._call("GET", **kwargs)
            for item in page.get("items", []):
                item.setdefault("apiVersion", f"{GROUP}/{VERSION}")
                items.append(item)
            token = page.get("metadata", {}).get("continue")
            if not token:
                return items
            params["continue"] = token

    def list_namespaces(self) -> list[str]:
        page = self._call("GET", version="v1", url="namespaces")
        return [ns["metadata"]["name"] for ns in page.get("items", [])]
