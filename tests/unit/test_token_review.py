"""TokenReviewer's verdicts, cache and single flight, against a fake review (no API server).

The fake answers what kube-apiserver's TokenReview answers (status dicts with its
wording); the real API server is exercised by the integration tests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

import pytest

from agentops_operator.callers import Caller, Refused
from agentops_operator.token_review import ReviewUnavailable, TokenReviewer, token_expiry

AUDIENCE = "agentops"
WALL = 1_700_000_000.0  # the fake wall clock's "now" (Unix seconds)


def ok(namespace: str = "team-a", name: str = "sidecar", audiences: list[str] | None = None) -> dict[str, Any]:
    return {"authenticated": True, "user": {"username": f"system:serviceaccount:{namespace}:{name}",
                                            "groups": ["system:serviceaccounts"]},
            "audiences": [AUDIENCE] if audiences is None else audiences}


def jwt(exp: float | None = None, tag: str = "") -> str:
    """A JWT-shaped token (unsigned: the fake review does not check signatures)."""
    def seg(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    claims: dict[str, Any] = {"iss": "https://kubernetes.default.svc", "sub": tag or "x"}
    if exp is not None:
        claims["exp"] = exp
    return f"{seg({'alg': 'RS256'})}.{seg(claims)}.c2ln"


class FakeReview:
    """Counts reviews; answers `answers[token]` (a status, or an exception to raise); can hold until released."""

    def __init__(self, answers: dict[str, dict[str, Any] | Exception]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str]] = []
        self.release: asyncio.Event | None = None

    async def __call__(self, token: str, audience: str) -> dict[str, Any]:
        self.calls.append((token, audience))
        if self.release is not None:
            await self.release.wait()
        answer = self.answers[token]
        if isinstance(answer, Exception):
            raise answer
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def reviewer(review: FakeReview, clock: Clock | None = None, **kwargs: Any) -> TokenReviewer:
    return TokenReviewer(review, audience=AUDIENCE, clock=clock or Clock(), wall_clock=lambda: WALL, **kwargs)


async def refusal(r: TokenReviewer, token: str) -> Refused:
    with pytest.raises(Refused) as caught:
        await r.verify(token)
    return caught.value


async def test_a_service_account_token_is_its_caller() -> None:
    token = jwt()
    review = FakeReview({token: ok("team-a", "reporter")})
    assert await reviewer(review).verify(token) == Caller("kubernetes", "reporter", "team-a")
    assert review.calls == [(token, AUDIENCE)]


async def test_a_thousand_verifies_within_the_ttl_send_one_review() -> None:
    token = jwt()
    review = FakeReview({token: ok()})
    r = reviewer(review)
    for _ in range(1000):
        await r.verify(token)
    assert (r.reviews, r.cache_hits, len(review.calls)) == (1, 999, 1)


async def test_a_good_verdict_is_asked_again_after_the_ttl() -> None:
    token, clock = jwt(), Clock()
    review = FakeReview({token: ok()})
    r = reviewer(review, clock, ttl_s=30)
    await r.verify(token)
    clock.now += 29.9
    await r.verify(token)
    assert r.reviews == 1
    clock.now += 0.1
    # The ServiceAccount was deleted meanwhile: the API server now says so, and so do we.
    review.answers[token] = {"authenticated": False, "error": "[invalid bearer token, service account default/sidecar "
                                                              "has been deleted]"}
    assert (await refusal(r, token)).reason == "invalid_token"
    assert r.reviews == 2


async def test_a_good_verdict_is_not_kept_beyond_the_tokens_exp() -> None:
    token, clock = jwt(exp=WALL + 5), Clock()
    review = FakeReview({token: ok()})
    r = reviewer(review, clock, ttl_s=30)
    await r.verify(token)
    clock.now += 4.9
    await r.verify(token)
    clock.now += 0.1
    await r.verify(token)
    assert r.reviews == 2


async def test_a_token_at_its_exp_is_answered_but_not_cached() -> None:
    token = jwt(exp=WALL - 1)  # the API server allows some leeway; we must not stretch it further
    review = FakeReview({token: ok()})
    r = reviewer(review)
    await r.verify(token)
    await r.verify(token)
    assert r.reviews == 2 and not r._cache


async def test_a_refusal_is_cached_only_for_failure_ttl() -> None:
    token, clock = jwt(), Clock()
    review = FakeReview({token: {"authenticated": False, "error": "[invalid bearer token, square/go-jose: error in "
                                                                  "cryptographic primitive]"}})
    r = reviewer(review, clock, ttl_s=30, failure_ttl_s=1)
    first = await refusal(r, token)
    assert (first.status, first.reason) == (401, "invalid_token")
    assert "go-jose" in first.message
    await refusal(r, token)
    assert r.reviews == 1
    clock.now += 1
    review.answers[token] = ok()  # e.g. a ServiceAccount created a moment later
    assert await r.verify(token) == Caller("kubernetes", "sidecar", "team-a")
    assert r.reviews == 2


async def test_an_expired_token_is_refused_as_expired() -> None:
    token = jwt()
    # kube-apiserver's wording (pkg/serviceaccount) inside the union authenticator's list.
    review = FakeReview({token: {"authenticated": False,
                                 "error": "[invalid bearer token, service account token has expired]"}})
    refused = await refusal(reviewer(review), token)
    assert (refused.status, refused.reason) == (401, "expired")
    assert "service account token has expired" in refused.message


async def test_a_token_for_another_audience_is_refused_as_wrong_audience() -> None:
    token = jwt()
    # The API server refuses it itself, since the review names our audience ...
    error = ('[invalid bearer token, token audiences ["https://kubernetes.default.svc"] is invalid for the target '
             'audiences ["agentops"]]')
    review = FakeReview({token: {"authenticated": False, "error": error}})
    assert (await refusal(reviewer(review), token)).reason == "wrong_audience"
    # ... and an authenticator that is not audience-aware answers without ours: refused too.
    for audiences in ([], ["vault"]):
        review = FakeReview({token: ok(audiences=audiences)})
        refused = await refusal(reviewer(review), token)
        assert (refused.status, refused.reason) == (401, "wrong_audience")
        assert "'agentops'" in refused.message


@pytest.mark.parametrize("username", ["kubernetes-admin", "system:node:kind-worker", "system:serviceaccount:team-a",
                                      "system:serviceaccount::sidecar", "system:serviceaccount:a:b:c", ""])
async def test_a_user_or_node_is_not_a_service_account(username: str) -> None:
    token = jwt()
    review = FakeReview({token: {"authenticated": True, "user": {"username": username}, "audiences": [AUDIENCE]}})
    refused = await refusal(reviewer(review), token)
    assert (refused.status, refused.reason) == (401, "not_a_service_account")


async def test_an_unreachable_api_server_is_a_503_and_is_not_cached() -> None:
    token = jwt()
    review = FakeReview({token: ReviewUnavailable("TokenReview failed: Kubernetes API 503: etcd unavailable")})
    r = reviewer(review)
    for _ in range(3):
        refused = await refusal(r, token)
        assert (refused.status, refused.reason) == (503, "review_unavailable")
    assert r.reviews == 3 and not r._cache
    review.answers[token] = ok()
    assert await r.verify(token) == Caller("kubernetes", "sidecar", "team-a")


async def test_concurrent_identical_verifies_share_one_review() -> None:
    token = jwt()
    review = FakeReview({token: ok()})
    review.release = asyncio.Event()
    r = reviewer(review)
    waiters = [asyncio.create_task(r.verify(token)) for _ in range(100)]
    await asyncio.sleep(0)
    review.release.set()
    callers = await asyncio.gather(*waiters)
    assert set(callers) == {Caller("kubernetes", "sidecar", "team-a")}
    assert len(review.calls) == 1 and not r._in_flight


async def test_concurrent_waiters_share_a_refusal_and_an_outage() -> None:
    bad, down = jwt(tag="bad"), jwt(tag="down")
    review = FakeReview({bad: {"authenticated": False}, down: ReviewUnavailable("connection refused")})
    review.release = asyncio.Event()
    r = reviewer(review)
    waiters = [asyncio.create_task(r.verify(t)) for t in [bad] * 10 + [down] * 10]
    await asyncio.sleep(0)
    review.release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert [getattr(e, "reason", e) for e in results] == ["invalid_token"] * 10 + ["review_unavailable"] * 10
    assert len(review.calls) == 2


async def test_a_waiter_that_gives_up_does_not_cancel_the_shared_review() -> None:
    token = jwt()
    review = FakeReview({token: ok()})
    review.release = asyncio.Event()
    r = reviewer(review)
    impatient, patient = asyncio.create_task(r.verify(token)), asyncio.create_task(r.verify(token))
    await asyncio.sleep(0)
    impatient.cancel()
    review.release.set()
    assert await patient == Caller("kubernetes", "sidecar", "team-a")
    assert impatient.cancelled() and r.reviews == 1


async def test_different_tokens_get_reviews_of_their_own() -> None:
    a, b = jwt(tag="a"), jwt(tag="b")
    review = FakeReview({a: ok("team-a", "one"), b: ok("team-b", "two")})
    r = reviewer(review)
    assert [await r.verify(t) for t in (a, b, a, b)] == [Caller("kubernetes", "one", "team-a"),
                                                        Caller("kubernetes", "two", "team-b")] * 2
    assert r.reviews == 2


async def test_the_cache_holds_digests_never_the_token() -> None:
    good, bad = jwt(tag="good"), jwt(tag="bad")
    review = FakeReview({good: ok(), bad: {"authenticated": False, "error": f"token {bad} is not valid"}})
    r = reviewer(review)
    await r.verify(good)
    refused = await refusal(r, bad)
    assert bad not in refused.message  # even when the API server's error quotes it
    assert set(r._cache) == {hashlib.sha256(t.encode()).hexdigest() for t in (good, bad)}
    held = repr(vars(r))  # the cache's keys and verdicts (callers, refusals with their messages) included
    assert good not in held and bad not in held


async def test_the_cache_is_bounded_oldest_out() -> None:
    tokens = [jwt(tag=str(i)) for i in range(10)]
    review = FakeReview({t: ok(name=f"sa{i}") for i, t in enumerate(tokens)})
    r = reviewer(review, max_entries=3)
    for t in tokens:
        await r.verify(t)
    assert len(r._cache) == 3
    await r.verify(tokens[-1])  # still held
    await r.verify(tokens[0])  # pushed out long ago
    assert r.reviews == 11 and len(r._cache) == 3


async def test_expired_entries_leave_before_live_ones() -> None:
    clock = Clock()
    old, new = jwt(tag="old"), jwt(tag="new")
    review = FakeReview({old: {"authenticated": False}, new: ok()})
    r = reviewer(review, clock, failure_ttl_s=1, max_entries=10)
    await refusal(r, old)
    clock.now += 2
    await r.verify(new)
    assert len(r._cache) == 1  # the expired refusal went when the next verdict came in


async def test_close_cancels_reviews_in_flight() -> None:
    token = jwt()
    review = FakeReview({token: ok()})
    review.release = asyncio.Event()  # never set: a hung API server
    r = reviewer(review)
    waiter = asyncio.create_task(r.verify(token))
    await asyncio.sleep(0)
    await r.close()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not r._in_flight


def test_token_expiry_reads_exp_and_never_raises() -> None:
    assert token_expiry(jwt(exp=WALL)) == WALL
    for garbage in ("", "abc", "a.b.c", "...", jwt(exp=None), "e30.bm90IGpzb24.x", "e30.WzFd.x"):
        assert token_expiry(garbage) is None


async def test_a_verdict_is_refreshed_ahead_in_the_background_and_the_caller_never_waits() -> None:
    token, clock = jwt(), Clock()
    review = FakeReview({token: ok()})
    r = reviewer(review, clock, ttl_s=100.0, refresh_fraction=0.75)
    await r.verify(token)
    clock.now += 74
    await r.verify(token)
    assert len(review.calls) == 1  # fresh enough: from the cache
    clock.now += 2  # past 3/4 of the lifetime
    review.release = asyncio.Event()  # the background review hangs...
    assert await r.verify(token) == Caller("kubernetes", "sidecar", "team-a")  # ...and this call does not wait for it
    await asyncio.sleep(0)  # the background review starts
    assert len(review.calls) == 2 and r.refreshes == 1
    await r.verify(token)
    assert len(review.calls) == 2  # one refresh in flight at a time
    review.release.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    clock.now += 90  # past the first verdict's life, within the refreshed one's
    await r.verify(token)
    assert len(review.calls) == 2


async def test_a_refresh_that_refuses_ends_the_verdict_and_one_that_fails_keeps_it_to_its_end() -> None:
    token, clock = jwt(), Clock()
    review = FakeReview({token: ok()})
    r = reviewer(review, clock, ttl_s=100.0)
    await r.verify(token)
    clock.now += 80
    review.answers[token] = ReviewUnavailable("API server away")
    await r.verify(token)  # answered from the cache; the refresh fails
    await asyncio.sleep(0)
    clock.now += 10
    assert await r.verify(token) == Caller("kubernetes", "sidecar", "team-a")  # still within ttl_s
    review.answers[token] = {"authenticated": False, "error": 'serviceaccounts "sidecar" not found'}
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    clock.now += 5
    await r.verify(token)  # starts the refresh that now refuses
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert (await refusal(r, token)).reason == "invalid_token"
