"""Local stand-ins for the three LLM providers the model gateway fronts: Gemini, OpenAI, Anthropic.

One aiohttp server on 127.0.0.1 (a port the OS picks, in a thread with its own event
loop) answers on each provider's real paths, so an SDK's base URL can point straight
at it or at a gateway in front of it:

- Gemini, the Generative Language API (`x-goog-api-key`, or a `?key=` query):
  `POST /v1beta/models/{model}:generateContent` and
  `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` (SSE, `data: {json}\\r\\n\\r\\n`,
  each event a GenerateContentResponse; the last carries finishReason "STOP" and the full
  usageMetadata, the earlier ones only the prompt's count). The same
  under `/v1/` (google-genai 3.x calls v1 by default; Gemini serves both). Without
  `alt=sse` the stream is one JSON array of the same responses.
- OpenAI, Chat Completions (`Authorization: Bearer`): `POST /v1/chat/completions`,
  non-streaming (`chat.completion`) and streaming (`data: {chunk}\\n\\n` per
  `chat.completion.chunk`: a role chunk, the content or tool-call argument fragments, a
  finish chunk, a usage chunk when `stream_options.include_usage` is true, then
  `data: [DONE]\\n\\n`).
- Anthropic, Messages (the key in `x-api-key` or `Authorization: Bearer`, which is
  where anthropic 2.x puts an API key; `anthropic-version` required): `POST /v1/messages`,
  non-streaming (`message`) and streaming (`event: X\\ndata: {json}\\n\\n` for
  message_start, content_block_start, ping, content_block_delta (text_delta or
  input_json_delta), content_block_stop, message_delta, message_stop).

What a test controls, per provider: the `Answer` (text, tool call, token counts, how many
stream pieces, a pause between stream events, extra headers, a delay before answering,
dropping the connection mid-stream) and an `ErrorAnswer` (status, JSON body, headers;
for every request or the next n) built with `gemini_error`, `openai_error` or
`anthropic_error` in the provider's own envelope. Optionally the API key each provider
accepts (`StandIns(keys=...)`); a missing key is always refused as the provider does.

What it records: every request (`Recorded`: method, path with query, headers, raw body
bytes, arrival time), including ones to paths it does not serve (404, provider None);
every response (`Sent`: status, headers as sent, and the exact body bytes of each write
with the time it was written, so a test can compare a gateway's output byte for byte
and see whether stream events were forwarded one by one).

What it does not do: no model (the answer is whatever the test set, whatever the
prompt), no validation of request bodies beyond "is JSON", no other endpoints (models
list, embeddings, countTokens, Files, Responses API, batch, Live/WebSocket), no
Vertex AI paths, no error events inside a stream (Anthropic's `event: error`), no real
rate limiting or rate-limit header arithmetic (fixed illustrative values), no TLS, no
HTTP/2, no compression. Checks come in the provider's order: the key (missing or not
the one set), then the JSON, then a forced ErrorAnswer (only requests that reach it
count towards its `times`), then the Answer. Field sets follow the providers' documented responses as the installed
SDKs' types describe them (google-genai, openai, anthropic); IDs are random in the
providers' formats.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import string
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from aiohttp import web
from multidict import CIMultiDict

Provider = Literal["gemini", "openai", "anthropic"]
PROVIDERS: tuple[Provider, ...] = ("gemini", "openai", "anthropic")

# Each SDK's base-URL variable and what follows the origin in it (OpenAI's includes /v1).
BASE_URL_ENV: dict[Provider, tuple[str, str]] = {
    "gemini": ("GOOGLE_GEMINI_BASE_URL", ""),
    "openai": ("OPENAI_BASE_URL", "/v1"),
    "anthropic": ("ANTHROPIC_BASE_URL", ""),
}
# The variable each SDK reads its API key from (google-genai also reads GOOGLE_API_KEY, first).
API_KEY_ENV: dict[Provider, str] = {"gemini": "GEMINI_API_KEY", "openai": "OPENAI_API_KEY",
                                    "anthropic": "ANTHROPIC_API_KEY"}

_ALNUM = string.ascii_letters + string.digits


def sdk_env(origin: str, keys: Mapping[Provider, str] | None = None) -> dict[str, str]:
    """The environment that points all three SDKs at `origin` (a stand-in or a gateway)."""
    env = {name: origin.rstrip("/") + suffix for name, suffix in BASE_URL_ENV.values()}
    for provider, key in (keys or {}).items():
        env[API_KEY_ENV[provider]] = key
    return env


@dataclass(frozen=True)
class ToolCall:
    """A function call the model makes: Gemini functionCall, OpenAI tool_calls, Anthropic tool_use."""

    name: str
    arguments: Mapping[str, Any]
    id: str = ""  # OpenAI "call_…", Anthropic "toolu_…"; generated when empty; Gemini sends none

    def arguments_json(self) -> str:
        """The arguments as OpenAI and Anthropic stream them: compact JSON text."""
        return json.dumps(self.arguments, separators=(",", ":"))


@dataclass(frozen=True)
class Answer:
    """What a provider answers to a successful request."""

    text: str = "The stand-in answers."
    tool_call: ToolCall | None = None  # after the text, if any (use `Answer.tool` for a call alone)
    input_tokens: int = 12
    output_tokens: int = 7
    chunks: int = 3  # stream pieces the text (and, for OpenAI/Anthropic, tool arguments) is cut into
    pause: float = 0.0  # seconds between two stream events
    delay: float = 0.0  # seconds before the status line: a slow provider (or a read timeout)
    cut_after: int | None = None  # streams only: drop the connection after this many events
    headers: Mapping[str, str] = field(default_factory=dict)  # added to (or replacing) the provider's

    @classmethod
    def tool(cls, name: str, arguments: Mapping[str, Any], **kwargs: Any) -> Answer:
        return cls(text="", tool_call=ToolCall(name, arguments), **kwargs)

    def text_pieces(self) -> list[str]:
        return split(self.text, self.chunks) if self.text else []


@dataclass(frozen=True)
class ErrorAnswer:
    """An error response; see gemini_error, openai_error, anthropic_error for real envelopes."""

    status: int
    body: Any  # JSON
    headers: Mapping[str, str] = field(default_factory=dict)
    times: int | None = None  # answer this to the next n requests, then the Answer again; None: always


@dataclass(frozen=True)
class Recorded:
    """One request as it arrived."""

    provider: Provider | None  # None: a path no provider serves
    method: str
    path: str  # with the query string, as sent
    headers: tuple[tuple[str, str], ...]
    body: bytes
    at: float  # time.monotonic()

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Sent:
    """One response as it left: status, headers and each body write with its time.monotonic()."""

    provider: Provider | None
    path: str
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    writes: list[tuple[float, bytes]] = field(default_factory=list)
    complete: bool = False  # True once the last write began; False for good when the connection dropped

    @property
    def body(self) -> bytes:
        return b"".join(data for _, data in self.writes)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def split(text: str, pieces: int) -> list[str]:
    """`text` cut into `pieces` consecutive non-empty parts (fewer if it is shorter)."""
    pieces = max(1, min(pieces, len(text)))
    size, extra = divmod(len(text), pieces)
    out, start = [], 0
    for i in range(pieces):
        end = start + size + (1 if i < extra else 0)
        out.append(text[start:end])
        start = end
    return out


def _rand(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(random.choice(alphabet) for _ in range(n))


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _pretty(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()


# --- errors, in each provider's envelope ----------------------------------------------

def gemini_error(code: int, status: str, message: str, *, retry_delay: str | None = None,
                 headers: Mapping[str, str] | None = None, times: int | None = None) -> ErrorAnswer:
    """A google.rpc.Status error, e.g. (429, "RESOURCE_EXHAUSTED", ..., retry_delay="7s")."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if retry_delay is not None:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}]
    return ErrorAnswer(code, {"error": error}, dict(headers or {}), times)


def openai_error(status: int, message: str, *, type: str, code: str | None = None, param: str | None = None,
                 headers: Mapping[str, str] | None = None, times: int | None = None) -> ErrorAnswer:
    """An OpenAI error, e.g. (429, ..., type="requests", code="rate_limit_exceeded")."""
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return ErrorAnswer(status, body, dict(headers or {}), times)


def anthropic_error(status: int, type: str, message: str, *, headers: Mapping[str, str] | None = None,
                    times: int | None = None) -> ErrorAnswer:
    """An Anthropic error, e.g. (529, "overloaded_error", "Overloaded")."""
    body = {"type": "error", "error": {"type": type, "message": message}, "request_id": _anthropic_request_id()}
    return ErrorAnswer(status, body, dict(headers or {}), times)


def _anthropic_request_id() -> str:
    return "req_011C" + _rand(20)


# --- response bodies, as each provider builds them --------------------------------------

def gemini_response(answer: Answer, model: str, *, parts: Sequence[dict[str, Any]] | None = None,
                    final: bool = True, response_id: str = "") -> dict[str, Any]:
    """A GenerateContentResponse: the whole answer, or (`parts`, `final`) one stream event of it."""
    if parts is None:
        parts = ([{"text": answer.text}] if answer.text else []) + _gemini_call_parts(answer)
    candidate: dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}}
    usage: dict[str, Any] = {"promptTokenCount": answer.input_tokens, "totalTokenCount": answer.input_tokens,
                             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": answer.input_tokens}]}
    if final:
        candidate["finishReason"] = "STOP"
        usage = {"promptTokenCount": answer.input_tokens, "candidatesTokenCount": answer.output_tokens,
                 "totalTokenCount": answer.input_tokens + answer.output_tokens,
                 "promptTokensDetails": usage["promptTokensDetails"]}
    candidate["index"] = 0
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model,
            "responseId": response_id or _rand(22, _ALNUM + "-_")}


def _gemini_call_parts(answer: Answer) -> list[dict[str, Any]]:
    if answer.tool_call is None:
        return []
    call: dict[str, Any] = {"name": answer.tool_call.name, "args": dict(answer.tool_call.arguments)}
    if answer.tool_call.id:
        call["id"] = answer.tool_call.id
    return [{"functionCall": call}]


def gemini_stream(answer: Answer, model: str) -> list[dict[str, Any]]:
    """The GenerateContentResponses of a stream: text pieces, then a function call whole, as Gemini sends."""
    response_id = _rand(22, _ALNUM + "-_")
    events: list[list[dict[str, Any]]] = [[{"text": piece}] for piece in answer.text_pieces()]
    if answer.tool_call is not None:
        events.append(_gemini_call_parts(answer))
    if not events:
        events = [[{"text": ""}]]
    return [gemini_response(answer, model, parts=parts, final=i == len(events) - 1, response_id=response_id)
            for i, parts in enumerate(events)]


def _openai_usage(answer: Answer) -> dict[str, Any]:
    return {"prompt_tokens": answer.input_tokens, "completion_tokens": answer.output_tokens,
            "total_tokens": answer.input_tokens + answer.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def _openai_tool_id(answer: Answer) -> str:
    assert answer.tool_call is not None
    return answer.tool_call.id or "call_" + _rand(24)


def openai_completion(answer: Answer, model: str) -> dict[str, Any]:
    """A `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.text or None}
    if answer.tool_call is not None:
        message["tool_calls"] = [{"id": _openai_tool_id(answer), "type": "function",
                                  "function": {"name": answer.tool_call.name,
                                               "arguments": answer.tool_call.arguments_json()}}]
    message.update(refusal=None, annotations=[])
    return {
        "id": "chatcmpl-" + _rand(29), "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if answer.tool_call is not None else "stop"}],
        "usage": _openai_usage(answer), "service_tier": "default", "system_fingerprint": "fp_" + secrets.token_hex(5),
    }


def openai_chunks(answer: Answer, model: str, *, include_usage: bool) -> list[dict[str, Any]]:
    """The `chat.completion.chunk` objects of a stream, in order (without the final [DONE])."""
    head = {"id": "chatcmpl-" + _rand(29), "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "service_tier": "default", "system_fingerprint": "fp_" + secrets.token_hex(5)}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        body = {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            body["usage"] = None
        return body

    out: list[dict[str, Any]] = []
    if answer.tool_call is not None and not answer.text:
        first: dict[str, Any] = {"role": "assistant", "content": None}
    else:
        first = {"role": "assistant", "content": "", "refusal": None}
    if answer.tool_call is None or answer.text:
        out.append(chunk(first))
        out += [chunk({"content": piece}) for piece in answer.text_pieces()]
    if answer.tool_call is not None:
        call = {"index": 0, "id": _openai_tool_id(answer), "type": "function",
                "function": {"name": answer.tool_call.name, "arguments": ""}}
        opening = {**first, "tool_calls": [call], "refusal": None} if not answer.text else {"tool_calls": [call]}
        out.append(chunk(opening))
        out += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                for piece in split(answer.tool_call.arguments_json(), answer.chunks)]
    out.append(chunk({}, "tool_calls" if answer.tool_call is not None else "stop"))
    if include_usage:
        out.append({**head, "choices": [], "usage": _openai_usage(answer)})
    return out


def _anthropic_usage(answer: Answer, output_tokens: int) -> dict[str, Any]:
    return {"input_tokens": answer.input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens, "service_tier": "standard"}


def _anthropic_blocks(answer: Answer) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": answer.text}] if answer.text else []
    if answer.tool_call is not None:
        blocks.append({"type": "tool_use", "id": answer.tool_call.id or "toolu_01" + _rand(22),
                       "name": answer.tool_call.name, "input": dict(answer.tool_call.arguments)})
    return blocks


def anthropic_message(answer: Answer, model: str) -> dict[str, Any]:
    """A Messages API `message` object."""
    return {"model": model, "id": "msg_01" + _rand(22), "type": "message", "role": "assistant",
            "content": _anthropic_blocks(answer),
            "stop_reason": "tool_use" if answer.tool_call is not None else "end_turn", "stop_sequence": None,
            "usage": _anthropic_usage(answer, answer.output_tokens)}


def anthropic_events(answer: Answer, model: str) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) pairs of a Messages stream, in order."""
    start = {**anthropic_message(answer, model), "content": [], "stop_reason": None,
             "usage": _anthropic_usage(answer, 1)}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
    opening: dict[str, Any]
    pieces: list[dict[str, Any]]
    for index, block in enumerate(_anthropic_blocks(answer)):
        if block["type"] == "text":
            opening, pieces = {"type": "text", "text": ""}, [{"type": "text_delta", "text": p}
                                                              for p in answer.text_pieces()]
        else:
            assert answer.tool_call is not None
            opening = {**block, "input": {}}
            pieces = [{"type": "input_json_delta", "partial_json": ""}] + [
                {"type": "input_json_delta", "partial_json": p}
                for p in split(answer.tool_call.arguments_json(), answer.chunks)]
        events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": opening}))
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        events += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
                   for d in pieces]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use" if answer.tool_call is not None else "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": answer.output_tokens}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


# --- the headers each provider sends -----------------------------------------------------

def _gemini_headers(content_type: str) -> dict[str, str]:
    return {"Content-Type": content_type, "Vary": "Origin, X-Origin, Referer", "Server": "scaffolding on HTTPServer2",
            "X-XSS-Protection": "0", "X-Frame-Options": "SAMEORIGIN", "X-Content-Type-Options": "nosniff",
            "Server-Timing": f"gfet4t7; dur={random.randint(200, 900)}"}


def _openai_headers(content_type: str) -> dict[str, str]:
    return {"Content-Type": content_type, "openai-organization": "user-standin", "openai-processing-ms": "321",
            "openai-project": "proj_standin", "openai-version": "2020-10-01",
            "x-ratelimit-limit-requests": "10000", "x-ratelimit-limit-tokens": "30000000",
            "x-ratelimit-remaining-requests": "9999", "x-ratelimit-remaining-tokens": "29999990",
            "x-ratelimit-reset-requests": "6ms", "x-ratelimit-reset-tokens": "0s",
            "x-request-id": "req_" + secrets.token_hex(16), "Server": "cloudflare"}


def _anthropic_headers(content_type: str) -> dict[str, str]:
    return {"Content-Type": content_type, "request-id": _anthropic_request_id(),
            "anthropic-organization-id": "00000000-0000-4000-8000-000000000000",
            "anthropic-ratelimit-requests-limit": "4000", "anthropic-ratelimit-requests-remaining": "3999",
            "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:00Z", "Server": "cloudflare"}


_HEADERS = {"gemini": _gemini_headers, "openai": _openai_headers, "anthropic": _anthropic_headers}
_JSON_TYPE: dict[Provider, str] = {"gemini": "application/json; charset=UTF-8", "openai": "application/json",
                                   "anthropic": "application/json"}
_SSE_TYPE: dict[Provider, str] = {"gemini": "text/event-stream", "openai": "text/event-stream; charset=utf-8",
                                  "anthropic": "text/event-stream; charset=utf-8"}


def _missing_key(provider: Provider) -> ErrorAnswer:
    if provider == "gemini":
        return gemini_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without "
                            "established identity). Please use API Key or other form of API consumer identity "
                            "to call this API.")
    if provider == "openai":
        return openai_error(401, "You didn't provide an API key. You need to provide your API key in an "
                            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                            type="invalid_request_error")
    return anthropic_error(401, "authentication_error", "x-api-key header is required")


def _wrong_key(provider: Provider, key: str) -> ErrorAnswer:
    if provider == "gemini":
        answer = gemini_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
        answer.body["error"]["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                            "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]
        return answer
    if provider == "openai":
        shown = key[:3] + "*" * max(0, len(key) - 7) + key[-4:]
        return openai_error(401, f"Incorrect API key provided: {shown}. You can find your API key at "
                            "https://platform.openai.com/account/api-keys.", type="invalid_request_error",
                            code="invalid_api_key")
    return anthropic_error(401, "authentication_error", "invalid x-api-key")


def _bad_json(provider: Provider) -> ErrorAnswer:
    if provider == "gemini":
        return gemini_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    if provider == "openai":
        return openai_error(400, "We could not parse the JSON body of your request.", type="invalid_request_error")
    return anthropic_error(400, "invalid_request_error", "There was an issue with your request body.")


# --- the server -----------------------------------------------------------------------------

class StandIns:
    """`with StandIns() as providers:` serves all three on `providers.origin` until the block ends.

    Thread-safe: the server runs in its own thread; tests set answers and read records
    from theirs.
    """

    def __init__(self, *, keys: Mapping[Provider, str] | None = None) -> None:
        self.keys: dict[Provider, str] = dict(keys or {})  # the only key a provider accepts, if set
        self._answers: dict[Provider, Answer] = {p: Answer() for p in PROVIDERS}
        self._errors: dict[Provider, ErrorAnswer | None] = {p: None for p in PROVIDERS}
        self._requests: list[Recorded] = []
        self._sent: list[Sent] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="model-standins", daemon=True)
        self.origin = ""
        self.port = 0

    # --- test-facing --------------------------------------------------------------------

    def base_url(self, provider: Provider) -> str:
        """What the provider's SDK base-URL variable is set to, to reach this stand-in directly."""
        return self.origin + BASE_URL_ENV[provider][1]

    def env(self, keys: Mapping[Provider, str] | None = None) -> dict[str, str]:
        return sdk_env(self.origin, keys)

    def answer(self, provider: Provider, answer: Answer | None = None, **changes: Any) -> Answer:
        """Set what `provider` answers from now on (a new Answer, or changes to the current one)."""
        with self._lock:
            self._answers[provider] = replace(answer or self._answers[provider], **changes)
            return self._answers[provider]

    def fail(self, provider: Provider, error: ErrorAnswer | None) -> None:
        """Answer `error` (for its `times`, or until cleared with None) instead of the Answer."""
        with self._lock:
            self._errors[provider] = error

    def requests(self, provider: Provider | None = None) -> list[Recorded]:
        """Requests so far, in arrival order: to `provider`, or all (also to paths no provider serves)."""
        with self._lock:
            return [r for r in self._requests if provider is None or r.provider == provider]

    def sent(self, provider: Provider | None = None) -> list[Sent]:
        """Responses sent so far (copies; a stream still in flight shows what left until now)."""
        with self._lock:
            return [replace(s, writes=list(s.writes)) for s in self._sent if provider is None or s.provider == provider]

    def reset(self) -> None:
        """Forget records, answers and errors."""
        with self._lock:
            self._requests.clear()
            self._sent.clear()
            self._answers = {p: Answer() for p in PROVIDERS}
            self._errors = {p: None for p in PROVIDERS}

    def __enter__(self) -> StandIns:
        self._thread.start()
        try:
            self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        except BaseException:
            self._stop()
            raise
        self.origin = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    # --- server ---------------------------------------------------------------------------

    async def _start(self) -> int:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{version:v1beta|v1}/models/{call}", self._gemini)
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        # A handler is cancelled when its client goes away (as a provider stops generating),
        # and those still running at shutdown (a long pause or delay) after half a second.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def _record(self, request: web.Request, provider: Provider | None) -> Recorded:
        body = await request.read()
        record = Recorded(provider, request.method, request.raw_path, tuple(request.headers.items()), body,
                          time.monotonic())
        with self._lock:
            self._requests.append(record)
        return record

    def _take(self, provider: Provider) -> tuple[Answer, ErrorAnswer | None]:
        with self._lock:
            error = self._errors[provider]
            if error is not None and error.times is not None:
                self._errors[provider] = replace(error, times=error.times - 1) if error.times > 1 else None
            return self._answers[provider], error

    def _refusal(self, provider: Provider, record: Recorded, key: str | None) -> ErrorAnswer | None:
        if not key:
            return _missing_key(provider)
        if provider in self.keys and key != self.keys[provider]:
            return _wrong_key(provider, key)
        if provider == "anthropic" and not record.header("anthropic-version"):
            return anthropic_error(400, "invalid_request_error", "anthropic-version: header is required")
        return None

    async def _prologue(self, request: web.Request, provider: Provider, key: str | None
                        ) -> tuple[Answer, Any] | ErrorAnswer:
        """Record; then the refusal or forced error to send, or the answer and the parsed body."""
        record = await self._record(request, provider)
        refusal = self._refusal(provider, record, key)
        if refusal is not None:
            return refusal
        try:
            body = json.loads(record.body)
        except ValueError:
            return _bad_json(provider)
        answer, forced = self._take(provider)
        if forced is not None:
            return forced
        if answer.delay:
            await asyncio.sleep(answer.delay)
        return answer, body

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        outcome = await self._prologue(request, "gemini", key)
        if isinstance(outcome, ErrorAnswer):
            return await self._send_error(request, "gemini", outcome)
        answer, _ = outcome
        model, _, method = request.match_info["call"].partition(":")
        if method == "generateContent":
            return await self._send(request, "gemini", answer, 200, _JSON_TYPE["gemini"],
                                    [_pretty(gemini_response(answer, model))], stream=False)
        if method == "streamGenerateContent":
            events = gemini_stream(answer, model)
            if request.query.get("alt") == "sse":
                return await self._send(request, "gemini", answer, 200, _SSE_TYPE["gemini"],
                                        [b"data: " + _compact(e) + b"\r\n\r\n" for e in events], stream=True)
            parts = [(b"[" if i == 0 else b",\r\n") + _pretty(e).rstrip(b"\n") for i, e in enumerate(events)]
            return await self._send(request, "gemini", answer, 200, _JSON_TYPE["gemini"], parts + [b"]"],
                                    stream=True)
        return await self._send_error(request, "gemini", gemini_error(
            404, "NOT_FOUND", f"Method {method!r} is not served by the stand-in."))

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        outcome = await self._prologue(request, "openai", auth.removeprefix("Bearer ").strip() or None)
        if isinstance(outcome, ErrorAnswer):
            return await self._send_error(request, "openai", outcome)
        answer, body = outcome
        model = str(body.get("model", ""))
        if not body.get("stream"):
            return await self._send(request, "openai", answer, 200, _JSON_TYPE["openai"],
                                    [_pretty(openai_completion(answer, model))], stream=False)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = [b"data: " + _compact(c) + b"\n\n" for c in openai_chunks(answer, model, include_usage=include_usage)]
        return await self._send(request, "openai", answer, 200, _SSE_TYPE["openai"], events + [b"data: [DONE]\n\n"],
                                stream=True)

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        # The API takes the key in x-api-key or, as anthropic 2.x sends it, Authorization: Bearer.
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        outcome = await self._prologue(request, "anthropic", request.headers.get("x-api-key") or bearer or None)
        if isinstance(outcome, ErrorAnswer):
            return await self._send_error(request, "anthropic", outcome)
        answer, body = outcome
        model = str(body.get("model", ""))
        if not body.get("stream"):
            return await self._send(request, "anthropic", answer, 200, _JSON_TYPE["anthropic"],
                                    [_compact(anthropic_message(answer, model))], stream=False)
        events = [f"event: {name}\ndata: ".encode() + _compact(data) + b"\n\n"
                  for name, data in anthropic_events(answer, model)]
        return await self._send(request, "anthropic", answer, 200, _SSE_TYPE["anthropic"], events, stream=True,
                                extra={"Cache-Control": "no-cache"})

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        await self._record(request, None)
        body = _compact({"error": {"message": f"Unknown path {request.raw_path} (model stand-ins)"}})
        return await self._write(request, None, 404, {"Content-Type": "application/json"}, [body], 0.0, None,
                                 stream=False)

    async def _send_error(self, request: web.Request, provider: Provider, error: ErrorAnswer) -> web.StreamResponse:
        encode = _compact if provider == "anthropic" else _pretty
        headers = {**_HEADERS[provider](_JSON_TYPE[provider]), **error.headers}
        return await self._write(request, provider, error.status, headers, [encode(error.body)], 0.0, None,
                                 stream=False)

    async def _send(self, request: web.Request, provider: Provider, answer: Answer, status: int, content_type: str,
                    pieces: list[bytes], *, stream: bool, extra: Mapping[str, str] | None = None
                    ) -> web.StreamResponse:
        headers = {**_HEADERS[provider](content_type), **(extra or {}), **answer.headers}
        return await self._write(request, provider, status, headers, pieces, answer.pause,
                                 answer.cut_after if stream else None, stream=stream)

    async def _write(self, request: web.Request, provider: Provider | None, status: int, headers: Mapping[str, str],
                     pieces: list[bytes], pause: float, cut_after: int | None, *, stream: bool) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers=CIMultiDict(headers))
        if not stream:
            response.content_length = sum(len(p) for p in pieces)
        try:
            await response.prepare(request)
        except ConnectionResetError:  # the client left while we delayed
            return await self._drop(request)
        sent = Sent(provider, request.raw_path, status, tuple(response.headers.items()))
        with self._lock:
            self._sent.append(sent)
        for i, piece in enumerate(pieces):
            if cut_after is not None and i >= cut_after:
                # The client sees the body end before the stream does.
                return await self._drop(request)
            if i and pause:
                await asyncio.sleep(pause)
            with self._lock:
                sent.writes.append((time.monotonic(), piece))
                # Set before the last write: a client may have it all before write() returns.
                sent.complete = i == len(pieces) - 1
            try:
                await response.write(piece)
            except ConnectionResetError:
                with self._lock:
                    sent.complete = False
                return await self._drop(request)
        await response.write_eof()
        return response

    @staticmethod
    async def _drop(request: web.Request) -> web.StreamResponse:
        """Close the connection and wait for aiohttp to cancel this handler, as it does when a client leaves."""
        if request.transport is not None:
            request.transport.close()
        await asyncio.Event().wait()
        raise AssertionError("unreachable: the handler is cancelled once the connection is lost")
