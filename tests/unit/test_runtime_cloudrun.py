"""agentops_operator.runtime_cloudrun: failures the stand-in cannot easily produce, mapped to outcomes."""

from __future__ import annotations

import concurrent.futures

import pytest
import requests
from google.api_core import exceptions as api_errors
from google.auth import exceptions as auth_errors

from agentops_operator.resources import Key, ObjectRef, RuntimeSpec
from agentops_operator.runtime_cloudrun import CloudRunRuntime, outcome_for_error

SERVICE = "projects/demo/locations/europe-west1/services/chat"


# The Google exception classes have unannotated constructors: pyproject.toml lists their
# modules under mypy's untyped_calls_exclude.
@pytest.mark.parametrize(("exc", "reason", "retryable"), [
    (api_errors.PermissionDenied("denied"), "CloudRunPermissionDenied", False),
    (api_errors.Forbidden("denied"), "CloudRunPermissionDenied", False),
    (api_errors.NotFound("gone"), "CloudRunServiceNotFound", False),
    (api_errors.Unauthenticated("bad token"), "CloudRunCredentialsRejected", False),
    (auth_errors.RefreshError("invalid_grant", {"id_token": "secret"}), "CloudRunCredentialsRejected", False),
    (auth_errors.RefreshError("metadata server busy", retryable=True), "CloudRunCredentialsRejected", True),
    (auth_errors.DefaultCredentialsError("none found"), "CloudRunCredentialsMissing", False),
    (concurrent.futures.TimeoutError(), "CloudRunOperationTimeout", True),
    (api_errors.RetryError("gave up", None), "CloudRunOperationTimeout", True),
    (api_errors.DeadlineExceeded("slow"), "CloudRunOperationTimeout", True),
    (api_errors.ServiceUnavailable("try later"), "CloudRunApiError", True),
    (api_errors.InternalServerError("oops"), "CloudRunApiError", True),
    (requests.ConnectionError("refused"), "CloudRunApiError", True),
    (ValueError("surprise"), "CloudRunError", True),
])
def test_each_failure_has_a_reason(exc: BaseException, reason: str, retryable: bool) -> None:
    outcome = outcome_for_error(exc, SERVICE, operation_timeout_s=300)
    assert (outcome.ok, outcome.reason, outcome.retryable) == (False, reason, retryable)
    assert SERVICE in outcome.message


def test_a_refresh_error_never_echoes_the_token_response() -> None:
    outcome = outcome_for_error(auth_errors.RefreshError("invalid_grant", {"access_token": "ya29.secret"}),
                                SERVICE, operation_timeout_s=300)
    assert "invalid_grant" in outcome.message and "secret" not in outcome.message


def test_a_spec_without_project_region_or_service_names_the_fields() -> None:
    agent = ObjectRef("Agent", "agents", Key("team-a", "chat"), "uid-1")
    outcome = CloudRunRuntime().restart(agent, RuntimeSpec(type="CloudRun", project="demo"), "tok-1")
    assert (outcome.ok, outcome.reason, outcome.retryable) == (False, "CloudRunSpecInvalid", False)
    assert "spec.runtime.cloudRun.region" in outcome.message and "spec.runtime.cloudRun.service" in outcome.message
    assert "spec.runtime.cloudRun.project" not in outcome.message
