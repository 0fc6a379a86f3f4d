"""Faults on the real control plane with the real operator: applied with kubectl,
activated, expired, deleted — also while the operator is down."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Any

from operator_harness import Kube, OperatorProcess, agent_manifest, fault_manifest, wait_for


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _fault_names(assignment: dict[str, Any]) -> list[str]:
    return [f["name"] for f in assignment["faults"]]


def test_fault_becomes_active_then_expires(operator: OperatorProcess, kube: Kube) -> None:
    kube.apply(agent_manifest("chat"))
    kube.apply(fault_manifest("slow", agent="chat", duration="3s"))

    status = wait_for(lambda: (s := kube.status("fault", "slow")).get("phase") == "Active" and s, what="Active")
    started, expires = _parse(status["startedAt"]), _parse(status["expiresAt"])
    assert (expires - started).total_seconds() == 3
    assert status["targets"] == ["chat"]
    assert status["targetSummary"] == "chat"
    assert status["observedGeneration"] == 1
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Active"]["status"] == "True"
    assert conditions["TargetsResolved"]["reason"] == "TargetsFound"

    # The assignment carries everything the sidecar needs, including its own expiry.
    (fault,) = operator.assignments("chat")["faults"]
    assert fault["type"] == "Latency"
    assert fault["latency"] == {"delayMs": 2500, "jitterMs": 0}
    assert fault["percentage"] == 100
    assert fault["expiresAt"] == status["expiresAt"]

    ended = wait_for(lambda: (s := kube.status("fault", "slow")).get("phase") == "Expired" and s, timeout=10, what="Expired")
    assert _parse(ended["endedAt"]) >= expires
    assert operator.assignments("chat")["faults"] == []
    reasons = wait_for(lambda: (r := kube.event_reasons("slow")) >= {"FaultActivated", "FaultExpired"} and r, what="events")
    assert "FaultActivated" in reasons

    # The Agent showed the fault while it was active and drops it afterwards.
    agent = wait_for(lambda: (s := kube.status("agent", "chat")).get("activeFaultCount") == 0 and s, what="agent fault count back to 0")
    assert agent["activeFaults"] == []


def test_deleting_an_active_fault_releases_a_waiting_sidecar_at_once(operator: OperatorProcess, kube: Kube) -> None:
    kube.apply(agent_manifest("chat"))
    kube.apply(fault_manifest("slow", agent="chat", duration="10m"))
    held = wait_for(lambda: (a := operator.assignments("chat"))["faults"] and a, what="fault assigned")
    assert _fault_names(held) == ["slow"]

    # A sidecar long-polls with the version it holds; the deletion must answer it,
    # not the end of its 30 s wait.
    result: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        result["answer"] = operator.assignments("chat", version=held["version"], wait=30)
        result["seconds"] = time.monotonic() - started

    waiter = threading.Thread(target=poll)
    waiter.start()
    kube.delete("fault", "slow")
    waiter.join(timeout=35)
    assert result["answer"]["faults"] == []
    assert result["answer"]["version"] != held["version"]
    assert result["seconds"] < 20, "the long poll was answered by its timeout, not by the deletion"


def test_fault_deleted_while_operator_is_stopped_is_not_assigned_after_restart(operator: OperatorProcess, kube: Kube) -> None:
    kube.apply(agent_manifest("chat"))
    kube.apply(fault_manifest("slow", agent="chat", duration="10m"))
    wait_for(lambda: _fault_names(operator.assignments("chat")) == ["slow"], what="fault assigned")

    operator.stop()
    kube.delete("fault", "slow")
    operator.start()

    assert operator.assignments("chat")["faults"] == []
    # And no finalizer or annotation of ours was needed for that.
    assert kube.cluster.kubectl("get", "faults", "-n", kube.namespace, "-o", "name").stdout.strip() == ""


def test_fault_whose_expiry_passed_while_operator_was_down_is_expired_on_resume(operator: OperatorProcess, kube: Kube) -> None:
    kube.apply(agent_manifest("chat"))
    kube.apply(fault_manifest("short", agent="chat", duration="6s"))
    active = wait_for(lambda: (s := kube.status("fault", "short")).get("phase") == "Active" and s, what="Active")

    operator.stop()
    expires = _parse(active["expiresAt"])
    wait_for(lambda: datetime.now(timezone.utc) > expires, timeout=15, what="expiry to pass")
    assert kube.status("fault", "short")["phase"] == "Active"  # nobody ended it meanwhile
    operator.start()

    ended = wait_for(lambda: (s := kube.status("fault", "short")).get("phase") == "Expired" and s, timeout=10, what="Expired after resume")
    assert "expired at" in ended["message"]
    assert operator.assignments("chat")["faults"] == []


def test_missing_target_waits_with_a_clear_reason_and_starts_when_the_agent_appears(operator: OperatorProcess, kube: Kube) -> None:
    kube.apply(fault_manifest("early", agent="later", duration="5m"))
    condition = wait_for(lambda: kube.condition("fault", "early", "TargetsResolved") or None, what="TargetsResolved condition")
    assert condition["status"] == "False"
    assert condition["reason"] == "TargetNotFound"
    assert "later" in condition["message"]
    status = kube.status("fault", "early")
    assert status["phase"] == "Pending"
    assert status["targetSummary"] == "<none>"
    wait_for(lambda: "TargetNotFound" in kube.event_reasons("early"), what="TargetNotFound event")

    kube.apply(agent_manifest("later"))
    status = wait_for(lambda: (s := kube.status("fault", "early")).get("phase") == "Active" and s, what="Active once the agent exists")
    assert status["targets"] == ["later"]
    assert _fault_names(operator.assignments("later")) == ["early"]


def test_selector_follows_agent_labels(operator: OperatorProcess, kube: Kube) -> None:
    kube.apply(agent_manifest("chat", labels={"tier": "frontline"}))
    kube.apply(agent_manifest("summary", labels={"tier": "frontline"}))
    kube.apply(agent_manifest("batch", labels={"tier": "offline"}))
    kube.apply(fault_manifest("wide", selector={"tier": "frontline"}, type_="Error", params={"statusCode": 503}))

    status = wait_for(lambda: (s := kube.status("fault", "wide")).get("targets") == ["chat", "summary"] and s, what="two targets")
    assert status["targetSummary"] == "chat,summary"
    assert operator.assignments("batch")["faults"] == []
    (fault,) = operator.assignments("summary")["faults"]
    assert fault["error"] == {"statusCode": 503, "body": ""}

    # Relabel one agent: it leaves the fault's reach, live.
    kube.cluster.kubectl("label", "-n", kube.namespace, "agent", "summary", "tier=offline", "--overwrite")
    wait_for(lambda: operator.assignments("summary")["faults"] == [], what="summary released")
    wait_for(lambda: kube.status("fault", "wide").get("targets") == ["chat"], what="targets updated")


def test_printer_columns_show_live_values(operator: OperatorProcess, kube: Kube) -> None:
    kube.apply(agent_manifest("chat"))
    kube.apply(fault_manifest("slow", agent="chat", duration="10m"))
    wait_for(lambda: kube.status("agent", "chat").get("activeFaultCount") == 1, what="agent shows the fault")
    faults = kube.cluster.kubectl("get", "faults", "-n", kube.namespace).stdout
    header, row = faults.strip().splitlines()
    assert header.split() == ["NAME", "TYPE", "TARGET", "PHASE", "EXPIRES", "AGE"]
    assert row.split()[:4] == ["slow", "Latency", "chat", "Active"]
    agents = kube.cluster.kubectl("get", "agents", "-n", kube.namespace).stdout
    header, row = agents.strip().splitlines()
    assert header.split() == ["NAME", "PHASE", "READY", "P95(MS)", "ERRORRATE", "FAULTS", "RESTARTS", "AGE"]
    cells = row.split()
    assert cells[:3] == ["chat", "Unknown", "Unknown"]  # no telemetry yet
    assert cells[-3:-1] == ["1", "0"]  # one fault, no restarts
