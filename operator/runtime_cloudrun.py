"""Restart an agent that runs as a Cloud Run service: roll out a new revision.

Cloud Run has no restart call. A change to a service's revision template makes Cloud
Run create a new revision and, with traffic on "latest" (the latest *ready*
revision), move traffic to it once it is ready — the no-op redeploy that
`gcloud run services update` does with a changed annotation. So a restart is: read
the service (Admin API v2), stamp two template annotations (the time and the restart
token), update it, and wait on the long-running operation with a timeout.

Trade-offs:
- Annotations, not labels: label values are restricted (63 lowercase characters) and
  labels flow into billing; an annotation takes any string.
- The token makes a retried call idempotent: when the template already carries it the
  earlier update is awaited (through the service's `reconciling` flag: the earlier
  operation's name went with the earlier call) instead of creating another revision.
- The update sends the service as read, etag included: a concurrent writer makes it
  fail with 409/412, and one re-read and retry settles the common case without
  overwriting anybody's change.
- A failed revision already gets no traffic under "latest". The rollback pins traffic
  to the previous ready revision so the failed one cannot take over should it turn
  ready later (a flapping dependency). The pin is marked with a service annotation so
  that the next restart routes traffic back to latest; a pin someone else set stays.
- One client, created at first use (an operator without Cloud Run agents never needs
  Google credentials) and shared by the worker threads; the lock guards its creation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import google.auth.credentials
import requests
from google.api_core import exceptions as api_errors
from google.auth import exceptions as auth_errors
from google.cloud import run_v2

from agentops.times import format_time
from agentops_operator.resources import ObjectRef, RuntimeSpec
from agentops_operator.runtimes import RestartOutcome

log = logging.getLogger(__name__)

RESTARTED_AT_ANNOTATION = "agentops.dev/restartedAt"
RESTART_TOKEN_ANNOTATION = "agentops.dev/restart-token"
# On the service (not its template, so setting it creates no revision): the revision
# this operator pinned traffic to after a failed restart.
ROLLED_BACK_TO_ANNOTATION = "agentops.dev/rolled-back-to"

# Waiting for an operation or a rollout: revisions take seconds to minutes, so poll
# from 1 s (where the client library's own LRO polling starts) backing off to 10 s.
# Polled here rather than by `operation.result(timeout=)`, whose jittered sleeps give up
# as soon as the next one would pass the deadline, up to 20 s before the timeout.
POLL_FIRST_S = 1.0
POLL_MAX_S = 10.0

_CONFLICTS = (api_errors.Conflict, api_errors.PreconditionFailed, api_errors.FailedPrecondition)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class CloudRunRuntime:
    """`RuntimeBackend` for `spec.runtime.type: CloudRun`; blocking, safe to share between threads.

    endpoint: Admin API endpoint override ("http://127.0.0.1:PORT", a private endpoint);
      None means the client library's default (public) endpoint.
    credentials: None resolves Application Default Credentials (workload identity on
      GKE) at the first restart.
    operation_timeout_s: how long to wait for the new revision (and for a rollback).
    request_timeout_s: per API request (read, update).
    clock: the time written into the restartedAt annotation.
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        credentials: google.auth.credentials.Credentials | None = None,
        operation_timeout_s: float = 300.0,
        request_timeout_s: float = 30.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._endpoint = endpoint
        self._credentials = credentials
        self._operation_timeout_s = operation_timeout_s
        self._request_timeout_s = request_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._services: Any = None  # run_v2.ServicesClient, created by _client()

    def restart(self, agent: ObjectRef, runtime: RuntimeSpec, token: str) -> RestartOutcome:
        invalid = _invalid_spec(runtime)
        if invalid is not None:
            return invalid
        name = f"projects/{runtime.project}/locations/{runtime.region}/services/{runtime.service}"
        try:
            return self._restart(self._client(), name, runtime, token)
        except Exception as exc:  # every failure is an outcome the operator reports, never a crash
            log.info("restart of %s for %s failed: %r", name, agent.key, exc)
            return outcome_for_error(exc, name, operation_timeout_s=self._operation_timeout_s)

    # --- steps ---------------------------------------------------------------------

    def _client(self) -> Any:
        with self._lock:
            if self._services is None:
                # Not cached on failure: credentials may appear later (a workload identity binding).
                self._services = run_v2.ServicesClient(
                    transport="rest",
                    credentials=self._credentials,
                    client_options={"api_endpoint": self._endpoint} if self._endpoint else None,
                )
            return self._services

    def _restart(self, client: Any, name: str, runtime: RuntimeSpec, token: str) -> RestartOutcome:
        service = self._get(client, name)
        previous = _short(service.latest_ready_revision)
        failure: str | None = None
        unpinned = ""
        if service.template.annotations.get(RESTART_TOKEN_ANNOTATION) == token:
            service = self._await_reconciled(client, name, service)
        else:
            unpinned = _pin_of(service) or ""
            operation = self._update(client, name, service, lambda s: _stamp(s, token, self._clock()))
            service, failure = self._wait(operation)
        created = _short(service.latest_created_revision) if service is not None else ""
        if failure is None and service is not None and _is_ready(service):
            note = f"; traffic moved back to latest from the rollback pin on {unpinned}" if unpinned else ""
            return RestartOutcome.done(f"new revision {created} of {name} is ready{note}", detail=created)
        why = failure or _condition_text(service)
        shifted = self._after_failure(client, name, runtime, previous, created)
        # Retryable: a revision can fail for reasons outside its template (a dependency
        # down at start-up, a quota, a regional incident), and a later restart builds a
        # fresh revision; the healing policy's attempt limit and backoff bound the cost.
        return RestartOutcome.failed(
            "CloudRunRevisionFailed",
            f"new revision {created or '(unknown)'} of {name} did not become ready: {why}; {shifted}",
            retryable=True,
        )

    def _get(self, client: Any, name: str) -> Any:
        return client.get_service(name=name, timeout=self._request_timeout_s)

    def _update(self, client: Any, name: str, service: Any, change: Callable[[Any], None]) -> Any:
        """update_service with `change` applied; after an etag conflict, re-read once and apply it again."""
        change(service)
        try:
            return client.update_service(request=run_v2.UpdateServiceRequest(service=service),
                                         timeout=self._request_timeout_s)
        except _CONFLICTS as exc:
            log.info("update of %s conflicted (%s); reading it again", name, exc.message)
        service = self._get(client, name)
        change(service)
        return client.update_service(request=run_v2.UpdateServiceRequest(service=service),
                                     timeout=self._request_timeout_s)

    def _poll_until(self, finished: Callable[[], bool], what: str) -> None:
        """Call `finished` (one request) until it is true; TimeoutError after operation_timeout_s."""
        deadline = time.monotonic() + self._operation_timeout_s
        delay = POLL_FIRST_S
        while not finished():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{what} did not finish within {self._operation_timeout_s:g} s")
            time.sleep(min(delay, remaining))
            delay = min(delay * 1.5, POLL_MAX_S)

    def _finish(self, operation: Any) -> Any:
        """The operation's result (the service as updated); raises the operation's error."""
        self._poll_until(operation.done, f"operation {operation.operation.name}")
        # Done, so the result is already there; the timeout only guards against a surprise.
        return operation.result(timeout=self._request_timeout_s)

    def _wait(self, operation: Any) -> tuple[Any, str | None]:
        """The service the operation left, and why the operation failed (None: it did not)."""
        try:
            return self._finish(operation), None
        except api_errors.GoogleAPICallError as exc:
            if not operation.operation.done:
                raise  # polling the operation failed, not the operation
            # The operation's metadata is the service as Cloud Run last reported it.
            return operation.metadata, f"the update operation failed: {exc.message}"

    def _await_reconciled(self, client: Any, name: str, service: Any) -> Any:
        """The service once Cloud Run has finished acting on the earlier update (a retried call)."""
        if not service.reconciling:
            return service
        self._poll_until(lambda: not self._get(client, name).reconciling, f"the rollout of {name}")
        return self._get(client, name)

    def _after_failure(self, client: Any, name: str, runtime: RuntimeSpec, previous: str, created: str) -> str:
        """Pin traffic to the previous ready revision if asked to; say what happened to traffic."""
        if not runtime.rollback_on_failure:
            return "traffic left as it was (rollbackOnFailure is false)"
        if not previous or previous == created:
            return "there is no earlier ready revision to shift traffic back to"
        try:
            service = self._get(client, name)
            if _pin_of(service) == previous:
                return f"traffic is already pinned to {previous}"
            self._finish(self._update(client, name, service, lambda s: _pin(s, previous)))
        except Exception as exc:  # the restart's outcome stands; the rollback's fate is part of its message
            log.warning("rollback of %s to %s failed: %r", name, previous, exc)
            why = outcome_for_error(exc, name, operation_timeout_s=self._operation_timeout_s).message
            return f"shifting traffic back to {previous} failed: {why}"
        log.info("rolled %s back to %s", name, previous)
        return f"traffic was shifted back to {previous}"


# --- pure helpers --------------------------------------------------------------------


def _invalid_spec(runtime: RuntimeSpec) -> RestartOutcome | None:
    missing = [f"spec.runtime.cloudRun.{field}" for field in ("project", "region", "service")
               if not getattr(runtime, field)]
    if not missing:
        return None
    return RestartOutcome.failed(
        "CloudRunSpecInvalid",
        f"a CloudRun runtime needs {', '.join(missing)}: set the Cloud Run service's project, region and name",
        retryable=False,
    )


def _short(revision: str) -> str:
    """`projects/p/locations/l/services/s/revisions/s-00002-abc` -> `s-00002-abc` (traffic targets use the short name)."""
    return revision.rsplit("/", 1)[-1]


def _stamp(service: Any, token: str, now: datetime) -> None:
    """The template change that makes Cloud Run roll out a new revision."""
    annotations = service.template.annotations
    annotations[RESTARTED_AT_ANNOTATION] = format_time(now)
    annotations[RESTART_TOKEN_ANNOTATION] = token
    # A fixed revision name would make the new revision a duplicate of the current one.
    service.template.revision = ""
    if _pin_of(service):
        service.traffic = [run_v2.TrafficTarget(
            type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, percent=100)]
    if ROLLED_BACK_TO_ANNOTATION in service.annotations:
        del service.annotations[ROLLED_BACK_TO_ANNOTATION]


def _pin(service: Any, revision: str) -> None:
    service.traffic = [run_v2.TrafficTarget(
        type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION,
        revision=revision, percent=100)]
    service.annotations[ROLLED_BACK_TO_ANNOTATION] = revision


def _pin_of(service: Any) -> str | None:
    """The revision this operator pinned all traffic to, if that pin still stands."""
    marked = service.annotations.get(ROLLED_BACK_TO_ANNOTATION)
    traffic = list(service.traffic)
    if not marked or len(traffic) != 1:
        return None
    target = traffic[0]
    by_revision = target.type_ == run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
    return str(marked) if by_revision and target.revision == marked and target.percent == 100 else None


def _is_ready(service: Any) -> bool:
    created = service.latest_created_revision
    return bool(created) and service.latest_ready_revision == created and (
        service.terminal_condition.state == run_v2.Condition.State.CONDITION_SUCCEEDED)


def _condition_text(service: Any) -> str:
    if service is None:
        return "Cloud Run reported no state"
    condition = service.terminal_condition
    state = run_v2.Condition.State(condition.state).name
    return f"{condition.type_ or 'Ready'} is {state}" + (f": {condition.message}" if condition.message else "")


def _credential_text(exc: Any) -> str:
    # A refresh error's first argument is Google's explanation; later ones may carry the token response.
    if isinstance(exc, api_errors.GoogleAPICallError):
        return str(exc.message)
    return str(exc.args[0]) if exc.args else type(exc).__name__


# Failure kind -> (reason, retryable, message from (exception, service, operation timeout)).
# First match wins, so a specific kind comes before the kind it derives from.
_Explain = Callable[[Any, str, float], str]
_FAILURES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str, bool, _Explain], ...] = (
    (auth_errors.DefaultCredentialsError, "CloudRunCredentialsMissing", False, lambda e, s, t: (
        f"no Google credentials to manage Cloud Run service {s}: {e}. Set up Application Default Credentials "
        "for the operator: workload identity on GKE (bind its Kubernetes ServiceAccount to a Google service "
        "account), or GOOGLE_APPLICATION_CREDENTIALS pointing at a mounted key file")),
    (api_errors.Forbidden, "CloudRunPermissionDenied", False, lambda e, s, t: (
        f"the operator's Google identity may not update Cloud Run service {s} ({e.message}): grant it "
        "run.services.get and run.services.update on the service (e.g. roles/run.developer) and "
        "iam.serviceAccounts.actAs on the service's runtime service account (roles/iam.serviceAccountUser)")),
    (api_errors.NotFound, "CloudRunServiceNotFound", False, lambda e, s, t: (
        f"Cloud Run service {s} does not exist: check spec.runtime.cloudRun.project, .region and .service")),
    ((api_errors.Unauthenticated, auth_errors.RefreshError), "CloudRunCredentialsRejected", False, lambda e, s, t: (
        f"Google rejected the operator's credentials for Cloud Run service {s} ({_credential_text(e)}): check "
        "the workload identity binding or the key file behind GOOGLE_APPLICATION_CREDENTIALS")),
    ((TimeoutError, api_errors.RetryError, api_errors.DeadlineExceeded), "CloudRunOperationTimeout", True,
     lambda e, s, t: (f"the update of Cloud Run service {s} did not finish within {t:g} s; Cloud Run may "
                      "still be rolling it out (see the service's revisions)")),
    (api_errors.GoogleAPICallError, "CloudRunApiError", True, lambda e, s, t: (
        f"the Cloud Run Admin API failed on service {s}: {e.code} {e.message}")),
    ((requests.RequestException, auth_errors.TransportError), "CloudRunApiError", True, lambda e, s, t: (
        f"could not reach the Cloud Run Admin API for service {s}: {e}")),
)


def outcome_for_error(exc: BaseException, service: str, *, operation_timeout_s: float) -> RestartOutcome:
    """What a failed call means for the operator: a reason, a message to act on, retry or not."""
    for kinds, reason, retryable, explain in _FAILURES:
        if isinstance(exc, kinds):
            # google-auth marks the errors worth retrying (a busy metadata server, say).
            retry = retryable or (isinstance(exc, auth_errors.GoogleAuthError) and bool(exc.retryable))
            return RestartOutcome.failed(reason, explain(exc, service, operation_timeout_s), retryable=retry)
    return RestartOutcome.failed("CloudRunError", f"restarting Cloud Run service {service} failed: "
                                 f"{type(exc).__name__}: {exc}", retryable=True)
