"""The sample agents offline: the deterministic model, request validation, and the HTTP
API served in-process (aiohttp's TestServer/TestClient), including how model failures
become agent errors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agentops.errors import InvalidField
from agentops_agents.app import MAX_BODY_BYTES, AgentInstance, build_app
from agentops_agents.model import (
    Model,
    ModelAuthError,
    ModelBadResponse,
    ModelError,
    ModelRateLimited,
    ModelTimeout,
    ModelUnavailable,
    Turn,
)
from agentops_agents.offline_model import chat_reply, split_sentences, summarize
from agentops_agents.payloads import MAX_HISTORY_TURNS, parse_chat_request, parse_summary_request
from agentops_agents.settings import AgentKind, AgentSettings

ARTICLE = (
    "The city council met on Tuesday evening. "
    "Rain fell steadily outside the hall. "
    "The council approved the new budget for the city transit system. "
    "A local bakery sold out of bread by noon. "
    "Transit riders praised the council for the transit budget and the new city bus routes. "
    "Nobody mentioned the weather."
)


# --- offline chat ---


def test_chat_reply_is_deterministic_and_depends_on_the_message() -> None:
    message = "How do I restart a pod in Kubernetes?"
    assert chat_reply(message) == chat_reply(message)
    assert chat_reply(message) != chat_reply("Tell me about Prometheus alerting rules")


def test_chat_reply_is_the_same_in_another_process() -> None:
    """Template choice must not depend on Python's per-process string hash salt."""
    code = "from agentops_agents.offline_model import chat_reply; print(chat_reply('What is a sidecar proxy?'))"
    outputs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
        for seed in ("1", "2")
    }
    assert outputs == {chat_reply("What is a sidecar proxy?")}


def test_chat_reply_names_the_topic_of_a_question() -> None:
    reply = chat_reply("Hello! How do I restart a pod in Kubernetes?")
    assert reply.startswith("Hello!")
    assert "kubernetes" in reply and "restart" in reply


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("hi", "Hello! I'm the offline chat agent"),
        ("Good morning", "Hello! I'm the offline chat agent"),
        ("thanks, bye", "You're welcome. Goodbye!"),
        ("Can you help?", "I'm the offline chat agent. Ask me a question"),
    ],
)
def test_chat_reply_recognises_small_talk(message: str, expected: str) -> None:
    assert chat_reply(message).startswith(expected)


def test_chat_reply_remembers_topics_from_the_history() -> None:
    history = [Turn("user", "Our operators keep crashing"), Turn("model", "Noted.")]
    assert "earlier" in chat_reply("Why do operators crash?", history)
    assert "earlier" not in chat_reply("Why do operators crash?")


# --- offline summary ---


def test_split_sentences_respects_abbreviations_quotes_and_paragraphs() -> None:
    text = 'Dr. Smith arrived, e.g. at noon. "Is it late?" she asked.\n\nA new paragraph without a full stop\nNext line'
    assert split_sentences(text) == [
        "Dr. Smith arrived, e.g. at noon.",
        '"Is it late?" she asked.',
        "A new paragraph without a full stop Next line",
    ]


def test_summary_keeps_n_sentences_in_original_order() -> None:
    summary = summarize(ARTICLE, 2)
    kept = split_sentences(summary)
    assert len(kept) == 2
    original = split_sentences(ARTICLE)
    positions = [original.index(s) for s in kept]
    assert positions == sorted(positions)


def test_summary_picks_the_sentences_with_the_most_frequent_words() -> None:
    # "council", "city", "transit" and "budget" recur; rain, bread and weather do not.
    assert summarize(ARTICLE, 1) == (
        "Transit riders praised the council for the transit budget and the new city bus routes."
    )
    assert summarize(ARTICLE, 2) == (
        "The council approved the new budget for the city transit system. "
        "Transit riders praised the council for the transit budget and the new city bus routes."
    )


def test_summary_is_deterministic_and_returns_short_texts_whole() -> None:
    assert summarize(ARTICLE, 3) == summarize(ARTICLE, 3)
    assert summarize("One sentence only.   With  spaces.", 3) == "One sentence only. With spaces."


def test_summary_shortens_an_unpunctuated_wall_of_text() -> None:
    wall = "word " * 1000
    summary = summarize(wall, 3)
    assert len(summary) <= 501 and summary.endswith("…")


# --- request validation (pure) ---


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ([], "body: must be a JSON object"),
        ({}, "message: is required"),
        ({"message": 3}, "message: must be a string, got number; allowed 1..8000 characters"),
        ({"message": "   "}, "message: must not be empty or only whitespace"),
        ({"message": "x" * 8001}, "message: is 8001 characters long; allowed 1..8000 characters"),
        ({"message": "hi", "mesage": "typo"}, "mesage: unknown field; allowed fields are message, history"),
        ({"message": "hi", "history": "no"}, "history: must be an array"),
        ({"message": "hi", "history": [{"role": "bot", "text": "x"}]}, "history[0].role: must be one of user, model"),
        ({"message": "hi", "history": [{"role": "user", "text": "x", "at": 1}]}, "history[0].at: unknown field"),
        ({"message": "hi", "history": [{"role": "user", "text": "x"}] * (MAX_HISTORY_TURNS + 1)},
         "history: has 51 turns; allowed at most 50"),
    ],
)
def test_chat_request_refusals_name_the_field(payload: Any, error: str) -> None:
    with pytest.raises(InvalidField) as caught:
        parse_chat_request(payload)
    assert str(caught.value).startswith(error)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"maxSentences": 2}, "text: is required"),
        ({"text": "x" * 100_001}, "text: is 100001 characters long; allowed 1..100000 characters"),
        ({"text": "Some text.", "maxSentences": 0}, "maxSentences: is 0; allowed 1..20"),
        ({"text": "Some text.", "maxSentences": 21}, "maxSentences: is 21; allowed 1..20"),
        ({"text": "Some text.", "maxSentences": True}, "maxSentences: must be a whole number 1..20, got boolean"),
        ({"text": "Some text.", "maxSentences": 2.5}, "maxSentences: must be a whole number 1..20, got number"),
        ({"text": "Some text.", "max_sentences": 2}, "max_sentences: unknown field; allowed fields are text, maxSentences"),
    ],
)
def test_summary_request_refusals_name_the_field(payload: Any, error: str) -> None:
    with pytest.raises(InvalidField) as caught:
        parse_summary_request(payload)
    assert str(caught.value).startswith(error)


def test_optional_fields_default() -> None:
    assert parse_summary_request({"text": "Hi.", "maxSentences": None}).max_sentences == 3
    assert parse_chat_request({"message": "hi", "history": None}).history == ()


# --- the HTTP API, in-process ---

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
INSTANCE = AgentInstance.new(datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc))


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    clients: list[Client] = []

    async def make(kind: AgentKind = "chat", model: Model | None = None) -> Client:
        client: Client = TestClient(TestServer(build_app(AgentSettings(kind=kind), INSTANCE, model=model)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_healthz_and_description(make_client: MakeClient) -> None:
    client = await make_client("summary")
    health = await client.get("/healthz")
    assert health.status == 200
    assert await health.json() == {
        "status": "ok", "agent": "summary", "model": "offline",
        "instance": INSTANCE.id, "startedAt": "2025-01-02T03:04:05Z",
    }
    about = await (await client.get("/")).json()
    assert about["agent"] == "summary" and "POST /v1/summarize" in about["endpoints"]


async def test_chat_answers_offline(make_client: MakeClient) -> None:
    client = await make_client("chat")
    body = {"message": "What is a Kubernetes operator?", "history": [{"role": "user", "text": "hi"}]}
    resp = await client.post("/v1/chat", json=body)
    assert resp.status == 200
    assert await resp.json() == {"reply": chat_reply("What is a Kubernetes operator?"), "model": "offline"}


async def test_summary_answers_offline(make_client: MakeClient) -> None:
    client = await make_client("summary")
    resp = await client.post("/v1/summarize", json={"text": ARTICLE, "maxSentences": 1})
    assert resp.status == 200
    assert await resp.json() == {"summary": summarize(ARTICLE, 1), "model": "offline"}


async def test_each_agent_serves_only_its_own_endpoint(make_client: MakeClient) -> None:
    chat = await make_client("chat")
    resp = await chat.post("/v1/summarize", json={"text": "x"})
    assert resp.status == 404
    assert (await resp.json())["error"] == "not found; the chat agent serves GET /, GET /healthz and POST /v1/chat"
    wrong_method = await chat.get("/v1/chat")
    assert wrong_method.status == 405
    assert (await wrong_method.json())["error"] == "GET is not allowed on /v1/chat; allowed: POST"


@pytest.mark.parametrize(
    ("data", "headers", "status", "error"),
    [
        (b'{"message": ', {"Content-Type": "application/json"}, 400, "body is not valid JSON: "),
        (b"[" * 100_000, {"Content-Type": "application/json"}, 400, "body is not valid JSON: nested too deeply"),
        (b'{"message": "hi"}', {"Content-Type": "text/plain"}, 415, "Content-Type must be application/json, got text/plain"),
        (b'{"message": "hi", "extra": 1}', {"Content-Type": "application/json"}, 422,
         "extra: unknown field; allowed fields are message, history"),
        (b'{"message": ""}', {"Content-Type": "application/json"}, 422, "message: must not be empty"),
        (b"x" * (MAX_BODY_BYTES + 1), {"Content-Type": "application/json"}, 413, "request body larger than 1048576 bytes"),
    ],
)
async def test_bad_requests_get_json_errors(
    make_client: MakeClient, data: bytes, headers: dict[str, str], status: int, error: str
) -> None:
    client = await make_client("chat")
    resp = await client.post("/v1/chat", data=data, headers=headers)
    assert resp.status == status
    assert resp.content_type == "application/json"
    assert (await resp.json())["error"].startswith(error)


class FailingModel:
    """A model that fails the way Gemini can, to test the web layer's mapping."""

    def __init__(self, error: ModelError) -> None:
        self.error = error

    @property
    def name(self) -> str:
        return "gemini"

    async def chat(self, message: str, history: Sequence[Turn]) -> str:
        raise self.error

    async def summarize(self, text: str, max_sentences: int) -> str:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [
        (ModelRateLimited("model rate limited by Gemini (429): quota; retry after 7s", "7"), 429, "7"),
        (ModelRateLimited("model rate limited by Gemini (429): quota; retry later"), 429, None),
        (ModelTimeout("the model did not answer within 0.5 s", 0.5), 504, None),
        (ModelUnavailable("Gemini failed with upstream status 500"), 502, None),
        (ModelAuthError("Gemini rejected the API key (403)"), 502, None),
        (ModelBadResponse("Gemini blocked the prompt (blockReason SAFETY)"), 502, None),
    ],
)
async def test_model_errors_become_clear_agent_errors(
    make_client: MakeClient, error: ModelError, status: int, retry_after: str | None
) -> None:
    client = await make_client("summary", model=FailingModel(error))
    resp = await client.post("/v1/summarize", json={"text": "Some text."})
    assert resp.status == status
    assert await resp.json() == {"error": str(error)}
    assert resp.headers.get("Retry-After") == retry_after
    assert (await client.get("/healthz")).status == 200  # the agent itself stays healthy
