"""Turn a sidecar's `Authorization: Bearer` header into a verified Caller.

Three kinds of token are accepted, each routed to the one verifier that can judge it:

* a Google-signed ID token (its unverified issuer says Google) → `GoogleTokenVerifier`
  (Cloud Run sidecars), when Google verification is on;
* the static token, only when the operator was given one (opt-in, weaker: one secret
  for every sidecar) → a constant-time comparison;
* anything else shaped like a JWT → a TokenReview (Kubernetes projected tokens).

Something that is not even a JWT is refused without asking the API server, so a
flood of garbage costs no TokenReviews.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Protocol

from agentops_operator.callers import Caller, Refused
from agentops_operator.google_tokens import looks_like_google_token

STATIC = Caller("static", "static")


class Verifier(Protocol):
    async def verify(self, token: str) -> Caller: ...


class Authenticator:
    def __init__(self, *, kubernetes: Verifier | None, google: Verifier | None = None, static_token: str | None = None,
                 is_google: Callable[[str], bool] = looks_like_google_token) -> None:
        self.kubernetes, self.google = kubernetes, google
        self._static = static_token.encode() if static_token else None
        self._is_google = is_google

    @property
    def modes(self) -> list[str]:
        """What this operator accepts, for its start-up log line."""
        return [name for name, on in (("kubernetes", self.kubernetes), ("google", self.google), ("static", self._static)) if on]

    async def authenticate(self, header: str) -> Caller:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if not header:
            raise Refused(401, "missing_token", "missing Authorization header; send 'Authorization: Bearer <token>' "
                                                "(a projected ServiceAccount token, a Google ID token, or the static token)")
        if scheme.lower() != "bearer" or not token:
            raise Refused(401, "missing_token", "the Authorization header must be 'Bearer <token>'")
        if self._static is not None and hmac.compare_digest(token.encode(), self._static):
            return STATIC
        if token.count(".") != 2:
            raise Refused(401, "invalid_token", "the bearer token is not a JWT (nor the static token)")
        if self._is_google(token):
            if self.google is None:
                raise Refused(401, "invalid_token", "Google ID tokens are not accepted by this operator (--google-certs-url off)")
            return await self.google.verify(token)
        if self.kubernetes is None:
            raise Refused(401, "invalid_token", "ServiceAccount tokens are not accepted by this operator")
        return await self.kubernetes.verify(token)
