"""Verify Kubernetes projected ServiceAccount tokens with the TokenReview API.

The API server is the only party that can say whether a ServiceAccount token is
genuine, unexpired, bound to a live Pod and ServiceAccount, and meant for our
audience (as in Vault's Kubernetes auth). Asking it on every report would cost an
API call per report, so verdicts are cached:

* keyed by the token's SHA-256 digest, never the token itself, so a heap dump or a
  debugger shows no usable credential;
* good verdicts for `ttl_s` (a deleted ServiceAccount stops working within that
  time) and never beyond the token's own `exp`; once `refresh_fraction` of that has
  passed, the next call still gets the cached verdict but starts a review in the
  background (refresh ahead), so a sidecar reporting steadily never waits for one —
  only a token's first call does — while the hard limit stays `ttl_s`;
* refusals for `failure_ttl_s` only (a token minted a moment ago must not stay
  refused), and transport failures never (the next call asks again);
* bounded to `max_entries`, oldest first out;
* concurrent verifications of one token share one review (single flight).

The review itself is a callable so the cache and the verdict logic are tested without
an API server; `kube_token_review` is the real one.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agentops_operator.callers import Caller, Refused
from agentops_operator.google_tokens import unverified_claims  # the one JWT peek (google-auth's parser)
from agentops_operator.kube_client import KubeClient, KubeError

log = logging.getLogger(__name__)

Review = Callable[[str, str], Awaitable[dict[str, Any]]]

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


class ReviewUnavailable(Exception):
    """The TokenReview could not be performed (API server unreachable, 5xx, throttled, no RBAC)."""


@dataclass(frozen=True)
class _Verdict:
    expires_at: float  # on the reviewer's (monotonic) clock
    caller: Caller | None = None
    refusal: Refused | None = None
    refresh_at: float = float("inf")  # a good verdict: review again in the background from then on


class TokenReviewer:
    def __init__(
        self,
        review: Review,
        *,
        audience: str,
        ttl_s: float = 30.0,
        failure_ttl_s: float = 1.0,
        refresh_fraction: float = 0.75,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,  # what a token's `exp` (Unix seconds) is compared with
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.audience = audience
        self._review = review
        self._ttl_s, self._failure_ttl_s, self._max_entries = ttl_s, failure_ttl_s, max_entries
        self._refresh_fraction = refresh_fraction
        self._clock, self._wall_clock = clock, wall_clock
        self._cache: OrderedDict[str, _Verdict] = OrderedDict()
        self._in_flight: dict[str, asyncio.Task[_Verdict]] = {}
        self.reviews = 0  # TokenReviews sent (cache misses)
        self.cache_hits = 0  # verifications answered from the cache
        self.refreshes = 0  # reviews started ahead of a verdict's expiry

    async def verify(self, token: str) -> Caller:
        digest = hashlib.sha256(token.encode()).hexdigest()
        verdict = self._cached(digest)
        if verdict is not None:
            self.cache_hits += 1
            if self._clock() >= verdict.refresh_at and digest not in self._in_flight:
                self.refreshes += 1
                self._start_review(token, digest)  # not awaited: this call is answered from the cache
        else:
            task = self._in_flight.get(digest) or self._start_review(token, digest)
            # Shielded: one waiter giving up (a client hanging up) must not cancel the
            # review the other waiters share.
            verdict = await asyncio.shield(task)
        if verdict.refusal is not None:
            # A fresh exception per caller: raising a shared one would chain tracebacks.
            raise Refused(verdict.refusal.status, verdict.refusal.reason, verdict.refusal.message)
        assert verdict.caller is not None
        return verdict.caller

    async def close(self) -> None:
        """Cancel and await the reviews still in flight (operator shutdown)."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start_review(self, token: str, digest: str) -> asyncio.Task[_Verdict]:
        task = asyncio.get_running_loop().create_task(self._review_once(token, digest))
        self._in_flight[digest] = task
        task.add_done_callback(lambda done: self._forget(digest, done))
        return task

    def _forget(self, digest: str, task: asyncio.Task[_Verdict]) -> None:
        if self._in_flight.get(digest) is task:
            del self._in_flight[digest]
        if not task.cancelled():
            task.exception()  # retrieved here, so a review whose waiters all left logs no warning

    def _cached(self, digest: str) -> _Verdict | None:
        verdict = self._cache.get(digest)
        if verdict is None:
            return None
        if self._clock() >= verdict.expires_at:
            del self._cache[digest]
            return None
        return verdict

    async def _review_once(self, token: str, digest: str) -> _Verdict:
        self.reviews += 1
        try:
            status = await self._review(token, self.audience)
        except ReviewUnavailable as exc:
            # Never cached: the API server being away says nothing about the token. Not logged
            # per call either (an outage would flood the log); the API counts 503s by reason.
            return _Verdict(self._clock(), refusal=Refused(503, "review_unavailable",
                                                           f"the token could not be verified: {exc}"))
        now = self._clock()
        try:
            caller = self._judge(status, token)
        except Refused as refusal:
            verdict = _Verdict(now + self._failure_ttl_s, refusal=refusal)
        else:
            lifetime = self._ttl_s
            exp = token_expiry(token)
            if exp is not None:
                # The review proved the token genuine, so its exp claim can be trusted.
                lifetime = min(lifetime, exp - self._wall_clock())
            verdict = _Verdict(now + lifetime, caller=caller, refresh_at=now + lifetime * self._refresh_fraction)
            if lifetime <= 0:
                return verdict  # authenticated but at its very end: answer, do not keep
        self._store(digest, verdict)
        return verdict

    def _judge(self, status: dict[str, Any], token: str) -> Caller:
        if not status.get("authenticated"):
            error = str(status.get("error") or "no reason given").replace(token, "<token>")
            if "expired" in error.lower():  # "service account token has expired" (older: "Token has expired.")
                raise Refused(401, "expired", f"the ServiceAccount token has expired ({error}); the kubelet "
                                              "rotates projected tokens, so re-read the token file before each call")
            if "invalid for the target audiences" in error:
                # kube-apiserver's wording when the token's audiences do not include ours.
                raise Refused(401, "wrong_audience", f"the ServiceAccount token is not for audience "
                                                     f"'{self.audience}' ({error})")
            raise Refused(401, "invalid_token", f"the API server did not authenticate the token ({error})")
        audiences = status.get("audiences") or []
        if self.audience not in audiences:
            # An empty list means "valid for the API server itself", which is not us.
            raise Refused(401, "wrong_audience", f"the token is for audiences {list(audiences)}, not "
                                                 f"'{self.audience}'; project it with audience: {self.audience}")
        username = str((status.get("user") or {}).get("username") or "")
        namespace, _, name = username.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
        if not username.startswith(SERVICE_ACCOUNT_PREFIX) or not namespace or not name or ":" in name:
            raise Refused(401, "not_a_service_account", f"the token belongs to '{username}', not to a ServiceAccount "
                                                        f"({SERVICE_ACCOUNT_PREFIX}<namespace>:<name>)")
        return Caller("kubernetes", name, namespace)

    def _store(self, digest: str, verdict: _Verdict) -> None:
        self._cache[digest] = verdict
        self._cache.move_to_end(digest)
        now = self._clock()
        # Drop expired entries from the old end first (cheap), then the oldest if still full.
        while self._cache:
            oldest = next(iter(self._cache.values()))
            if oldest.expires_at > now and len(self._cache) <= self._max_entries:
                break
            self._cache.popitem(last=False)


def token_expiry(token: str) -> float | None:
    """The unverified `exp` claim (Unix seconds) of a JWT, or None; never raises."""
    claims = unverified_claims(token)
    exp = claims[1].get("exp") if claims is not None else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def kube_token_review(kube: KubeClient) -> Review:
    """One TokenReview (authentication.k8s.io/v1) through the operator's Kubernetes client; returns its status."""
    warned_forbidden = False

    async def review(token: str, audience: str) -> dict[str, Any]:
        nonlocal warned_forbidden
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": token, "audiences": [audience]}}
        try:
            answer = await kube.run(functools.partial(
                kube.call, "POST", version="authentication.k8s.io/v1", url="tokenreviews",  # /apis/…/tokenreviews
                data=json.dumps(body), headers={"Content-Type": "application/json"}))
        except KubeError as exc:
            # Not chained (`from None`): a transport error may quote the request, which holds the
            # token; its text, scrubbed, is in the message instead.
            detail = str(exc).replace(token, "<token>")
            if exc.status == 403:
                if not warned_forbidden:
                    warned_forbidden = True
                    log.error("the operator may not create TokenReviews, so no sidecar token can be verified: "
                              "its ClusterRole needs 'create' on 'tokenreviews' (authentication.k8s.io): %s", detail)
                raise ReviewUnavailable("the operator lacks permission to create TokenReviews") from None
            if exc.status is not None and exc.status < 500 and exc.status != 429:
                log.warning("TokenReview refused by the API server: %s", detail)
            raise ReviewUnavailable(f"TokenReview failed: {detail}") from None
        status = answer.get("status") if isinstance(answer, dict) else None
        if not isinstance(status, dict):
            raise ReviewUnavailable("the API server answered the TokenReview without a status")
        return status

    return review
