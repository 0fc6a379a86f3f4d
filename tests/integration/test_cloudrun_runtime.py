"""CloudRunRuntime with the real Cloud Run Admin API v2 client (REST) against a local stand-in.

The stand-in (cloudrun_standin.py) records every request, so these tests pin down the
exact wire shape the operator sends, the operation polling, the failure mapping and
the rollback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from cloudrun_standin import CloudRunStandIn, Scenario, service_body
from google.auth.credentials import AnonymousCredentials

from agentops_operator.resources import Key, ObjectRef, RuntimeSpec
from agentops_operator.runtime_cloudrun import (
    RESTART_TOKEN_ANNOTATION,
    RESTARTED_AT_ANNOTATION,
    ROLLED_BACK_TO_ANNOTATION,
    CloudRunRuntime,
)
from agentops_operator.runtimes import RestartOutcome

pytestmark = pytest.mark.timeout(30)

AGENT = ObjectRef("Agent", "agents", Key("team-a", "chat"), "uid-1")
SPEC = RuntimeSpec(type="CloudRun", project="demo", region="europe-west1", service="chat")
NAME = "projects/demo/locations/europe-west1/services/chat"
PATH = f"/v2/{NAME}"
FIRST_REVISION = "chat-00001-abc"
NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
# What the REST transport adds to every Admin API call: JSON with enums as numbers.
CLIENT_QUERY = {"$alt": "json;enum-encoding=int"}
LATEST, REVISION = 1, 2  # TrafficTargetAllocationType as the client encodes it


@pytest.fixture
def api() -> Iterator[CloudRunStandIn]:
    # The operation is still running in the PATCH answer and done at the first poll,
    # which the client makes at once: no waiting between polls.
    with CloudRunStandIn(polls_until_done=1) as standin:
        yield standin


def runtime_for(api: CloudRunStandIn, operation_timeout_s: float = 15.0) -> CloudRunRuntime:
    # An unannotated constructor; the ignore goes once pyproject.toml has untyped_calls_exclude.
    return CloudRunRuntime(endpoint=api.endpoint, credentials=AnonymousCredentials(),
                           operation_timeout_s=operation_timeout_s, request_timeout_s=5.0, clock=lambda: NOW)


def restart(api: CloudRunStandIn, token: str = "tok-1", spec: RuntimeSpec = SPEC, **kwargs: Any) -> RestartOutcome:
    return runtime_for(api, **kwargs).restart(AGENT, spec, token)


def patches(api: CloudRunStandIn) -> list[dict[str, Any]]:
    return [r.body or {} for r in api.calls("PATCH", PATH)]


def test_the_restart_request_changes_only_the_template_annotations(api: CloudRunStandIn) -> None:
    api.add_service("demo", "europe-west1", "chat")
    before = api.service(NAME)

    assert restart(api).ok

    [patch] = api.calls("PATCH")
    assert patch.path == PATH
    assert patch.query == CLIENT_QUERY  # no updateMask, allowMissing or validateOnly: a full replace
    body = patch.body or {}
    assert body["etag"] == before["etag"]
    expected_template = json.loads(json.dumps(before["template"]))
    expected_template["annotations"].update({RESTARTED_AT_ANNOTATION: "2025-03-04T05:06:07Z",
                                             RESTART_TOKEN_ANNOTATION: "tok-1"})
    assert body["template"] == expected_template  # image, env, ports, service account untouched
    assert body["traffic"] == [{"type": LATEST, "percent": 100}]
    assert "name" not in body  # the name travels in the path


def test_the_operation_is_polled_until_done_and_names_the_new_revision(api: CloudRunStandIn) -> None:
    api.add_service("demo", "europe-west1", "chat")
    api.polls_until_done = 2  # still running at the first poll: the client must poll again

    outcome = restart(api)

    assert outcome.ok and outcome.reason == "Restarted", outcome
    ready = api.service(NAME)["latestReadyRevision"]
    assert ready != f"{NAME}/revisions/{FIRST_REVISION}"
    assert outcome.detail is not None and outcome.detail.startswith("chat-00002-")
    assert outcome.detail == ready.rsplit("/", 1)[-1]
    assert outcome.message == f"new revision {outcome.detail} of {NAME} is ready"
    polls = api.calls("GET", "/operations/")
    assert len(polls) == 2 and polls[0].path.startswith("/v2/projects/demo/locations/europe-west1/operations/")


def test_permission_denied_is_final_and_names_the_service(api: CloudRunStandIn) -> None:
    api.add_service("demo", "europe-west1", "chat", scenario="forbidden")

    outcome = restart(api)

    assert (outcome.ok, outcome.reason, outcome.retryable) == (False, "CloudRunPermissionDenied", False)
    assert NAME in outcome.message and "run.services.update" in outcome.message and "actAs" in outcome.message
    assert not api.calls("PATCH")


def test_unknown_service_is_not_found(api: CloudRunStandIn) -> None:
    outcome = restart(api)

    assert (outcome.ok, outcome.reason, outcome.retryable) == (False, "CloudRunServiceNotFound", False)
    assert NAME in outcome.message and "spec.runtime.cloudRun" in outcome.message


def test_an_operation_that_never_finishes_times_out_retryably(api: CloudRunStandIn) -> None:
    api.add_service("demo", "europe-west1", "chat", scenario="hang")

    started = time.monotonic()
    outcome = restart(api, operation_timeout_s=1.5)
    elapsed = time.monotonic() - started

    assert (outcome.ok, outcome.reason, outcome.retryable) == (False, "CloudRunOperationTimeout", True)
    assert "1.5 s" in outcome.message
    assert 1.5 <= elapsed < 4, elapsed  # the whole timeout, plus a request or two
    assert api.calls("GET", "/operations/")


def test_a_retried_call_during_the_earlier_rollout_waits_for_it(api: CloudRunStandIn) -> None:
    api.add_service("demo", "europe-west1", "chat", scenario="hang")
    assert restart(api, operation_timeout_s=0.5).reason == "CloudRunOperationTimeout"
    api.polls_until_done = 2  # still reconciling at the retry's first read
    api.set_scenario(NAME, "normal")

    outcome = restart(api)

    assert outcome.ok, outcome
    assert outcome.detail and api.service(NAME)["latestReadyRevision"].endswith(outcome.detail)
    assert len(patches(api)) == 1 and api.services[NAME].revisions == 2


@pytest.mark.parametrize("scenario", ["revision-fails", "operation-error"])
def test_a_failed_revision_shifts_traffic_back_to_the_previous_one(api: CloudRunStandIn, scenario: Scenario) -> None:
    api.add_service("demo", "europe-west1", "chat", scenario=scenario)

    outcome = restart(api)

    assert (outcome.ok, outcome.reason, outcome.retryable) == (False, "CloudRunRevisionFailed", True)
    assert "failed to start" in outcome.message
    assert outcome.message.endswith(f"traffic was shifted back to {FIRST_REVISION}")
    first, rollback = patches(api)
    assert rollback["traffic"] == [{"type": REVISION, "revision": FIRST_REVISION, "percent": 100}]
    assert rollback["annotations"] == {ROLLED_BACK_TO_ANNOTATION: FIRST_REVISION}
    assert rollback["template"] == first["template"]  # a traffic change, not another revision
    assert api.services[NAME].revisions == 2


def test_without_rollback_a_failed_revision_leaves_traffic_alone(api: CloudRunStandIn) -> None:
    api.add_service("demo", "europe-west1", "chat", scenario="revision-fails")

    outcome = restart(api, spec=replace(SPEC, rollback_on_failure=False))

    assert outcome.reason == "CloudRunRevisionFailed"
    assert "rollbackOnFailure is false" in outcome.message
    assert len(patches(api)) == 1


def test_the_next_restart_lifts_the_operators_own_rollback_pin(api: CloudRunStandIn) -> None:
    api.add_service("demo", "europe-west1", "chat", scenario="revision-fails")
    assert restart(api, token="tok-1").reason == "CloudRunRevisionFailed"
    api.set_scenario(NAME, "normal")

    outcome = restart(api, token="tok-2")

    assert outcome.ok, outcome
    assert f"moved back to latest from the rollback pin on {FIRST_REVISION}" in outcome.message
    last = patches(api)[-1]
    assert last["traffic"] == [{"type": LATEST, "percent": 100}]
    assert ROLLED_BACK_TO_ANNOTATION not in last.get("annotations", {})


def test_a_retried_call_with_the_same_token_creates_no_second_revision(api: CloudRunStandIn) -> None:
    api.add_service("demo", "europe-west1", "chat")
    first = restart(api, token="tok-1")

    again = restart(api, token="tok-1")

    assert first.ok and again.ok and again.detail == first.detail
    assert len(patches(api)) == 1
    assert api.services[NAME].revisions == 2


def test_a_retried_call_after_a_failed_revision_does_not_roll_back_twice(api: CloudRunStandIn) -> None:
    api.add_service("demo", "europe-west1", "chat", scenario="revision-fails")
    restart(api, token="tok-1")

    again = restart(api, token="tok-1")

    assert again.reason == "CloudRunRevisionFailed"
    assert again.message.endswith(f"traffic is already pinned to {FIRST_REVISION}")
    assert len(patches(api)) == 2  # the restart and the first rollback only


def test_an_etag_conflict_is_read_again_and_retried_once(api: CloudRunStandIn) -> None:
    api.add_service("demo", "europe-west1", "chat", scenario="conflict-once")

    assert restart(api).ok
    assert len(patches(api)) == 2
    assert len(api.calls("GET", PATH)) == 2


def test_a_fixed_revision_name_is_cleared(api: CloudRunStandIn) -> None:
    template = service_body(NAME)["template"] | {"revision": "chat-pinned-name"}
    api.add_service("demo", "europe-west1", "chat", template=template)

    assert restart(api).ok
    assert "revision" not in patches(api)[0]["template"]


@pytest.mark.parametrize("key_file", [None, "missing-key.json"])
def test_missing_credentials_are_reported_without_calling_the_api(
        api: CloudRunStandIn, tmp_path: Path, key_file: str | None) -> None:
    # google.auth reads NO_GCE_CHECK when imported, so the lookup runs in its own process
    # with nothing to find: no key file, no gcloud configuration, no metadata server.
    env = {k: v for k, v in os.environ.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"}
    env |= {"HOME": str(tmp_path), "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "NO_GCE_CHECK": "true",
            "GCE_METADATA_HOST": "127.0.0.1:1", "GCE_METADATA_IP": "127.0.0.1:1"}
    if key_file:
        env["GOOGLE_APPLICATION_CREDENTIALS"] = str(tmp_path / key_file)
    script = (
        "import json, sys\n"
        "from dataclasses import asdict\n"
        "from agentops_operator.resources import Key, ObjectRef, RuntimeSpec\n"
        "from agentops_operator.runtime_cloudrun import CloudRunRuntime\n"
        "spec = RuntimeSpec(type='CloudRun', project='demo', region='europe-west1', service='chat')\n"
        "agent = ObjectRef('Agent', 'agents', Key('team-a', 'chat'), 'uid-1')\n"
        "outcome = CloudRunRuntime(endpoint=sys.argv[1]).restart(agent, spec, 'tok-1')\n"
        "print(json.dumps(asdict(outcome)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, api.endpoint], env=env, capture_output=True, text=True,
                          timeout=25)

    assert proc.returncode == 0, proc.stderr
    outcome = RestartOutcome(**json.loads(proc.stdout))
    assert (outcome.ok, outcome.reason, outcome.retryable) == (False, "CloudRunCredentialsMissing", False)
    assert "Application Default Credentials" in outcome.message and "workload identity" in outcome.message
    assert not api.requests
    assert asdict(outcome)["detail"] is None
