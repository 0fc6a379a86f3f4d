"""The operator with its Firestore mirror on, against the real emulator.

Agent state and incidents written by the real operator appear in Firestore; the
emulator is stopped mid-run (it comes back empty), the agent's state changes while it
is down, and after it returns the final state is there without anyone intervening.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from firestore_emulator import FirestoreEmulator, own_firestore_emulator  # noqa: F401 (fixture)
from google.cloud import firestore
from operator_harness import Kube, OperatorProcess, TelemetryFeed, wait_for

pytestmark = pytest.mark.controlplane

PROJECT = "agentops-operator-test"
COLLECTION = "agents"


def agent(name: str) -> str:
    return json.dumps({
        "apiVersion": "agentops.dev/v1alpha1", "kind": "Agent", "metadata": {"name": name},
        "spec": {"runtime": {"type": "None"}, "health": {"heartbeatTimeout": "30s", "window": "5s", "minSamples": 5}},
    })


@pytest.fixture
def mirrored(own_firestore_emulator: FirestoreEmulator, start_operator: Callable[..., OperatorProcess],
             monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[OperatorProcess, FirestoreEmulator, firestore.Client]]:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", own_firestore_emulator.host)
    operator = start_operator("--status-heartbeat", "2s", "--firestore-project", PROJECT,
                              "--firestore-collection", COLLECTION, "--firestore-max-writes-per-second", "50")
    yield operator, own_firestore_emulator, firestore.Client(project=PROJECT)


def doc(client: firestore.Client, path: str) -> dict[str, Any] | None:
    try:
        snap = client.document(path).get(timeout=3)
    except Exception:  # the emulator is coming back
        return None
    return snap.to_dict() if snap.exists else None


@pytest.mark.timeout(120)
def test_operator_mirrors_state_and_incidents_and_recovers_after_an_outage(
        mirrored: tuple[OperatorProcess, FirestoreEmulator, firestore.Client], kube: Kube, namespace: str) -> None:
    operator, emulator, client = mirrored
    kube.apply(agent("chat"))
    path = f"{COLLECTION}/{namespace}:chat"
    with TelemetryFeed(operator, namespace) as reports:
        reports.set("chat", sick=False)
        wait_for(lambda: (d := doc(client, path)) is not None and d.get("phase") == "Healthy", timeout=30, what="Healthy in Firestore")
        got = doc(client, path)
        assert got is not None and got["namespace"] == namespace and got["name"] == "chat"
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in got["conditions"])

        # Firestore goes away; the agent falls ill and an incident opens meanwhile.
        emulator.stop()
        reports.set("chat", sick=True)
        wait_for(lambda: kube.status("agent", "chat").get("phase") == "Unhealthy", timeout=20, what="Unhealthy while Firestore is down")
        assert operator.metric("agentops_firestore_outages_total") >= 1
        emulator.start()  # back, and empty
        wait_for(lambda: (d := doc(client, path)) is not None and d.get("phase") == "Unhealthy", timeout=60,
                 what="the final state in Firestore after the outage")
        incidents = list(client.collection(f"{path}/incidents").stream())
        # A streamed snapshot always exists, so its to_dict() is never the Optional's None.
        assert [i.id for i in incidents] == ["inc-1"] and incidents[0].to_dict()["state"] == "Open"  # type: ignore[index]

        # Healthy again: the incident ends, and Firestore follows.
        reports.set("chat", sick=False)
        wait_for(lambda: (d := doc(client, f"{path}/incidents/inc-1")) is not None and d.get("state") == "Observed", timeout=30,
                 what="incident end mirrored")
    # A deleted Agent's state document goes; its incidents stay as history.
    kube.delete("agent", "chat")
    wait_for(lambda: doc(client, path) is None, timeout=20, what="state document removed")
    assert doc(client, f"{path}/incidents/inc-1") is not None
