"""Who may speak for which Agent (authorize), how often a refusal becomes an Event
(RefusalLog), and which verifier judges which bearer token (Authenticator)."""

from __future__ import annotations

import asyncio

import pytest

from agentops_operator.authentication import STATIC, Authenticator
from agentops_operator.authorization import AgentIdentity, RefusalLog, authorize
from agentops_operator.callers import Caller, Refused
from agentops_operator.resources import Key

CHAT = Key("team-a", "chat")
SA = Caller("kubernetes", "chat-sidecar", "team-a")
GOOGLE = Caller("google", "chat@p.iam.gserviceaccount.com")


def refusal(caller: Caller, key: Key, agent: AgentIdentity | None) -> tuple[int, str, str] | None:
    try:
        authorize(caller, key, agent)
    except Refused as refused:
        return refused.status, refused.reason, refused.message
    return None


def test_a_service_account_speaks_for_agents_of_its_namespace() -> None:
    assert refusal(SA, CHAT, AgentIdentity()) is None
    assert refusal(SA, CHAT, None) is None  # then a 404 says there is no such Agent
    status, reason, message = refusal(SA, Key("team-b", "chat"), AgentIdentity()) or (0, "", "")
    assert (status, reason) == (403, "namespace_mismatch")
    assert "ServiceAccount team-a/chat-sidecar" in message and "'team-a' is not 'team-b'" in message
    # Not even to learn whether an Agent exists elsewhere.
    assert refusal(SA, Key("team-b", "ghost"), None) is not None


def test_an_agents_service_account_list_is_enforced() -> None:
    listed = AgentIdentity(service_accounts=frozenset({"chat-sidecar", "chat-canary"}))
    assert refusal(SA, CHAT, listed) is None
    status, reason, message = refusal(Caller("kubernetes", "batch", "team-a"), CHAT, listed) or (0, "", "")
    assert (status, reason) == (403, "service_account_not_allowed")
    assert "[chat-canary, chat-sidecar]" in message


def test_a_google_account_speaks_only_for_the_agent_that_names_it() -> None:
    assert refusal(GOOGLE, CHAT, AgentIdentity(google_service_account=GOOGLE.name)) is None
    for agent in (None, AgentIdentity(), AgentIdentity(google_service_account="other@p.iam.gserviceaccount.com"),
                  AgentIdentity(service_accounts=frozenset({GOOGLE.name}))):
        found = refusal(GOOGLE, CHAT, agent)
        assert found is not None and found[:2] == (403, "google_account_mismatch"), agent


def test_the_static_token_speaks_for_everyone() -> None:
    assert refusal(STATIC, Key("any", "agent"), None) is None
    assert refusal(STATIC, CHAT, AgentIdentity(service_accounts=frozenset({"x"}))) is None


def test_a_refusal_becomes_an_event_once_a_minute_per_caller_and_reason() -> None:
    now = [0.0]
    log = RefusalLog(every_s=60, clock=lambda: now[0], max_entries=3)
    assert log.due(CHAT, SA, "namespace_mismatch")
    assert not log.due(CHAT, SA, "namespace_mismatch")
    assert log.due(CHAT, SA, "service_account_not_allowed")  # another reason
    assert log.due(CHAT, GOOGLE, "namespace_mismatch")  # another caller
    assert not log.due(Key("team-a", "other"), SA, "namespace_mismatch")  # full: the metric still counts it
    now[0] = 61.0
    assert log.due(CHAT, SA, "namespace_mismatch")  # expired entries made room


class Fake:
    def __init__(self, caller: Caller) -> None:
        self.caller = caller
        self.tokens: list[str] = []

    async def verify(self, token: str) -> Caller:
        self.tokens.append(token)
        return self.caller


def authenticate(auth: Authenticator, header: str) -> Caller | tuple[int, str]:
    try:
        return asyncio.run(auth.authenticate(header))
    except Refused as refused:
        return refused.status, refused.reason


JWT = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJrdWJlcm5ldGVzIn0.c2ln"


def test_each_token_goes_to_the_one_verifier_that_can_judge_it() -> None:
    kube, google = Fake(SA), Fake(GOOGLE)
    auth = Authenticator(kubernetes=kube, google=google, static_token="s" * 32, is_google=lambda t: t.startswith("g."))
    assert authenticate(auth, f"Bearer {JWT}") == SA and kube.tokens == [JWT]
    assert authenticate(auth, "Bearer g.oogle.token") == GOOGLE and google.tokens == ["g.oogle.token"]
    assert authenticate(auth, "Bearer " + "s" * 32) == STATIC
    assert authenticate(auth, "bearer " + "s" * 32) == STATIC  # the scheme is case-insensitive
    assert authenticate(auth, "") == (401, "missing_token")
    assert authenticate(auth, "Basic dXNlcjpwYXNz") == (401, "missing_token")
    assert authenticate(auth, "Bearer ") == (401, "missing_token")
    # Not a JWT and not the static token: refused without costing a TokenReview.
    assert authenticate(auth, "Bearer " + "s" * 31) == (401, "invalid_token")
    assert kube.tokens == [JWT]
    assert auth.modes == ["kubernetes", "google", "static"]


def test_without_google_or_a_static_token_they_are_refused() -> None:
    auth = Authenticator(kubernetes=Fake(SA), is_google=lambda t: t.startswith("g."))
    assert authenticate(auth, "Bearer g.oogle.token") == (401, "invalid_token")
    assert authenticate(auth, "Bearer " + "s" * 32) == (401, "invalid_token")
    assert auth.modes == ["kubernetes"]


@pytest.mark.parametrize("header", ["Bearer a.b.c", f"Bearer {JWT}"])
def test_a_verifier_refusal_passes_through(header: str) -> None:
    class No:
        async def verify(self, token: str) -> Caller:
            raise Refused(401, "expired", "too old")

    assert authenticate(Authenticator(kubernetes=No()), header) == (401, "expired")
