"""Stored Agents, Faults and ResilienceChecks, typed: what the summaries share.

Status and spec are read through the types of `agentops.api_types`, the contract the
operator writes: `agent_status`, `agent_spec`, `fault_status` and `fault_spec` are the one
place where a stored object becomes typed (`check_status` and `check_spec` too). Metadata and Events are Kubernetes' own and
stay plain dicts.

Also here, so that `agent_summaries`, `fault_summaries` and `event_summaries` read them
the same way: the phases, conditions as the pages show them, the time format, and which
agents a Fault targets (by its spec, or as the operator resolved it).
"""

from __future__ import annotations

from typing import Any, TypedDict, cast

from agentops.api_types import AgentSpecBody, AgentStatus, CheckSpecBody, CheckStatus, FaultSpecBody, FaultStatus
from agentops.errors import InvalidField
from agentops.label_selector import LabelSelector
from agentops.times import format_timestamp
from agentops_ui.store import Obj, key_of

UNKNOWN = "Unknown"
AGENT_PHASES = ("Healthy", "Degraded", "Unhealthy", UNKNOWN)
FAULT_PENDING = "Pending"
FAULT_ACTIVE = "Active"
FAULT_FINAL = ("Expired", "Halted", "Aborted", "Failed")


class ConditionView(TypedDict):
    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str | None


def iso(stamp: float) -> str:
    return format_timestamp(stamp)


def string_map(value: Any) -> dict[str, str]:
    """Labels and annotations: metadata is Kubernetes', not ours, so read it as a plain map."""
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


# The boundary where a stored object becomes typed. The API server validated `spec` and
# `status` against the CRD schema (crds/), which tests/unit/test_api_types.py keeps equal
# to these TypedDicts, so a field is present or absent but never of another type: a cast,
# not a parse. An object the operator has not written yet has no status: {}.


def agent_status(agent: Obj) -> AgentStatus:
    return cast(AgentStatus, agent.get("status") or {})


def agent_spec(agent: Obj) -> AgentSpecBody:
    return cast(AgentSpecBody, agent.get("spec") or {})


def fault_status(fault: Obj) -> FaultStatus:
    return cast(FaultStatus, fault.get("status") or {})


def fault_spec(fault: Obj) -> FaultSpecBody:
    return cast(FaultSpecBody, fault.get("spec") or {})


def check_status(check: Obj) -> CheckStatus:
    return cast(CheckStatus, check.get("status") or {})


def check_spec(check: Obj) -> CheckSpecBody:
    return cast(CheckSpecBody, check.get("spec") or {})


def conditions(status: AgentStatus | FaultStatus | CheckStatus) -> list[ConditionView]:
    return [ConditionView(type=c["type"], status=c["status"], reason=c["reason"], message=c["message"],
                          lastTransitionTime=c["lastTransitionTime"])
            for c in status.get("conditions", [])]


def agent_phase(agent: Obj) -> str:
    return agent_status(agent).get("phase", UNKNOWN)


def fault_phase(fault: Obj) -> str:
    # No phase yet: the operator has not processed the Fault, which is what Pending means.
    return fault_status(fault).get("phase", FAULT_PENDING)


def spec_targets(fault: Obj, agent: Obj) -> bool:
    """Whether a Fault's spec names or selects an agent (same namespace)."""
    target = fault_spec(fault).get("target", {})
    if name := target.get("agent"):
        return name == key_of(agent)[1]
    try:
        selector = LabelSelector.from_spec(target.get("selector"))
    except InvalidField:
        return False  # no selector, or one the operator will refuse too: it targets nothing
    return selector.matches(string_map((agent.get("metadata") or {}).get("labels")))


def resolved_targets(fault: Obj) -> list[str]:
    return list(fault_status(fault).get("targets", []))
