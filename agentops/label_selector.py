"""Label selectors (metav1.LabelSelector): the one implementation.

The operator resolves a Fault's `spec.target.selector` with it; the UI uses the same
code to show which Agents a just-applied Fault will hit and to print a selector.

Semantics are Kubernetes' (`LabelSelectorAsSelector`): every requirement must hold,
and an empty selector matches everything. The Fault CRD refuses an empty selector
(it would hit every Agent in the namespace), so for faults that case never arises.
An unknown operator is an error when the selector is read, not a silent mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, get_args

from agentops.api_types import SelectorOperator
from agentops.errors import InvalidField

OPERATORS: tuple[str, ...] = get_args(SelectorOperator)


class Requirement(NamedTuple):
    """One entry of matchExpressions."""

    key: str
    operator: str  # one of OPERATORS
    values: tuple[str, ...] = ()

    def holds(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            return not present or labels[self.key] not in self.values
        if self.operator == "Exists":
            return present
        return not present  # DoesNotExist

    def text(self) -> str:
        values = ",".join(self.values)
        return {"In": f"{self.key} in ({values})", "NotIn": f"{self.key} notin ({values})",
                "Exists": self.key, "DoesNotExist": f"!{self.key}"}[self.operator]


@dataclass(frozen=True)
class LabelSelector:
    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    @classmethod
    def from_spec(cls, raw: Any, field: str = "selector") -> LabelSelector:
        """Read a metav1.LabelSelector; InvalidField names what is wrong and what is allowed."""
        if not isinstance(raw, dict):
            raise InvalidField(field, "must be an object with matchLabels and/or matchExpressions")
        labels = raw.get("matchLabels") or {}
        if not isinstance(labels, dict):
            raise InvalidField(f"{field}.matchLabels", "must be a map of label keys to values")
        requirements = []
        for i, expr in enumerate(raw.get("matchExpressions") or ()):
            where = f"{field}.matchExpressions[{i}]"
            if not isinstance(expr, dict) or not isinstance(expr.get("key"), str):
                raise InvalidField(where, "must be an object with a key and an operator")
            op = expr.get("operator")
            if op not in OPERATORS:
                raise InvalidField(f"{where}.operator", f"{op!r} is not allowed; use one of {', '.join(OPERATORS)}")
            requirements.append(Requirement(expr["key"], op, tuple(str(v) for v in expr.get("values") or ())))
        return cls(tuple(sorted((str(k), str(v)) for k, v in labels.items())), tuple(requirements))

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(r.holds(labels) for r in self.match_expressions)

    def text(self) -> str:
        """As `kubectl get -l` takes it: tier=frontline,zone in (a,b),!canary ("" for an empty selector)."""
        return ",".join([f"{k}={v}" for k, v in self.match_labels] + [r.text() for r in self.match_expressions])

    def describe(self) -> str:
        """For messages: the selector's text, or <all> for an empty one."""
        return self.text() or "<all>"
