"""The Gemini client's pure parts: request shapes, reading answers, turning errors into
ModelErrors. The client over HTTP is tested against a local stand-in in
tests/integration/test_gemini_agents.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentops_agents.gemini import chat_request, error_for_status, summary_request, text_from_response
from agentops_agents.model import (
    ModelAuthError,
    ModelBadResponse,
    ModelRateLimited,
    ModelRequestRejected,
    ModelUnavailable,
    Turn,
)

KEY = "AIzaTEST-not-a-real-key_0123456789"


def google_error(code: int, status: str, message: str, details: list[Any] | None = None) -> bytes:
    return json.dumps({"error": {"code": code, "status": status, "message": message, "details": details or []}}).encode()


def test_chat_request_maps_history_to_roles() -> None:
    request = chat_request("and now?", [Turn("user", "hi"), Turn("model", "hello")])
    assert request == {"contents": [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"text": "hello"}]},
        {"role": "user", "parts": [{"text": "and now?"}]},
    ]}


def test_summary_request_asks_for_at_most_n_sentences() -> None:
    request = summary_request("Long text.", 1)
    prompt = request["contents"][0]["parts"][0]["text"]
    assert prompt.startswith("Summarise the following text in at most 1 sentence.")
    assert prompt.endswith("\n\nLong text.")
    assert request["generationConfig"] == {"temperature": 0.2}


def test_text_from_response_joins_the_parts_of_the_first_candidate() -> None:
    payload = {"candidates": [
        {"content": {"role": "model", "parts": [{"text": "thinking", "thought": True}, {"text": "Hello "}, {"text": "there."}]}},
        {"content": {"role": "model", "parts": [{"text": "ignored"}]}},
    ]}
    assert text_from_response(payload) == "Hello there."


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ([], "Gemini answered with JSON that is not an object"),
        ({"candidates": []}, "Gemini returned no candidates"),
        ({"promptFeedback": {"blockReason": "SAFETY"}}, "Gemini blocked the prompt (blockReason SAFETY); rephrase the request"),
        ({"candidates": [{"finishReason": "SAFETY"}]}, "Gemini withheld the answer (finishReason SAFETY)"),
        ({"candidates": [{"content": {"parts": [{"text": " "}]}, "finishReason": "MAX_TOKENS"}]},
         "Gemini's answer contains no text (finishReason MAX_TOKENS)"),
        ({"candidates": ["nonsense"]}, "Gemini returned a malformed candidate"),
    ],
)
def test_unusable_answers_say_why(payload: Any, error: str) -> None:
    with pytest.raises(ModelBadResponse) as caught:
        text_from_response(payload)
    assert str(caught.value).startswith(error)


def test_429_uses_retry_info_when_there_is_no_header() -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "36.2s"}]
    error = error_for_status(429, google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", details), None, api_key=KEY, model="m")
    assert isinstance(error, ModelRateLimited)
    assert error.retry_after == "37"
    assert str(error) == "model rate limited by Gemini (429): Quota exceeded; retry after 37s"


def test_429_without_any_hint_says_retry_later() -> None:
    error = error_for_status(429, b"busy", None, api_key=KEY, model="m")
    assert isinstance(error, ModelRateLimited) and error.retry_after is None
    assert str(error) == "model rate limited by Gemini (429): busy; retry later"


def test_invalid_key_reported_as_400_is_an_auth_error_and_the_key_is_scrubbed() -> None:
    body = google_error(400, "INVALID_ARGUMENT", f"API key not valid: {KEY}.", [{"reason": "API_KEY_INVALID"}])
    error = error_for_status(400, body, None, api_key=KEY, model="m")
    assert isinstance(error, ModelAuthError)
    assert KEY not in str(error)
    assert str(error) == (
        "Gemini rejected the API key (400 INVALID_ARGUMENT): API key not valid: <redacted>; "
        "check --gemini-api-key-file or GEMINI_API_KEY"
    )


@pytest.mark.parametrize(
    ("status", "kind", "start"),
    [
        (503, ModelUnavailable, "Gemini failed with upstream status 503 UNAVAILABLE: The model is overloaded; try again later"),
        (404, ModelRequestRejected, "Gemini rejected the request (404 NOT_FOUND): The model is overloaded; check --gemini-model (m)"),
        (400, ModelRequestRejected, "Gemini rejected the request (400 INVALID_ARGUMENT): The model is overloaded"),
        (302, ModelBadResponse, "Gemini answered with unexpected status 302"),
    ],
)
def test_statuses_map_to_error_kinds(status: int, kind: type[Exception], start: str) -> None:
    names = {503: "UNAVAILABLE", 404: "NOT_FOUND", 400: "INVALID_ARGUMENT", 302: ""}
    error = error_for_status(status, google_error(status, names[status], "The model is overloaded."), None, api_key=KEY, model="m")
    assert type(error) is kind
    assert str(error).startswith(start)


def test_long_upstream_messages_are_cut_to_one_line() -> None:
    error = error_for_status(500, google_error(500, "INTERNAL", "line\n" * 200), None, api_key=KEY, model="m")
    assert "\n" not in str(error) and "…" in str(error) and len(str(error)) < 400
