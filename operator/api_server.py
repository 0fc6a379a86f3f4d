"""Start the sidecar API: who may call it (identity), how it is served (TLS), and the CA
that sidecars are given to verify it.

* Identity: projected ServiceAccount tokens verified by TokenReview (always), Google ID
  tokens (unless `--google-certs-url off`), the static token (only when configured).
* TLS: the serving certificate lives in a Secret (`--tls-secret`); the operator makes
  and renews it (`--tls self-signed`) or only reads it (`--tls secret`, cert-manager),
  and reloads a new one into the running server. `--tls off` serves plain HTTP.
* The CA bundle is published as a ConfigMap (`--ca-configmap`, key `ca.crt`) into every
  namespace that has an Agent, for the sidecars there to mount — as istio publishes
  `istio-ca-root-cert`. Checked every CA_PUBLISH_INTERVAL_S (a new namespace's pods wait
  for it to be mounted), which costs nothing while nothing changed; every CA_REREAD_S
  each namespace's ConfigMap is read again, so one deleted by hand comes back.
* Sidecar injection (`--webhook-configuration`, unless off): POST /mutate-pods on the same
  server, and the same loop keeps that MutatingWebhookConfiguration's caBundle equal to
  the CA (webhook_config.WebhookCaBundle; with TLS only: the API server calls webhooks
  over https).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from typing import Any

from aiohttp import web

from agentops_operator.admission import admission_handler, injection_config
from agentops_operator.authentication import Authenticator
from agentops_operator.google_tokens import GoogleTokenVerifier
from agentops_operator.http_api import build_app
from agentops_operator.kube_client import KubeClient
from agentops_operator.metrics import OperatorMetrics
from agentops_operator.reconciler import Reconciler
from agentops_operator.ca_publisher import CaPublisher
from agentops_operator.serving_cert import ServingCert
from agentops_operator.settings import OperatorSettings
from agentops_operator.token_review import TokenReviewer, kube_token_review
from agentops_operator.webhook_config import WebhookCaBundle

log = logging.getLogger(__name__)

CA_PUBLISH_INTERVAL_S = 2.0
CA_REREAD_S = 300.0


async def _stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def authenticator(settings: OperatorSettings, kube: KubeClient, metrics: OperatorMetrics,
                  stack: contextlib.AsyncExitStack) -> Authenticator:
    review = kube_token_review(kube)

    async def counted_review(token: str, audience: str) -> dict[str, Any]:
        metrics.token_reviews.inc()
        return await review(token, audience)

    google = None
    if settings.google_certs_url:
        google = GoogleTokenVerifier(audience=settings.token_audience, certs_url=settings.google_certs_url)
        stack.push_async_callback(google.close)
    reviewer = TokenReviewer(counted_review, audience=settings.token_audience, ttl_s=settings.token_review_cache_s)
    stack.push_async_callback(reviewer.close)
    return Authenticator(
        kubernetes=reviewer,
        google=google,
        static_token=settings.static_token or None,
    )


async def _publish_ca_forever(publisher: CaPublisher | None, webhook: WebhookCaBundle | None, cert: ServingCert,
                              reconciler: Reconciler) -> None:
    reread_at = time.monotonic() + CA_REREAD_S
    while True:
        if publisher is not None:
            namespaces = {key.namespace for key in reconciler.index.agents}
            if time.monotonic() >= reread_at:
                reread_at = time.monotonic() + CA_REREAD_S
                for namespace in namespaces:
                    publisher.forget(namespace)
            try:
                await publisher.sync(namespaces, cert.ca_pem)
            except Exception:  # noqa: BLE001 — a failed round must not end publication; the next one retries
                log.exception("publishing the CA bundle failed; retrying in %.0fs", CA_PUBLISH_INTERVAL_S)
        if webhook is not None:
            try:
                await webhook.sync(cert.ca_pem)
            except Exception:  # noqa: BLE001 — as above: the next round retries
                log.exception("keeping the webhook configuration's caBundle failed; retrying in %.0fs",
                              CA_PUBLISH_INTERVAL_S)
        await asyncio.sleep(CA_PUBLISH_INTERVAL_S)


async def serving_tls(settings: OperatorSettings, kube: KubeClient, metrics: OperatorMetrics, reconciler: Reconciler,
                      stack: contextlib.AsyncExitStack) -> ssl.SSLContext | None:
    if settings.tls == "off":
        log.warning("TLS is off (--tls off): sidecars' tokens and reports travel in clear; use it for local development only")
        return None
    namespace, name = settings.tls_secret_ref
    cert = ServingCert(kube, namespace, name, hosts=settings.tls_host_names, manage=settings.tls == "self-signed",
                       check_interval_s=settings.tls_check_interval_s)
    context = await cert.start()
    metrics.tls_not_after.set_function(lambda: cert.not_after.timestamp())
    renewals = asyncio.create_task(cert.run(), name="serving-cert")
    stack.push_async_callback(_stop, renewals)
    publisher = CaPublisher(kube, name=settings.ca_configmap) if settings.ca_configmap else None
    webhook = WebhookCaBundle(kube, settings.webhook_configuration) if settings.webhook_configuration else None
    if publisher is not None or webhook is not None:
        publishing = asyncio.create_task(_publish_ca_forever(publisher, webhook, cert, reconciler), name="ca-publisher")
        stack.push_async_callback(_stop, publishing)
    log.info("serving TLS with the certificate in Secret %s/%s (%s), valid until %s",
             namespace, name, "managed by this operator" if settings.tls == "self-signed" else "managed elsewhere",
             cert.not_after.isoformat())
    return context


async def start_api(settings: OperatorSettings, kube: KubeClient, reconciler: Reconciler, metrics: OperatorMetrics,
                    stack: contextlib.AsyncExitStack) -> None:
    auth = authenticator(settings, kube, metrics, stack)
    injecting = injection_config(settings) if settings.webhook_configuration else None  # a bad setting fails here, first
    context = await serving_tls(settings, kube, metrics, reconciler, stack)
    admission = admission_handler(injecting, metrics) if injecting is not None else None
    app = build_app(reconciler, metrics, auth=auth, lease_s=settings.lease_s, admission=admission)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, settings.http_host, settings.http_port, ssl_context=context)
    await site.start()
    log.info("sidecar API listening on %s (%s; accepts %s)", ", ".join(str(a) for a in runner.addresses),
             "https" if context else "http", ", ".join(auth.modes))
    if injecting is not None:
        log.info("sidecar injection at POST /mutate-pods (MutatingWebhookConfiguration %s): image %s, sidecars dial %s",
                 settings.webhook_configuration, injecting.image, injecting.operator_url)
