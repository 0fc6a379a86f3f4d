"""Bad requests to the operator's sidecar API get the right 4xx with a message that
says what was wrong — and leave every bit of state as it was."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from operator_harness import Kube, OperatorProcess, agent_manifest, report, wait_for


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(base))  # a deep copy
    for path, value in changes.items():
        target = body
        *parents, leaf = path.split("__")
        for p in parents:
            target = target[p]
        if value is _DROP:
            del target[leaf]
        else:
            target[leaf] = value
    return body


_DROP = object()

# (id, body transformer, expected status, substring of the error message)
BAD_BODIES = [
    ("wrong-type-requests", lambda b: _with(b, requests="many"), 422, "requests: must be an integer"),
    ("bool-count", lambda b: _with(b, requests=True), 422, "requests: must be an integer"),
    ("negative", lambda b: _with(b, requests=-1), 422, "requests: must be between 0"),
    ("missing-field", lambda b: _with(b, probes=_DROP), 422, "probes: is required"),
    ("unknown-field", lambda b: _with(b, colour="red"), 422, "colour: unknown field"),
    ("errors-exceed-requests", lambda b: _with(b, errors={"http5xx": 99}), 422, "errors: count 99 exceeds requests 20"),
    ("unknown-error-class", lambda b: _with(b, errors={"oops": 1}), 422, "errors.oops: unknown error class"),
    ("bad-bucket", lambda b: _with(b, latencyMs={"buckets": {"fast": 1}}), 422, "bucket bound 'fast'"),
    ("window-zero", lambda b: _with(b, windowSeconds=0), 422, "windowSeconds: must be more than 0"),
    ("agent-not-object", lambda b: _with(b, agent="chat"), 422, "agent: must be an object"),
    ("not-an-object", lambda b: [1, 2, 3], 422, "report: must be an object"),
    ("unknown-agent", lambda b: _with(b, agent__name="ghost"), 404, "does not exist"),
]


@pytest.fixture
def agent(operator: OperatorProcess, kube: Kube) -> dict[str, Any]:
    kube.apply(agent_manifest("chat"))
    return wait_for(lambda: (s := kube.status("agent", "chat")).get("phase") and s, what="initial status")


def _assert_untouched(operator: OperatorProcess, kube: Kube, before: dict[str, Any]) -> None:
    assert operator.metric("agentops_telemetry_reports_total", result="accepted") == 0
    after = kube.status("agent", "chat")
    assert after["phase"] == "Unknown"
    assert after == before
    # The agent still takes good reports afterwards: one bad request broke nothing.
    assert operator.post_telemetry(report("chat", kube.namespace)).status_code == 202
    wait_for(lambda: kube.status("agent", "chat").get("phase") == "Healthy", what="Healthy after a good report")


@pytest.mark.parametrize("case", BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_invalid_reports_are_refused_with_the_field_named(operator: OperatorProcess, kube: Kube, agent: dict[str, Any], case: Any) -> None:
    _, transform, status, message = case
    r = operator.post_telemetry(transform(report("chat", kube.namespace)))
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    _assert_untouched(operator, kube, agent)


def test_transport_level_refusals(operator: OperatorProcess, kube: Kube, agent: dict[str, Any]) -> None:
    url = "/v1/telemetry"
    good = json.dumps(report("chat", kube.namespace))
    json_type = {"Content-Type": "application/json"}

    r = operator.post(url, data=good, headers=json_type, timeout=5)
    assert r.status_code == 401 and "missing Authorization" in r.json()["error"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")

    r = operator.post(url, data=good, headers={**json_type, "Authorization": "Bearer not-the-token"}, timeout=5)
    assert r.status_code == 401 and "not a JWT" in r.json()["error"]

    r = operator.post(url, data="{not json", headers={**json_type, **operator.headers}, timeout=5)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]

    r = operator.post(url, data=good, headers={"Content-Type": "text/plain", **operator.headers}, timeout=5)
    assert r.status_code == 415 and "application/json" in r.json()["error"]

    r = operator.post(url, data=b"{" + b" " * (300 * 1024) + b"}", headers={**json_type, **operator.headers}, timeout=5)
    assert r.status_code == 413 and "larger than" in r.json()["error"]

    r = operator.get(url, headers=operator.headers, timeout=5)
    assert r.status_code == 405

    r = operator.get(f"/v1/assignments/{kube.namespace}/chat", params={"wait": "999"}, headers=operator.headers, timeout=5)
    assert r.status_code == 400 and "wait must be between" in r.json()["error"]
    r = operator.get(f"/v1/assignments/{kube.namespace}/ghost", headers=operator.headers, timeout=5)
    assert r.status_code == 404 and "does not exist" in r.json()["error"]
    r = operator.get(f"/v1/assignments/{kube.namespace}/chat", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert r.status_code == 401

    # /healthz and /metrics are open (no secrets in them); everything above changed nothing.
    assert operator.get("/healthz", timeout=5).text == "ok"
    assert operator.metric("agentops_telemetry_reports_total", result="malformed") == 1
    _assert_untouched(operator, kube, agent)
