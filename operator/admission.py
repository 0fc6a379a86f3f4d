"""The sidecar-injection webhook: an AdmissionReview (admission.k8s.io/v1) in, a JSONPatch out.

POST /mutate-pods on the operator's own API server. Served there rather than by kopf's
admission support because the operator already serves TLS with a certificate it renews
and reloads in place (serving_cert.ServingCert) from a CA it publishes: the webhook gets
the same certificate, the same rotation, and the configuration's caBundle is kept equal
to that same CA (webhook_config.WebhookCaBundle). kopf's webhook server would bring a
second certificate of its own (self-signed per start, or a tunnel for development).

Fail-open: every review that parses is answered `allowed: true`, with the patch when
`injection.decide` injects and without one otherwise; a review that does not parse gets
a 400, which the API server counts as a failed call and, with `failurePolicy: Ignore`,
admits the pod unchanged. Nothing here can refuse a pod. What the pod could do about a
refusal to inject goes back as the review's `warnings` (kubectl prints them).

Not behind the bearer-token check of /v1/*: the caller is the API server, which sends no
token. Anyone who reaches the port may ask what a pod would be given, and learns only
what every injected pod shows (image, ports, the operator's URL); no state changes.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from aiohttp import web

from agentops.errors import ConfigError
from agentops_operator.injection import Decision, InjectionConfig, decide
from agentops_operator.metrics import OperatorMetrics
from agentops_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

PATH = "/mutate-pods"
REVIEW_API_VERSION = "admission.k8s.io/v1"
# The API server takes request bodies up to 3 MiB (etcd stores objects up to 1.5 MiB): a
# review carries the pod once (oldObject is null on CREATE) plus the requester, so 4 MiB
# admits every real pod where the API's own 256 KiB limit would not.
MAX_REVIEW_BYTES = 4 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.Response]]


class AdmissionResponse(TypedDict):
    uid: str
    allowed: bool
    patchType: NotRequired[str]
    patch: NotRequired[str]  # base64 of the JSON array of RFC 6902 operations
    warnings: NotRequired[list[str]]


class AdmissionReviewAnswer(TypedDict):
    apiVersion: str
    kind: str
    response: AdmissionResponse


class InvalidReview(ValueError):
    """The body is not an admission.k8s.io/v1 AdmissionReview request; the message says what is wrong."""


@dataclass(frozen=True)
class PodReview:
    """What the webhook reads of one review."""

    uid: str
    namespace: str
    operation: str
    dry_run: bool
    pod: Mapping[str, Any] | None  # None: not a pod (another resource or a subresource)


def parse_review(payload: Any) -> PodReview:
    """The request of an AdmissionReview; InvalidReview names the first field that is wrong."""
    if not isinstance(payload, dict):
        raise InvalidReview("the body must be a JSON object (an AdmissionReview)")
    if payload.get("apiVersion") != REVIEW_API_VERSION or payload.get("kind") != "AdmissionReview":
        raise InvalidReview(f"apiVersion/kind must be {REVIEW_API_VERSION}/AdmissionReview, got "
                            f"{payload.get('apiVersion')!r}/{payload.get('kind')!r} (admissionReviewVersions: [v1])")
    request = payload.get("request")
    if not isinstance(request, dict):
        raise InvalidReview("request must be an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise InvalidReview("request.uid must be a non-empty string")
    resource = request.get("resource") or {}
    is_pod = (isinstance(resource, dict) and (resource.get("group", ""), resource.get("resource")) == ("", "pods")
              and not request.get("subResource"))
    pod = request.get("object")
    operation = str(request.get("operation") or "")
    if is_pod and operation == "CREATE" and not isinstance(pod, dict):
        raise InvalidReview("request.object must be the Pod being created")
    return PodReview(uid=uid, namespace=str(request.get("namespace") or ""), operation=operation,
                     dry_run=bool(request.get("dryRun")), pod=pod if is_pod and isinstance(pod, dict) else None)


def review_answer(uid: str, decision: Decision | None) -> AdmissionReviewAnswer:
    """Allowed, always; with the decision's patch and warnings (None: nothing decided, nothing to add)."""
    response = AdmissionResponse(uid=uid, allowed=True)
    if decision is not None:
        if decision.patch is not None:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(decision.patch, separators=(",", ":")).encode()).decode("ascii")
        if decision.warnings:
            response["warnings"] = list(decision.warnings)
    return AdmissionReviewAnswer(apiVersion=REVIEW_API_VERSION, kind="AdmissionReview", response=response)


def _pod_name(pod: Mapping[str, Any]) -> str:
    # A controller's pod has no name yet at admission, only the prefix of the one it will get.
    meta = pod.get("metadata") or {}
    return str(meta.get("name") or f"{meta.get('generateName') or ''}*")


def admission_handler(config: InjectionConfig, metrics: OperatorMetrics) -> Handler:
    """The aiohttp handler of POST /mutate-pods, injecting with `config`."""

    def answer(review: PodReview) -> tuple[AdmissionReviewAnswer, str]:
        if review.pod is None or review.operation != "CREATE":
            return review_answer(review.uid, None), "skipped"
        try:
            decision = decide(review.pod, review.namespace, config)
        except Exception:  # noqa: BLE001 — a bug here must not keep a pod out: admit it unchanged
            log.exception("deciding the sidecar injection of pod %s/%s failed; admitted without the sidecar",
                          review.namespace, _pod_name(review.pod))
            return review_answer(review.uid, None), "error"
        where = f"{review.namespace}/{_pod_name(review.pod)}"
        dry = " (dry run)" if review.dry_run else ""
        if decision.injected:
            log.info("injecting the sidecar into pod %s for agent %s%s", where, decision.agent, dry)
            return review_answer(review.uid, decision), "injected"
        # Refusals the pod's author can act on are worth a line; "opted out" and "already injected" are not.
        (log.info if decision.warnings else log.debug)("pod %s admitted without the sidecar: %s%s", where,
                                                       decision.reason, dry)
        return review_answer(review.uid, decision), "skipped"

    async def mutate_pods(request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            try:
                raw = await request.clone(client_max_size=MAX_REVIEW_BYTES).read()
                review = parse_review(json.loads(raw))
            except web.HTTPRequestEntityTooLarge:
                metrics.admission_reviews.labels(result="invalid").inc()
                return web.json_response({"error": f"admission review larger than {MAX_REVIEW_BYTES} bytes"}, status=413)
            except (json.JSONDecodeError, UnicodeDecodeError, InvalidReview) as exc:
                metrics.admission_reviews.labels(result="invalid").inc()
                log.warning("malformed admission review from %s: %s", request.remote, exc)
                return web.json_response({"error": f"not an {REVIEW_API_VERSION} AdmissionReview request: {exc}"},
                                         status=400)
            body, result = answer(review)
            metrics.admission_reviews.labels(result=result).inc()
            return web.json_response(body)
        finally:
            metrics.admission_seconds.observe(time.perf_counter() - started)

    return mutate_pods


def injection_config(settings: OperatorSettings) -> InjectionConfig:
    """What injected sidecars get, from the operator's settings: its image, URL, audience and CA ConfigMap."""
    try:
        return InjectionConfig(
            image=settings.sidecar_image,
            operator_url=settings.sidecar_operator_address,
            audience=settings.token_audience,
            # Off (None) means someone else publishes the CA: under the name the sidecars expect.
            ca_configmap=settings.ca_configmap or InjectionConfig.ca_configmap,
        )
    except ValueError as exc:
        raise ConfigError(f"sidecar injection: {exc}") from exc
