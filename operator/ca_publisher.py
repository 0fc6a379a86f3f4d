"""How sidecars are given the CA that signs the operator's certificate: a ConfigMap per namespace.

Like istio's ``istio-ca-root-cert``: a ConfigMap (``agentops-ca`` by default) with one key,
``ca.crt``, in every namespace that runs sidecars, which mount it and verify the operator
against it. It holds no secret, so a ConfigMap (readable by the namespace) is the right
kind. A mounted ConfigMap follows changes within the kubelet's sync period, which is why
a CA rollover keeps the old CA in the bundle for a long overlap (see ``ca_bundle``).

`sync` is cheap to call often (every check of the serving certificate, every new agent
namespace): it makes no API call for a namespace whose ConfigMap it last saw with this
content; otherwise it reads it and writes only if it differs. RBAC: create on
configmaps, get and update on this one name.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Iterable
from typing import Any

from agentops_operator.kube_client import KubeClient, KubeError

log = logging.getLogger(__name__)

# On every object the operator creates for TLS (this ConfigMap, the serving Secret).
MANAGED_BY_LABEL = {"app.kubernetes.io/managed-by": "agentops-operator"}
CA_KEY = "ca.crt"
# The KubeClient's pool (8 threads by default) also carries the operator's status writes;
# half of it is enough for a CA rollover to reach a thousand namespaces in seconds.
MAX_CONCURRENT = 4
# Reads and writes per namespace when replicas keep writing between them (a 409 each time).
MAX_ATTEMPTS = 3


class CaPublisher:
    def __init__(self, kube: KubeClient, *, name: str = "agentops-ca", max_concurrent: int = MAX_CONCURRENT) -> None:
        self._kube, self.name = kube, name
        self._seen: dict[str, str] = {}  # namespace -> the ca.crt it holds, as last read or written
        self._slots = asyncio.Semaphore(max_concurrent)
        self.writes = 0  # creates and updates made, for metrics and tests
        self._told_empty = False

    async def sync(self, namespaces: Iterable[str], ca_pem: bytes) -> None:
        """Make ConfigMap `name` hold `ca_pem` in each namespace; a namespace that is gone is skipped.

        An API error in one namespace is logged and leaves it for the next sync; it never
        stops the others.
        """
        if not ca_pem.strip():
            if not self._told_empty:  # once: callers sync every few seconds
                log.warning("no CA bundle to publish as ConfigMap %s (the Secret has no ca.crt); sidecars keep theirs",
                            self.name)
                self._told_empty = True
            return
        self._told_empty = False
        text = ca_pem.decode("ascii")  # PEM is ASCII by definition
        todo = [ns for ns in dict.fromkeys(namespaces) if self._seen.get(ns) != text]
        await asyncio.gather(*(self._sync_one(ns, text) for ns in todo))

    def forget(self, namespace: str) -> None:
        """Look at `namespace` through the API again at the next sync (call it when it is deleted)."""
        self._seen.pop(namespace, None)

    async def _sync_one(self, namespace: str, text: str) -> None:
        async with self._slots:
            try:
                await self._publish(namespace, text)
            except KubeError as exc:
                if _namespace_gone(exc):
                    self.forget(namespace)  # if it comes back, it is looked at afresh
                    log.debug("namespace %s is gone or going; no ConfigMap %s there", namespace, self.name)
                    return
                log.warning("could not publish ConfigMap %s/%s (next sync tries again): %s", namespace, self.name, exc)

    async def _publish(self, namespace: str, text: str) -> None:
        # Read before every write: writes are rare (a CA change, a new namespace), and an
        # update then keeps whatever else is on the object (annotations of a GitOps tool)
        # and needs only the get and update verbs on this one name.
        for _ in range(MAX_ATTEMPTS):
            current = await self._read(namespace)
            try:
                if current is None:
                    await self._api("POST", namespace, "configmaps", {
                        "apiVersion": "v1", "kind": "ConfigMap", "data": {CA_KEY: text},
                        "metadata": {"name": self.name, "namespace": namespace, "labels": MANAGED_BY_LABEL},
                    })
                elif (current.get("data") or {}).get(CA_KEY) == text:
                    self._seen[namespace] = text
                    return
                else:
                    metadata = current["metadata"]
                    await self._api("PUT", namespace, f"configmaps/{self.name}", {
                        **current, "data": {**(current.get("data") or {}), CA_KEY: text},
                        "metadata": {**metadata, "labels": {**(metadata.get("labels") or {}), **MANAGED_BY_LABEL}},
                    })
            except KubeError as exc:
                if exc.status != 409:
                    raise
                continue  # another replica wrote it between our read and write: read again
            self._wrote(namespace, text)
            return
        raise KubeError(409, f"ConfigMap {namespace}/{self.name} changed under us {MAX_ATTEMPTS} times in a row")

    def _wrote(self, namespace: str, text: str) -> None:
        self._seen[namespace] = text
        self.writes += 1
        log.info("published the operator's CA bundle as ConfigMap %s/%s", namespace, self.name)

    async def _read(self, namespace: str) -> dict[str, Any] | None:
        try:
            configmap: dict[str, Any] = await self._api("GET", namespace, f"configmaps/{self.name}")
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return configmap

    async def _api(self, method: str, namespace: str, url: str, body: dict[str, Any] | None = None) -> Any:
        kwargs: dict[str, Any] = {"version": "v1", "namespace": namespace, "url": url}
        if body is not None:
            kwargs.update(data=json.dumps(body), headers={"Content-Type": "application/json"})
        return await self._kube.run(functools.partial(self._kube.call, method, **kwargs))


def _namespace_gone(exc: KubeError) -> bool:
    # 404 on a create or patch: the namespace no longer exists. 403 "being terminated": it
    # is on its way out and takes no new objects.
    return exc.status == 404 or (exc.status == 403 and "being terminated" in str(exc))
