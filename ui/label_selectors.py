"""Label selectors (metav1.LabelSelector) as the UI needs them: to show which Agents a
just-applied Fault will hit before the operator has resolved it, and to print a
selector the way `kubectl get -l` takes it."""

from __future__ import annotations

from typing import Any


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics; an empty selector matches nothing (the CRD forbids it anyway)."""
    match_labels = _strings(selector.get("matchLabels"))
    expressions = [e for e in selector.get("matchExpressions") or () if isinstance(e, dict)]
    if not match_labels and not expressions:
        return False
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    for expr in expressions:
        key, op, values = str(expr.get("key")), expr.get("operator"), [str(v) for v in expr.get("values") or ()]
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def selector_text(selector: dict[str, Any]) -> str:
    """The selector as `kubectl get -l` would take it: tier=frontline,zone in (a,b),!canary."""
    parts = [f"{k}={v}" for k, v in sorted(_strings(selector.get("matchLabels")).items())]
    for expr in selector.get("matchExpressions") or ():
        if not isinstance(expr, dict):
            continue
        key, op, values = expr.get("key"), expr.get("operator"), ",".join(str(v) for v in expr.get("values") or ())
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": f"{key}", "DoesNotExist": f"!{key}"}.get(str(op), f"{key} {op} ({values})"))
    return ",".join(parts)
