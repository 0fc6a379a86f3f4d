"""What every runtime backend promises: restart one agent, say plainly how it went.

A backend is a synchronous callable (the clients it wraps — pykube-ng, the Cloud Run
Admin API client — are blocking); the healing loop runs it in a worker thread, never
on the event loop, and bounds how many run at once.

    restart(agent, runtime, token) -> RestartOutcome
    scale_to_zero(agent, runtime, token) -> RestartOutcome   (Kubernetes only: a runaway agent)

`token` is unique per restart decision; a backend writes it where the restart is
visible (a pod-template annotation, a Cloud Run template annotation, the sidecar's
restart request), so a retried call with the same token changes nothing twice.

Outcomes are values, not exceptions: a denied or missing target is a normal answer
the operator turns into status (`reason` is CamelCase and becomes the reason of the
`Stalled` condition or of an Event). `retryable` tells the healing policy whether the
same call may succeed later (a timeout, a 5xx) or never will (403, 404, a bad spec).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from agentops_operator.resources import ObjectRef, RuntimeSpec


@dataclass(frozen=True)
class RestartOutcome:
    ok: bool
    reason: str  # CamelCase: Restarted, DeploymentNotFound, CloudRunPermissionDenied, ...
    message: str  # for a human: what happened, what to do
    retryable: bool = False
    # What now runs after the restart, when the backend knows: a Cloud Run revision
    # name, a Deployment's restartedAt stamp.
    detail: str | None = None

    @classmethod
    def done(cls, message: str, detail: str | None = None) -> RestartOutcome:
        return cls(True, "Restarted", message, detail=detail)

    @classmethod
    def failed(cls, reason: str, message: str, *, retryable: bool) -> RestartOutcome:
        return cls(False, reason, message, retryable=retryable)


class RuntimeBackend(Protocol):
    def restart(self, agent: ObjectRef, runtime: RuntimeSpec, token: str) -> RestartOutcome: ...


class ScalableBackend(RuntimeBackend, Protocol):
    """A backend that can also stop an agent altogether (spec.healing.onTokenBurn: ScaleToZero)."""

    def scale_to_zero(self, agent: ObjectRef, runtime: RuntimeSpec, token: str) -> RestartOutcome: ...
