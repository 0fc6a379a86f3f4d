"""The operator's serving certificate: kept in a Secret, served from one SSLContext reloaded in place.

The Secret is cert-manager's shape (`kubernetes.io/tls`: ``tls.crt``, ``tls.key``,
``ca.crt``), so an overlay can hand it to cert-manager instead:

* managed (`manage=True`, the default): the operator creates the Secret, and renews the
  serving certificate and its CA in it (`cert_renewal.decide`), keeping the CA's key in
  ``ca.key`` so a renewal keeps the CA that sidecars trust;
* external (`manage=False`): another tool writes the Secret; the operator only reads it,
  waits for it at start, and reloads it when it changes.

`start` returns one `ssl.SSLContext`; `run` loads every new certificate into that same
object, so new handshakes get it without a restart and open connections finish on the
old one. Replicas share the Secret: a create that finds it already there, or an update
that lost the race (409), reads it again and decides again, so all of them serve
whatever the Secret holds. Anything that serves TLS for the operator (the sidecar API,
later the UI and a webhook) can take a `ServingCert` of its own with its own Secret.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import os
import shutil
import ssl
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from agentops.backoff import Backoff
from agentops.errors import AgentOpsError, ConfigError
from agentops.times import format_time
from agentops_operator.ca_bundle import load_certificates
from agentops_operator.ca_publisher import MANAGED_BY_LABEL, CaPublisher
from agentops_operator.cert_renewal import (CertPolicy, Renewal, TlsMaterial, decide, serving_expiry, uncovered_hosts,
                                            unusable)
from agentops_operator.kube_client import KubeClient, KubeError

# The TLS surface in one import: the certificate, and how sidecars are given its CA.
__all__ = ["CaPublisher", "ServingCert", "ServingCertError"]

log = logging.getLogger(__name__)

JSON = {"Content-Type": "application/json"}

# A 409 means another replica wrote the Secret first; re-reading settles it within a try or
# two. More in a row means something keeps writing it, and the next check tries again.
MAX_CONFLICTS = 5
# Jittered, so two replicas that collided do not collide again in lockstep.
CONFLICT_BACKOFF = Backoff(first_s=0.05, cap_s=1.0, jitter=(0.5, 1.5))
# How soon `start` looks again for a Secret that is not there yet, or after an API error:
# cert-manager writes a new Secret within seconds, and a GET a second is cheap.
START_BACKOFF = Backoff(first_s=0.2, cap_s=1.0)


class ServingCertError(AgentOpsError):
    """The serving certificate could not be had: the message names the Secret and what was wrong."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _material(secret: dict[str, Any]) -> TlsMaterial:
    return TlsMaterial.from_data({k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()})


class ServingCert:
    def __init__(self, kube: KubeClient, namespace: str, name: str, *, hosts: Sequence[str], manage: bool = True,
                 validity_s: float = 90 * 86400, ca_validity_s: float = 5 * 365 * 86400,
                 renew_fraction: float = 1 / 3, check_interval_s: float = 60.0, start_timeout_s: float = 60.0) -> None:
        self.where = f"{namespace}/{name}"
        try:
            self._policy = CertPolicy(tuple(hosts), timedelta(seconds=validity_s), timedelta(seconds=ca_validity_s),
                                      renew_fraction)
        except ValueError as exc:
            raise ConfigError(f"serving certificate in Secret {self.where}: {exc}") from exc
        if check_interval_s <= 0 or start_timeout_s < 0:
            raise ConfigError(f"serving certificate in Secret {self.where}: check_interval_s must be positive and "
                              f"start_timeout_s not negative, got {check_interval_s} and {start_timeout_s}")
        self._kube, self._namespace, self._name, self._manage = kube, namespace, name, manage
        self._check_interval_s, self._start_timeout_s = check_interval_s, start_timeout_s
        self._context: ssl.SSLContext | None = None
        self._served: TlsMaterial | None = None
        # One read-decide-write-load at a time: the run loop and renew_now share the state.
        self._lock = asyncio.Lock()
        self.reloads = 0  # certificates loaded into the context after the first

    # --- what is served ---

    @property
    def ca_pem(self) -> bytes:
        """The CA bundle (``ca.crt``) sidecars verify the served certificate against; b"" before start."""
        return self._served.ca_crt if self._served is not None else b""

    @property
    def not_after(self) -> datetime:
        """When the served certificate expires."""
        expiry = serving_expiry(self._served.tls_crt) if self._served is not None else None
        if expiry is None:
            raise ServingCertError(f"no certificate from Secret {self.where} is served yet: call start() first")
        return expiry

    # --- lifecycle ---

    async def start(self) -> ssl.SSLContext:
        """Ensure (managed) or wait for (external) a usable certificate; a server context serving it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout_s
        failures = 0
        while True:
            async with self._lock:
                try:
                    material = await self._settle()
                    problem = unusable(material) if material is not None else "it does not exist yet"
                except KubeError as exc:
                    if exc.status in (401, 403):
                        raise ServingCertError(f"may not read or write Secret {self.where} (RBAC needs get, create and "
                                               f"update on secrets in {self._namespace}): {exc}") from exc
                    material, problem = None, str(exc)
                if material is not None and problem is None:
                    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                    context.minimum_version = ssl.TLSVersion.TLSv1_2
                    self._context = context
                    self._serve(material)
                    return context
            if failures == 0:
                writer = "the operator creates it" if self._manage else "cert-manager or another tool writes it"
                log.info("waiting up to %.0fs for a usable certificate in Secret %s (%s): %s",
                         self._start_timeout_s, self.where, writer, problem)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ServingCertError(f"no usable certificate in Secret {self.where} after "
                                       f"{self._start_timeout_s:.0f}s: {problem}")
            failures += 1
            await asyncio.sleep(min(START_BACKOFF.delay(failures), remaining))

    async def run(self) -> None:
        """Every `check_interval_s`: re-read the Secret, renew if due (managed), reload what changed. Never returns."""
        if self._context is None:
            raise ServingCertError(f"serving certificate of Secret {self.where}: call start() before run()")
        while True:
            await asyncio.sleep(self._check_interval_s)
            try:
                async with self._lock:
                    await self._check()
            except (KubeError, ServingCertError, ssl.SSLError) as exc:
                log.warning("checking the serving certificate in Secret %s failed (trying again in %.0fs): %s",
                            self.where, self._check_interval_s, exc)
            except Exception:  # an unforeseen bug must not stop renewals for good: log it, try again
                log.exception("checking the serving certificate in Secret %s failed", self.where)

    async def renew_now(self, *, renew_ca: bool = False) -> None:
        """Issue a new serving certificate (and a new CA with `renew_ca`) now and serve it (managed mode only)."""
        if not self._manage:
            raise ServingCertError(f"Secret {self.where} is written by another tool (manage=False): renew it there "
                                   "(cert-manager: cmctl renew)")
        if self._context is None:
            raise ServingCertError(f"serving certificate of Secret {self.where}: call start() before renew_now()")
        async with self._lock:
            material = await self._reconcile(renew=True, renew_ca=renew_ca)
            self._serve(material)

    # --- one check ---

    async def _check(self) -> None:
        material = await self._settle()
        if material is None:
            log.warning("Secret %s is gone; still serving the certificate loaded before (expires %s)",
                        self.where, format_time(self.not_after))
            return
        self._serve(material)

    async def _settle(self) -> TlsMaterial | None:
        """The material to serve now: renewed first when managed, as read when external (None: no Secret)."""
        if self._manage:
            return await self._reconcile()
        secret = await self._read()
        return _material(secret) if secret is not None else None

    async def _reconcile(self, *, renew: bool = False, renew_ca: bool = False) -> TlsMaterial:
        for attempt in range(1, MAX_CONFLICTS + 1):
            secret = await self._read()
            # A Secret deleted under a running operator is recreated from what it serves, so
            # the CA that sidecars trust survives the deletion.
            current = _material(secret) if secret is not None else self._served
            renewal = decide(current, self._policy, _now(), renew=renew, renew_ca=renew_ca)
            if renewal is None and secret is not None:
                return _material(secret)
            if renewal is None:
                assert current is not None  # decide() always renews when there is nothing
                renewal = Renewal(current, "the Secret was deleted; recreated with the certificate served", False)
            try:
                await self._write(secret, renewal.material)
            except KubeError as exc:
                if exc.status != 409:
                    raise
                log.info("Secret %s was written by someone else meanwhile (%s); reading it again", self.where, exc)
                await asyncio.sleep(CONFLICT_BACKOFF.delay(attempt))
                continue
            expiry = load_certificates(renewal.material.tls_crt)[0].not_valid_after_utc
            log.info("wrote Secret %s (%s): the serving certificate expires %s%s", self.where, renewal.reason,
                     format_time(expiry), ", issued by a new CA" if renewal.ca_renewed else "")
            return renewal.material
        raise ServingCertError(f"Secret {self.where} changed under us {MAX_CONFLICTS} times in a row")

    # --- serving ---

    def _serve(self, material: TlsMaterial) -> None:
        """Load `material` into the context if its certificate or key differs from what is served."""
        assert self._context is not None
        served = self._served
        if served is not None and (served.tls_crt, served.tls_key) == (material.tls_crt, material.tls_key):
            if material.ca_crt != served.ca_crt:
                log.info("the CA bundle in Secret %s changed: %d CAs", self.where,
                         len(load_certificates(material.ca_crt)))
            self._served = material
            return
        problem = unusable(material)
        if problem is not None:
            raise ServingCertError(f"the certificate in Secret {self.where} cannot be served: {problem}")
        # A scratch context first: a chain OpenSSL refuses must not leave the served context
        # half-loaded (a new certificate with the old key).
        _load_cert_chain(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), material)
        # The served context is changed on the event loop's thread, where its handshakes
        # start: SSLContext is not documented as safe to change from another thread, and
        # writing two files of a kilobyte each costs well under a millisecond.
        _load_cert_chain(self._context, material)
        self._served = material
        if served is not None:
            self.reloads += 1
        leaf = load_certificates(material.tls_crt)[0]
        log.info("serving the certificate from Secret %s: %s, expires %s", self.where,
                 "reloaded" if served is not None else "loaded", format_time(leaf.not_valid_after_utc))
        missing = uncovered_hosts(leaf, self._policy)
        if missing:
            log.warning("the certificate in Secret %s does not name %s: clients that dial those will refuse it",
                        self.where, ", ".join(missing))

    # --- the Secret ---

    async def _api(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        call = functools.partial(self._kube.call, method, version="v1", namespace=self._namespace, url=url,
                                 **({"data": json.dumps(body), "headers": JSON} if body is not None else {}))
        return await self._kube.run(call)

    async def _read(self) -> dict[str, Any] | None:
        try:
            secret: dict[str, Any] = await self._api("GET", f"secrets/{self._name}")
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return secret

    async def _write(self, secret: dict[str, Any] | None, material: TlsMaterial) -> None:
        """Create the Secret, or update the one read (its resourceVersion makes a stale update a 409)."""
        data = {k: base64.b64encode(v).decode("ascii") for k, v in material.to_data().items()}
        if secret is None:
            await self._api("POST", "secrets", {
                "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "data": data,
                "metadata": {"name": self._name, "namespace": self._namespace, "labels": MANAGED_BY_LABEL},
            })
        else:
            # Other keys (and the type, which is immutable) stay as they were.
            await self._api("PUT", f"secrets/{self._name}", {**secret, "data": {**(secret.get("data") or {}), **data}})


def _load_cert_chain(context: ssl.SSLContext, material: TlsMaterial) -> None:
    """`load_cert_chain` reads files only: hand it private ones (0600 in a 0700 directory), removed at once."""
    directory = tempfile.mkdtemp(prefix="agentops-tls-")
    try:
        paths = []
        for name, data in (("tls.crt", material.tls_crt), ("tls.key", material.tls_key)):
            path = os.path.join(directory, name)
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(data)
            paths.append(path)
        context.load_cert_chain(paths[0], paths[1])
    finally:
        shutil.rmtree(directory, ignore_errors=True)
