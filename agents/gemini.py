"""A `Model` over Gemini's REST API (`generateContent`), with aiohttp.

    POST {base}/v1beta/models/{model}:generateContent
    x-goog-api-key: <key>
    {"contents": [{"role": "user"|"model", "parts": [{"text": ...}]}, ...],
     "generationConfig": {...}}

The REST API rather than Google's SDK: one request shape is all the sample agents need,
aiohttp is already a dependency, and tests can point `base_url` at a local stand-in.
The caller owns the `aiohttp.ClientSession` (the agent's app opens it on startup and
closes it on cleanup); every request carries its own total timeout.

Every failure becomes a `ModelError` subclass with a message naming the upstream
status and Gemini's own `error.message`. The key never appears in a message, a log
line or an exception: it is sent only in the header and scrubbed from anything
Gemini echoes back. Redirects are not followed, so the key header cannot be
forwarded to another host.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

import aiohttp

from agentops_agents.model import (
    ModelAuthError,
    ModelBadResponse,
    ModelError,
    ModelRateLimited,
    ModelRequestRejected,
    ModelTimeout,
    ModelUnavailable,
    Role,
    Turn,
)

log = logging.getLogger(__name__)

# A generateContent answer is a few KiB; a body this large is not an answer to hold.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
# Gemini's error messages can run to paragraphs; an agent error should stay one line.
MAX_UPSTREAM_MESSAGE_CHARS = 300
# Summaries should stick to the text rather than be creative.
SUMMARY_TEMPERATURE = 0.2
# finishReason values meaning Gemini withheld the answer on purpose.
WITHHELD_REASONS = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"})


class GeminiPart(TypedDict):
    text: str


class GeminiContent(TypedDict):
    role: Role
    parts: list[GeminiPart]


class GenerateContentRequest(TypedDict):
    contents: list[GeminiContent]
    generationConfig: NotRequired[dict[str, Any]]


def content(role: Role, text: str) -> GeminiContent:
    return {"role": role, "parts": [{"text": text}]}


def chat_request(message: str, history: Sequence[Turn]) -> GenerateContentRequest:
    """The conversation so far, oldest first, then the new message."""
    return {"contents": [*(content(t.role, t.text) for t in history), content("user", message)]}


def summary_request(text: str, max_sentences: int) -> GenerateContentRequest:
    noun = "sentence" if max_sentences == 1 else "sentences"
    prompt = (
        f"Summarise the following text in at most {max_sentences} {noun}. "
        "Reply with the summary only, in the language of the text.\n\n"
        f"{text}"
    )
    return {"contents": [content("user", prompt)], "generationConfig": {"temperature": SUMMARY_TEMPERATURE}}


def text_from_response(payload: Any) -> str:
    """The answer's text: `candidates[0].content.parts[*].text`, or ModelBadResponse saying why not."""
    if not isinstance(payload, dict):
        raise ModelBadResponse("Gemini answered with JSON that is not an object")
    feedback = payload.get("promptFeedback")
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        raise ModelBadResponse(
            f"Gemini blocked the prompt (blockReason {feedback['blockReason']}); rephrase the request"
        )
    candidates = payload.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise ModelBadResponse("Gemini returned no candidates")
    first = candidates[0]
    if not isinstance(first, dict):
        raise ModelBadResponse("Gemini returned a malformed candidate (not an object)")
    body = first.get("content")
    parts = body.get("parts") if isinstance(body, dict) else None
    # Thought summaries (`"thought": true`) are the model's notes, not its answer.
    texts = [
        p["text"]
        for p in (parts if isinstance(parts, list) else [])
        if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")
    ]
    answer = "".join(texts).strip()
    if answer:
        return answer
    reason = first.get("finishReason")
    if reason in WITHHELD_REASONS:
        raise ModelBadResponse(f"Gemini withheld the answer (finishReason {reason}); rephrase the request")
    raise ModelBadResponse(f"Gemini's answer contains no text (finishReason {reason or 'not given'})")


def _upstream_error(body: bytes) -> tuple[str, str, list[Any]]:
    """(message, status name, details) of a Google API error body, as far as it has them."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body.decode("utf-8", "replace").strip(), "", []
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return "", "", []
    message, status, details = error.get("message"), error.get("status"), error.get("details")
    return (
        message if isinstance(message, str) else "",
        status if isinstance(status, str) else "",
        details if isinstance(details, list) else [],
    )


def _retry_delay(details: list[Any]) -> str | None:
    """Seconds from a google.rpc.RetryInfo detail ("37s", "1.5s"), rounded up."""
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return str(max(1, math.ceil(float(delay[:-1]))))
                except ValueError:
                    return None
    return None


def _has_reason(details: list[Any], reason: str) -> bool:
    return any(isinstance(d, dict) and d.get("reason") == reason for d in details)


def error_for_status(
    status: int, body: bytes, retry_after_header: str | None, *, api_key: str, model: str
) -> ModelError:
    """The ModelError for a non-200 answer from Gemini."""
    message, status_name, details = _upstream_error(body)
    # One line, without the final period so that "; retry after 7s" reads well.
    message = _scrub(" ".join(message.split()), api_key).rstrip(".")
    if len(message) > MAX_UPSTREAM_MESSAGE_CHARS:
        message = message[: MAX_UPSTREAM_MESSAGE_CHARS - 1] + "…"
    said = f": {message}" if message else ""
    upstream = f"{status} {status_name}".strip()

    if status == 429:
        retry_after = (retry_after_header or "").strip() or _retry_delay(details)
        if retry_after is None:
            hint = "retry later"
        elif retry_after.isdigit():
            hint = f"retry after {retry_after}s"
        else:
            hint = f"retry after {retry_after}"
        return ModelRateLimited(f"model rate limited by Gemini (429){said}; {hint}", retry_after)
    if status >= 500:
        return ModelUnavailable(f"Gemini failed with upstream status {upstream}{said}; try again later")
    if status in (401, 403) or _has_reason(details, "API_KEY_INVALID"):
        return ModelAuthError(
            f"Gemini rejected the API key ({upstream}){said}; check --gemini-api-key-file or GEMINI_API_KEY"
        )
    if status == 404:
        return ModelRequestRejected(
            f"Gemini rejected the request ({upstream}){said}; check --gemini-model ({model}) and --gemini-base-url"
        )
    if status >= 400:
        return ModelRequestRejected(f"Gemini rejected the request ({upstream}){said}")
    return ModelBadResponse(f"Gemini answered with unexpected status {status}; expected 200")


def _scrub(text: str, api_key: str) -> str:
    return text.replace(api_key, "<redacted>") if api_key else text


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise ModelBadResponse(f"Gemini's answer is larger than {MAX_RESPONSE_BYTES} bytes")
    return bytes(body)


class GeminiClient:
    """`Model` backed by Gemini's `generateContent`."""

    def __init__(
        self, session: aiohttp.ClientSession, *, api_key: str, base_url: str, model: str, timeout_s: float
    ) -> None:
        self._session = session
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._model = model
        self._timeout_s = timeout_s

    @property
    def name(self) -> str:
        return "gemini"

    @property
    def url(self) -> str:
        return f"{self._base_url}/v1beta/models/{self._model}:generateContent"

    async def chat(self, message: str, history: Sequence[Turn]) -> str:
        return await self.generate(chat_request(message, history))

    async def summarize(self, text: str, max_sentences: int) -> str:
        return await self.generate(summary_request(text, max_sentences))

    async def generate(self, request: GenerateContentRequest) -> str:
        """POST one generateContent request; the answer's text or a ModelError."""
        headers: Mapping[str, str] = {"x-goog-api-key": self._api_key, "Content-Type": "application/json"}
        try:
            async with self._session.post(
                self.url,
                data=json.dumps(request),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                allow_redirects=False,
            ) as response:
                body = await _read_capped(response)
                status, retry_after = response.status, response.headers.get("Retry-After")
        except TimeoutError as exc:  # aiohttp's timeouts subclass it
            raise ModelTimeout(
                f"the model did not answer within {self._timeout_s:g} s (--model-timeout); "
                "try again, or allow more time",
                self._timeout_s,
            ) from exc
        except aiohttp.ClientError as exc:
            raise ModelUnavailable(
                f"cannot reach Gemini at {self._base_url}: {_scrub(str(exc), self._api_key) or type(exc).__name__}"
            ) from exc
        log.debug("Gemini %s answered %d (%d bytes)", self._model, status, len(body))
        if status != 200:
            raise error_for_status(status, body, retry_after, api_key=self._api_key, model=self._model)
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelBadResponse("Gemini answered 200 with a body that is not valid JSON") from exc
        return text_from_response(payload)
