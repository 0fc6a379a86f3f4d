"""Injected answers have each provider's status, envelope and headers, and read back as
the error type they stand for (the gateway classifies its own answers like real ones)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentops_sidecar.model_shapes import ERROR_KINDS, corrupt_tool_calls, error_answer, safety_answer, truncate_json
from agentops_sidecar.model_usage import AnswerReader, SseSplitter, classify_status

PROVIDERS = ("OpenAI", "Anthropic", "Gemini")
EXPECTED = {"ModelRateLimit": "rate_limit", "ModelQuotaExhausted": "quota_exhausted", "ModelOverloaded": "overloaded",
            "ModelServerError": "server_error", "ModelContextLength": "context_length"}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("kind", sorted(ERROR_KINDS))
def test_each_error_reads_back_as_its_type(provider: Any, kind: str) -> None:
    answer = error_answer(kind, provider, "m-1", 2.5 if kind in ("ModelRateLimit", "ModelOverloaded") else None, now_wall=0.0)
    assert classify_status(answer.status, answer.headers, answer.body) == EXPECTED[kind]
    assert answer.headers["content-type"] == "application/json"
    json.loads(answer.body)


def test_openai_envelopes_and_headers() -> None:
    rate = error_answer("ModelRateLimit", "OpenAI", "gpt", 2.5, now_wall=0.0)
    assert rate.status == 429 and rate.headers["retry-after"] == "3" and rate.headers["retry-after-ms"] == "2500"
    assert rate.headers["x-ratelimit-remaining-requests"] == "0" and rate.headers["x-request-id"].startswith("req_")
    assert json.loads(rate.body)["error"] | {"message": ""} == {"message": "", "type": "requests", "param": None, "code": "rate_limit_exceeded"}
    quota = error_answer("ModelQuotaExhausted", "OpenAI", "gpt", None, now_wall=0.0)
    assert quota.headers["x-should-retry"] == "false" and "retry-after" not in quota.headers
    assert json.loads(quota.body)["error"]["code"] == json.loads(quota.body)["error"]["type"] == "insufficient_quota"
    assert error_answer("ModelOverloaded", "OpenAI", "gpt", None).status == 503
    context = json.loads(error_answer("ModelContextLength", "OpenAI", "gpt", None).body)["error"]
    assert (context["type"], context["code"], context["param"]) == ("invalid_request_error", "context_length_exceeded", "messages")


def test_anthropic_envelopes_and_headers() -> None:
    rate = error_answer("ModelRateLimit", "Anthropic", "claude", 1.0, now_wall=0.0)
    body = json.loads(rate.body)
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert rate.headers["retry-after"] == "1" and rate.headers["anthropic-ratelimit-requests-reset"] == "1970-01-01T00:00:01Z"
    overloaded = error_answer("ModelOverloaded", "Anthropic", "claude", None)
    assert overloaded.status == 529 and json.loads(overloaded.body)["error"]["type"] == "overloaded_error"
    assert "retry-after" not in overloaded.headers  # none unless retryAfter is set
    assert json.loads(error_answer("ModelServerError", "Anthropic", "c", None).body)["error"]["type"] == "api_error"
    assert json.loads(error_answer("ModelContextLength", "Anthropic", "c", None).body)["error"]["type"] == "invalid_request_error"


def test_gemini_envelopes_carry_retry_info_and_quota_failure() -> None:
    rate = error_answer("ModelRateLimit", "Gemini", "gemini-2.0-flash", 0.5)
    error = json.loads(rate.body)["error"]
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED") and "retry-after" not in rate.headers
    types = {d["@type"].rsplit(".", 1)[1]: d for d in error["details"]}
    assert types["RetryInfo"]["retryDelay"] == "0.5s" and types["QuotaFailure"]["violations"][0]["quotaDimensions"]["model"] == "gemini-2.0-flash"
    quota = json.loads(error_answer("ModelQuotaExhausted", "Gemini", "g", None).body)["error"]
    assert not any("RetryInfo" in d["@type"] for d in quota["details"])
    assert json.loads(error_answer("ModelOverloaded", "Gemini", "g", None).body)["error"]["status"] == "UNAVAILABLE"
    assert json.loads(error_answer("ModelServerError", "Gemini", "g", None).body)["error"]["status"] == "INTERNAL"
    assert json.loads(error_answer("ModelContextLength", "Gemini", "g", None).body)["error"]["status"] == "INVALID_ARGUMENT"


def read(provider: Any, body: bytes, streams: bool) -> AnswerReader:
    reader = AnswerReader(provider)
    if streams:
        splitter = SseSplitter()
        for event in [*splitter.feed(body), *splitter.close()]:
            reader.event(event)
        reader.finish()
    else:
        reader.body(body)
    return reader


@pytest.mark.parametrize("streams", [False, True])
@pytest.mark.parametrize(("provider", "path", "operation"), [
    ("OpenAI", "/v1/chat/completions", "chat"), ("OpenAI", "/v1/responses", "chat"),
    ("OpenAI", "/v1/completions", "text_completion"), ("Anthropic", "/v1/messages", "chat"),
    ("Gemini", "/v1beta/models/g:generateContent", "generate_content"),
])
def test_safety_answers_are_complete_refusals(provider: Any, path: str, operation: str, streams: bool) -> None:
    answer = safety_answer(provider, operation, path, "m", streams, now_wall=0.0)
    assert answer.status == 200
    assert answer.headers["content-type"] == ("text/event-stream" if streams else "application/json")
    reader = read(provider, answer.body, streams)
    assert reader.problem == "safety_block"
    assert reader.ended or not streams  # a refusal is a finished stream, not a cut one


def test_truncated_json_does_not_parse() -> None:
    for body in (b'{"a": 1}', b"{}", b"[]", b"x"):
        with pytest.raises(ValueError):
            json.loads(truncate_json(body))


def test_string_tool_arguments_stop_parsing_and_object_ones_change_type() -> None:
    openai: dict[str, Any] = {"choices": [{"index": 0, "message": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":"Paris"}'}}]}}]}
    assert corrupt_tool_calls("OpenAI", openai)
    with pytest.raises(ValueError):
        json.loads(openai["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])
    anthropic: dict[str, Any] = {"content": [{"type": "text", "text": "x"}, {"type": "tool_use", "input": {"city": "Paris", "days": 3, "ok": True, "tags": []}}]}
    assert corrupt_tool_calls("Anthropic", anthropic)
    assert anthropic["content"][1]["input"] == {"city": 0, "days": "3!", "ok": "not-a-boolean", "tags": "not-an-array"}
    gemini: dict[str, Any] = {"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]}}]}
    assert corrupt_tool_calls("Gemini", gemini)
    assert gemini["candidates"][0]["content"]["parts"][0]["functionCall"]["args"] == {"__agentops_unexpected__": True}
    assert not corrupt_tool_calls("Gemini", {"candidates": [{"content": {"parts": [{"text": "no call"}]}}]})


def test_streamed_arguments_are_broken_once_per_call() -> None:
    seen: set[str] = set()

    def first(call: str) -> bool:
        fresh = call not in seen
        seen.add(call)
        return fresh

    def delta(index: int, part: str) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": index, "function": {"arguments": part}}]}}]}

    chunks: list[dict[str, Any]] = [delta(0, ""), delta(0, '{"a":1}'), delta(1, '{"b"'), delta(1, ":2}")]
    changed = [corrupt_tool_calls("OpenAI", c, first) for c in chunks]
    assert changed == [True, False, True, False]
    assert "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks[:2]) == '{{"a":1}'
    event: dict[str, Any] = {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}}
    assert corrupt_tool_calls("Anthropic", event, first) and event["delta"]["partial_json"] == "{"
