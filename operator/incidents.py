"""The incident record of one Agent: what went wrong and what the operator did about it.

An incident runs observed → detected → actions → an end:

* **Recovered** — healthy again without a restart verifying it;
* **Healed** — a restart was verified (a new instance reported Healthy);
* **Escalated** — the budget was spent, a restart failed or could not be verified;
* **Observed** — nothing could be done (runtime None, healing disabled), only recorded.

The list lives in `status.incidents` (newest last, at most `MAX_INCIDENTS`) as plain
dicts shaped like the CRD, so the record survives an operator restart and is what
`kubectl get agent -o yaml`, the UI and the Firestore mirror show. Pure functions of
the list and a timestamp; no I/O.
"""

from __future__ import annotations

from agentops.api_types import HealingActionType, Incident, IncidentAction, IncidentState, IncidentTrigger

MAX_INCIDENTS = 20  # status stays small: an Agent object is read by every watcher
MAX_ACTIONS = 10  # per incident; the budget (≤ 100 restarts) is cut short long before
OPEN: IncidentState = "Open"
RECOVERED: IncidentState = "Recovered"
HEALED: IncidentState = "Healed"
ESCALATED: IncidentState = "Escalated"
OBSERVED: IncidentState = "Observed"


def current(incidents: list[Incident]) -> Incident | None:
    """The open incident, if any (there is at most one, and it is the newest)."""
    if incidents and incidents[-1].get("state") == OPEN:
        return incidents[-1]
    return None


def open_incident(
    incidents: list[Incident], *, seq: int, trigger: IncidentTrigger, reason: str, message: str,
    faults: list[str], observed_at: str, detected_at: str,
) -> tuple[list[Incident], Incident]:
    incident = Incident(id=f"inc-{seq}", trigger=trigger, state=OPEN, reason=reason, message=message[:2048], faults=faults[:20],
                        observedAt=observed_at, detectedAt=detected_at, actions=[])
    return (incidents + [incident])[-MAX_INCIDENTS:], incident


def _replace_last(incidents: list[Incident], incident: Incident) -> list[Incident]:
    return incidents[:-1] + [incident]


def add_action(incidents: list[Incident], *, started_at: str, message: str,
               kind: HealingActionType = "Restart") -> list[Incident]:
    incident = current(incidents)
    if incident is None:
        return incidents
    action = IncidentAction(type=kind, startedAt=started_at, result="Pending", message=message[:1024])
    return _replace_last(incidents, {**incident, "actions": (incident.get("actions", []) + [action])[-MAX_ACTIONS:]})


def finish_action(incidents: list[Incident], *, finished_at: str, result: str, message: str) -> list[Incident]:
    """Set the result of the open incident's latest action."""
    incident = current(incidents)
    if incident is None or not incident.get("actions"):
        return incidents
    actions = list(incident["actions"])
    actions[-1] = IncidentAction(**{**actions[-1], "finishedAt": finished_at, "result": result, "message": message[:1024]})
    return _replace_last(incidents, {**incident, "actions": actions})


def end(incidents: list[Incident], *, state: IncidentState, at: str, message: str | None = None) -> list[Incident]:
    incident = current(incidents)
    if incident is None:
        return incidents
    ended = Incident(**{**incident, "state": state, "endedAt": at})
    if message is not None:
        ended["message"] = message[:2048]
    return _replace_last(incidents, ended)
