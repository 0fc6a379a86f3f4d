"""Status conditions following the Kubernetes API conventions.

Conditions are a list keyed by `type`. `lastTransitionTime` moves only when `status`
changes, so that "how long has this been false" stays answerable; reason and message
may change without a transition.
"""

from __future__ import annotations

from dataclasses import dataclass
from agentops.api_types import Condition as Condition  # re-exported: the type of what this module builds
from agentops.api_types import ConditionStatus


@dataclass(frozen=True)
class ConditionSpec:
    """What a condition should say now; turned into a Condition by `merge_conditions`."""

    type: str
    status: ConditionStatus
    reason: str  # CamelCase, machine-readable
    message: str


def merge_conditions(
    previous: list[Condition] | None,
    wanted: list[ConditionSpec],
    *,
    generation: int,
    now: str,
) -> list[Condition]:
    """Return the new condition list: wanted ones updated in place, others kept.

    Types the caller does not mention are left as they were (another part of the
    operator may own them); order is stable so that unchanged lists compare equal.
    """
    by_type: dict[str, Condition] = {c["type"]: c for c in previous or ()}
    order = [c["type"] for c in previous or ()]
    for spec in wanted:
        old = by_type.get(spec.type)
        transition = now if old is None or old.get("status") != spec.status else old.get("lastTransitionTime", now)
        by_type[spec.type] = Condition(type=spec.type, status=spec.status, observedGeneration=generation,
                                       lastTransitionTime=transition, reason=spec.reason, message=spec.message)
        if spec.type not in order:
            order.append(spec.type)
    return [by_type[t] for t in order]


def find(conditions: list[Condition] | None, type_: str) -> Condition | None:
    for c in conditions or ():
        if c.get("type") == type_:
            return c
    return None


def essence(conditions: list[Condition] | None) -> tuple[tuple[str, str, str], ...]:
    """What makes a condition change meaningful: type, status, reason (not the message)."""
    return tuple((c["type"], c["status"], c["reason"]) for c in conditions or ())
