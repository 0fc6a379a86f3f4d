"""The sidecar injector's caBundle: kept equal to the CA that signs the operator's certificate.

The API server verifies the webhook's serving certificate against each webhook's
`clientConfig.caBundle` of the MutatingWebhookConfiguration (`--webhook-configuration`,
`agentops-sidecar-injector` in the manifests, which leave caBundle out). The operator
fills it in from the CA bundle it serves with and publishes to sidecars (the same
`ServingCert.ca_pem`), and follows a CA rollover: during one, that bundle holds the old
and the new CA, so the API server trusts the certificate served before and after.

`sync` is called every few seconds with the current CA (api_server's CA publication
loop). It costs nothing while nothing changed: the object is read again only when the
CA differs from the one last seen there, after a write that lost a race (409), or every
REREAD_S, which catches a caBundle wiped by someone re-applying the object wholesale.
A missing object means injection is not installed: said once at INFO, looked for again
every RETRY_S, as after any other API error. RBAC: get and update on this one name.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from agentops_operator.kube_client import KubeClient, KubeError

log = logging.getLogger(__name__)

API_VERSION = "admissionregistration.k8s.io/v1"
# While the caBundle is wrong, every pod created goes without the sidecar (failurePolicy
# Ignore); one GET of one small object a minute is a cheap bound on how long that lasts.
REREAD_S = 60.0
# After a 404 or an API error. The configuration is applied with the operator (same
# kustomization) or later by hand; looking every 10 s makes injection work soon after it
# appears, and a GET every 10 s of an object that is not there costs nothing.
RETRY_S = 10.0


class WebhookCaBundle:
    def __init__(self, kube: KubeClient, name: str, *, reread_s: float = REREAD_S,
                 retry_s: float = RETRY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._kube, self.name = kube, name
        self._reread_s, self._retry_s, self._clock = reread_s, retry_s, clock
        # The base64 caBundle every webhook held when last read or written; None after an error.
        self._seen: str | None = None
        # Monotonic: no API call before this, unless the CA changed since a successful read.
        self._next_read = float("-inf")
        self._told: str | None = None  # the last condition logged (not found, forbidden, empty CA): said once
        self.writes = 0  # updates made, for tests

    async def sync(self, ca_pem: bytes) -> None:
        """Make every webhook of the configuration trust `ca_pem`; API errors are logged and retried later."""
        if not ca_pem.strip():
            self._once("empty", logging.WARNING, "no CA bundle to put into MutatingWebhookConfiguration %s (the "
                       "serving Secret has no ca.crt): its caBundle stays as it is", self.name)
            return
        want = base64.b64encode(ca_pem).decode("ascii")
        now = self._clock()
        # After an error, the retry time holds whatever the CA: the object's absence or our
        # lack of rights does not depend on it.
        if now < self._next_read and self._seen in (None, want):
            return
        try:
            await self._reconcile(want, now)
        except KubeError as exc:
            self._seen, self._next_read = None, now + self._retry_s
            if exc.status == 404:
                self._once("404", logging.INFO, "no MutatingWebhookConfiguration %s: sidecar injection off (looking "
                           "again every %.0fs)", self.name, self._retry_s)
            elif exc.status == 409:
                self._next_read = now  # someone wrote it between our read and write: read it again next round
                log.info("MutatingWebhookConfiguration %s changed while its caBundle was written; reading it again",
                         self.name)
            elif exc.status in (401, 403):
                self._next_read = now + self._reread_s  # rights change rarely: no need to keep asking
                self._once("403", logging.WARNING, "may not read or update MutatingWebhookConfiguration %s (RBAC needs get "
                           "and update on mutatingwebhookconfigurations/%s): %s", self.name, self.name, exc)
            else:
                log.warning("keeping the caBundle of MutatingWebhookConfiguration %s failed (trying again in %.0fs): %s",
                            self.name, self._retry_s, exc)

    async def _reconcile(self, want: str, now: float) -> None:
        current: dict[str, Any] = await self._api("GET")
        webhooks = current.get("webhooks") or []
        stale = [w.get("name") for w in webhooks if (w.get("clientConfig") or {}).get("caBundle") != want]
        if stale:
            for webhook in webhooks:
                webhook.setdefault("clientConfig", {})["caBundle"] = want
            # A PUT of what was read: its resourceVersion turns a concurrent change into a 409.
            await self._api("PUT", current)
            self.writes += 1
            log.info("set the caBundle of MutatingWebhookConfiguration %s (webhooks %s) to the operator's CA",
                     self.name, ", ".join(str(n) for n in stale))
        if self._told is not None:
            log.info("MutatingWebhookConfiguration %s is there and trusts the operator's CA", self.name)
        self._told = None
        self._seen, self._next_read = want, now + self._reread_s

    def _once(self, condition: str, level: int, message: str, *args: Any) -> None:
        if self._told != condition:
            self._told = condition
            log.log(level, message, *args)

    async def _api(self, method: str, body: dict[str, Any] | None = None) -> Any:
        kwargs: dict[str, Any] = {"version": API_VERSION, "url": f"mutatingwebhookconfigurations/{self.name}"}
        if body is not None:
            kwargs.update(data=json.dumps(body), headers={"Content-Type": "application/json"})
        return await self._kube.run(functools.partial(self._kube.call, method, **kwargs))
