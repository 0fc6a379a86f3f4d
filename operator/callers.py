"""Who is calling the sidecar API, and the one way a call is refused.

A `Caller` is what a verified token proves: a Kubernetes ServiceAccount (namespace and
name, from a TokenReview), a Google service account (its e-mail, from a Google-signed
ID token), or the holder of the static token (the weaker, opt-in mode). Verifiers
raise `Refused`; the API turns it into a 401, 403 or 503 with a JSON body naming what
did not match, and counts it by `reason`, a small fixed set so metric labels stay
bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CallerKind = Literal["kubernetes", "google", "static"]

# Every reason a caller can be refused for (the metric label set, bounded).
RefusalReason = Literal[
    "missing_token",  # 401: no Authorization: Bearer header
    "invalid_token",  # 401: not a token we accept (bad signature, unknown issuer, garbage, deleted ServiceAccount)
    "wrong_audience",  # 401: a valid token for another audience
    "expired",  # 401: a valid token past its expiry
    "not_a_service_account",  # 401: a valid token of a user or node, not a ServiceAccount
    "review_unavailable",  # 503: the TokenReview or Google's certificates could not be fetched
    "namespace_mismatch",  # 403: a ServiceAccount of another namespace than the Agent's
    "service_account_not_allowed",  # 403: not one of the Agent's spec.identity.serviceAccounts
    "google_account_mismatch",  # 403: not the Google service account the Agent's cloudRun runtime names
]
REFUSAL_REASONS: tuple[RefusalReason, ...] = (
    "missing_token", "invalid_token", "wrong_audience", "expired", "not_a_service_account", "review_unavailable",
    "namespace_mismatch", "service_account_not_allowed", "google_account_mismatch",
)


@dataclass(frozen=True)
class Caller:
    kind: CallerKind
    name: str  # ServiceAccount name, Google service account e-mail, or "static"
    namespace: str | None = None  # the ServiceAccount's namespace (kubernetes only)

    def __str__(self) -> str:
        if self.kind == "kubernetes":
            return f"ServiceAccount {self.namespace}/{self.name}"
        if self.kind == "google":
            return f"Google service account {self.name}"
        return "the static token"


class Refused(Exception):
    """A call that must not proceed: HTTP `status`, a bounded `reason`, and a message for the caller."""

    def __init__(self, status: int, reason: RefusalReason, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
