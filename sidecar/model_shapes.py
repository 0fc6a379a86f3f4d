"""Injected model answers, shaped exactly as each provider sends them.

An SDK turns a provider's answer into its own error class or stream behaviour from the
status, the JSON error envelope and a few headers (retry hints, `x-should-retry`), so
an injected fault is only realistic when all three match. The shapes come from the
providers' documentation and the SDKs' own parsing code (openai/_base_client.py,
anthropic/_client.py, google/genai/errors.py):

* OpenAI: `{"error": {"message", "type", "param", "code"}}`, `retry-after`,
  `retry-after-ms`, `x-ratelimit-*`, `x-request-id`; `x-should-retry: false` on quota.
* Anthropic: `{"type": "error", "error": {"type", "message"}, "request_id"}`,
  `retry-after`, `anthropic-ratelimit-*`, `request-id`; 529 for overload.
* Gemini (google.rpc.Status): `{"error": {"code", "message", "status", "details"}}` with
  `google.rpc.RetryInfo` / `QuotaFailure` details on 429.

Body faults (malformed JSON, corrupted tool arguments, safety refusals) rewrite or
replace a 2xx answer; the functions here are pure and the gateway applies them.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from agentops.api_types import ModelProvider

JSON = "application/json"
SSE = "text/event-stream"
# Gemini's REST API frames stream events with CRLF; the others with LF.
_SSE_END = {"Gemini": b"\r\n\r\n", "OpenAI": b"\n\n", "Anthropic": b"\n\n"}
# Header naming the fault that produced an answer: no SDK reads it, a person debugging does.
FAULT_HEADER = "x-agentops-fault"
# The quota the injected rate limits claim: plausible, and never read by an SDK.
_RATE_LIMIT = 60
# The context windows injected context-length errors claim, per provider (tokens).
_CONTEXT = {"OpenAI": 128_000, "Anthropic": 200_000, "Gemini": 1_048_576}


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _request_id() -> str:
    return "req_agentops_" + uuid.uuid4().hex[:24]


def _retry_headers(provider: ModelProvider, seconds: float | None, now_wall: float) -> dict[str, str]:
    if seconds is None or provider == "Gemini":  # Gemini's hint is RetryInfo, in the body
        return {}
    # Retry-After is whole seconds (RFC 9110), rounded up so a client never retries early;
    # both SDKs prefer retry-after-ms when present, which keeps sub-second hints exact.
    headers = {"retry-after": str(max(1, math.ceil(seconds))), "retry-after-ms": str(max(1, round(seconds * 1000)))}
    if provider == "OpenAI":
        headers.update({"x-ratelimit-limit-requests": str(_RATE_LIMIT), "x-ratelimit-remaining-requests": "0",
                        "x-ratelimit-reset-requests": f"{round(seconds * 1000)}ms"})
    else:
        reset = datetime.fromtimestamp(now_wall + seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        headers.update({"anthropic-ratelimit-requests-limit": str(_RATE_LIMIT),
                        "anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": reset})
    return headers


def _proto_duration(seconds: float) -> str:
    # google.protobuf.Duration in JSON: decimal seconds with an "s" suffix.
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def _openai(status: int, message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    return _dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def _anthropic(type_: str, message: str) -> bytes:
    return _dumps({"type": "error", "error": {"type": type_, "message": message}, "request_id": _request_id()})


def _gemini(status: int, state: str, message: str, details: list[dict[str, Any]] | None = None) -> bytes:
    error: dict[str, Any] = {"code": status, "message": message, "status": state}
    if details:
        error["details"] = details
    return _dumps({"error": error})


def _quota_failure(model: str, quota_id: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
        "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
        "quotaId": quota_id, "quotaDimensions": {"location": "global", "model": model or "unknown"},
        "quotaValue": str(_RATE_LIMIT)}]}


def error_answer(kind: str, provider: ModelProvider, model: str, retry_after_s: float | None,
                 now_wall: float | None = None) -> Answer:
    """The provider's own error answer for an error-type Model* fault."""
    wall = time.time() if now_wall is None else now_wall
    hints = _retry_headers(provider, retry_after_s, wall)
    rid = _request_id()
    ids = {"x-request-id": rid} if provider == "OpenAI" else {"request-id": rid} if provider == "Anthropic" else {}
    headers = {"content-type": JSON, **ids}
    name = model or "the model"
    if kind == "ModelRateLimit":
        if provider == "OpenAI":
            body = _openai(429, f"Rate limit reached for {name} on requests per min (RPM): Limit {_RATE_LIMIT}, Used "
                                f"{_RATE_LIMIT}, Requested 1. Please try again in {retry_after_s or 1:g}s.",
                           "requests", "rate_limit_exceeded")
        elif provider == "Anthropic":
            body = _anthropic("rate_limit_error", "This request would exceed the rate limit for your organization of "
                                                  f"{_RATE_LIMIT} requests per minute. Please try again later.")
        else:
            details = [_quota_failure(model, "GenerateRequestsPerMinutePerProjectPerModel")]
            if retry_after_s is not None:
                details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": _proto_duration(retry_after_s)})
            body = _gemini(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", details)
        return Answer(429, {**headers, **hints}, body)
    if kind == "ModelQuotaExhausted":
        # No retry hint, and x-should-retry: false, which both stainless SDKs obey.
        if provider == "OpenAI":
            body = _openai(429, "You exceeded your current quota, please check your plan and billing details.",
                           "insufficient_quota", "insufficient_quota")
        elif provider == "Anthropic":
            body = _anthropic("rate_limit_error", "Your organization has exhausted its usage quota for this billing "
                                                  "period. Please check your plan and billing details.")
        else:
            body = _gemini(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing details.",
                           [_quota_failure(model, "GenerateRequestsPerDayPerProjectPerModel")])
        if provider != "Gemini":
            headers["x-should-retry"] = "false"
        return Answer(429, headers, body)
    if kind == "ModelOverloaded":
        if provider == "OpenAI":
            return Answer(503, {**headers, **hints}, _openai(503, "The server is overloaded or not ready yet.", "server_error", None))
        if provider == "Anthropic":
            return Answer(529, {**headers, **hints}, _anthropic("overloaded_error", "Overloaded"))
        hint: list[dict[str, Any]] | None = (
            [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": _proto_duration(retry_after_s)}]
            if retry_after_s is not None else None)
        return Answer(503, headers, _gemini(503, "UNAVAILABLE", "The model is overloaded. Please try again later.", hint))
    if kind == "ModelServerError":
        if provider == "OpenAI":
            body = _openai(500, "The server had an error while processing your request. Sorry about that!", "server_error", None)
        elif provider == "Anthropic":
            body = _anthropic("api_error", "Internal server error")
        else:
            body = _gemini(500, "INTERNAL", "An internal error has occurred. Please retry or report in "
                                            "https://developers.generativeai.google/guide/troubleshooting")
        return Answer(500, headers, body)
    if kind == "ModelContextLength":
        limit = _CONTEXT[provider]
        if provider == "OpenAI":
            body = _openai(400, f"This model's maximum context length is {limit} tokens. However, your messages resulted "
                                f"in {limit + 1} tokens. Please reduce the length of the messages.",
                           "invalid_request_error", "context_length_exceeded", "messages")
        elif provider == "Anthropic":
            body = _anthropic("invalid_request_error", f"prompt is too long: {limit + 1} tokens > {limit} maximum")
        else:
            body = _gemini(400, "INVALID_ARGUMENT",
                           f"The input token count ({limit + 1}) exceeds the maximum number of tokens allowed ({limit}).")
        return Answer(400, headers, body)
    raise ValueError(f"{kind} is not an error-type fault")


ERROR_KINDS = frozenset({"ModelRateLimit", "ModelQuotaExhausted", "ModelOverloaded", "ModelServerError", "ModelContextLength"})


# ---------------------------------------------------------------- safety refusals


def _sse(provider: ModelProvider, data: Any, event: str | None = None) -> bytes:
    end = _SSE_END[provider]
    line_end = end[: len(end) // 2]
    head = b"event: " + event.encode() + line_end if event else b""
    return head + b"data: " + (data if isinstance(data, bytes) else _dumps(data)) + end


def safety_answer(provider: ModelProvider, operation: str, path: str, model: str, streams: bool,
                  now_wall: float | None = None) -> Answer:
    """A 200 whose answer the provider's safety filter withheld, streamed when the call streams.

    OpenAI: finish_reason "content_filter" (Responses API: status "incomplete" with
    reason content_filter); Anthropic: stop_reason "refusal"; Gemini: a prompt blocked
    with promptFeedback.blockReason SAFETY and no candidates.
    """
    created = int(time.time() if now_wall is None else now_wall)
    rid = uuid.uuid4().hex[:24]
    content_type = SSE if streams else JSON
    if provider == "OpenAI":
        if path.rstrip("/").endswith("/responses"):
            response = {"id": f"resp_{rid}", "object": "response", "created_at": created, "status": "incomplete",
                        "incomplete_details": {"reason": "content_filter"}, "model": model, "output": [],
                        "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}}
            if not streams:
                return Answer(200, {"content-type": content_type}, _dumps(response))
            body = (_sse(provider, {"type": "response.created", "sequence_number": 0, "response": {**response, "status": "in_progress"}}, "response.created")
                    + _sse(provider, {"type": "response.incomplete", "sequence_number": 1, "response": response}, "response.incomplete"))
            return Answer(200, {"content-type": content_type}, body)
        text = operation == "text_completion"
        base = {"id": f"chatcmpl-{rid}" if not text else f"cmpl-{rid}", "created": created, "model": model}
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        if not streams:
            choice: dict[str, Any] = ({"index": 0, "text": "", "logprobs": None, "finish_reason": "content_filter"} if text else
                                      {"index": 0, "message": {"role": "assistant", "content": None, "refusal": None},
                                       "logprobs": None, "finish_reason": "content_filter"})
            return Answer(200, {"content-type": content_type},
                          _dumps({**base, "object": "text_completion" if text else "chat.completion", "choices": [choice], "usage": usage}))
        kind = "text_completion" if text else "chat.completion.chunk"
        first = {"index": 0, "text": "", "finish_reason": None} if text else {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        last = {"index": 0, "text": "", "finish_reason": "content_filter"} if text else {"index": 0, "delta": {}, "finish_reason": "content_filter"}
        body = (_sse(provider, {**base, "object": kind, "choices": [first]})
                + _sse(provider, {**base, "object": kind, "choices": [last]})
                + _sse(provider, b"[DONE]"))
        return Answer(200, {"content-type": content_type}, body)
    if provider == "Anthropic":
        message: dict[str, Any] = {"id": f"msg_{rid}", "type": "message", "role": "assistant", "model": model, "content": [],
                   "stop_reason": "refusal", "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}
        if not streams:
            return Answer(200, {"content-type": content_type, "request-id": _request_id()}, _dumps(message))
        body = (_sse(provider, {"type": "message_start", "message": {**message, "stop_reason": None}}, "message_start")
                + _sse(provider, {"type": "message_delta", "delta": {"stop_reason": "refusal", "stop_sequence": None},
                                  "usage": {"output_tokens": 0}}, "message_delta")
                + _sse(provider, {"type": "message_stop"}, "message_stop"))
        return Answer(200, {"content-type": content_type, "request-id": _request_id()}, body)
    blocked = {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]},
        "usageMetadata": {"promptTokenCount": 0, "totalTokenCount": 0}, "modelVersion": model}
    return Answer(200, {"content-type": content_type}, _sse(provider, blocked) if streams else _dumps(blocked))


# ---------------------------------------------------------------- body faults


def truncate_json(body: bytes) -> bytes:
    """ModelMalformedJson: the body cut in half, so it no longer parses (a 2-byte body loses one)."""
    return body[: max(1, len(body) // 2)] if len(body) > 1 else b"{"


def corrupt_value(value: Any) -> Any:
    """A value of another JSON type than `value`: it violates any schema that types the field.

    Used for tool arguments that travel as objects (Anthropic `input`, Gemini
    `functionCall.args`), which the SDKs hand over as parsed objects: garbage text
    cannot be sent there, so the arguments parse but no longer fit the tool's schema.
    """
    if isinstance(value, str):
        return 0
    if isinstance(value, bool) or value is None:
        return "not-a-" + ("boolean" if isinstance(value, bool) else "null")
    if isinstance(value, (int, float)):
        return str(value) + "!"
    return "not-an-" + ("object" if isinstance(value, dict) else "array")


def corrupt_object_args(args: Any) -> Any:
    if isinstance(args, dict) and args:
        return {key: corrupt_value(value) for key, value in args.items()}
    return {"__agentops_unexpected__": True}  # no field to retype: add one the schema does not allow


# Prefixed to string arguments (OpenAI `function.arguments`, Anthropic's streamed
# `partial_json`): no JSON text starts with "{{", so the whole concatenation fails to parse.
BROKEN_ARGS_PREFIX = "{"


def corrupt_tool_calls(provider: ModelProvider, obj: Any, first_only: Callable[[str], bool] | None = None) -> bool:
    """Corrupt the tool-call arguments in one parsed answer or stream event, in place.

    `first_only(call)` — streams: True the first time a tool call (by its index) is
    seen, so only its first fragment is prefixed: once is enough to break it. Returns
    whether anything was changed.
    """
    changed = False
    if not isinstance(obj, dict):
        return False
    if provider == "OpenAI":
        for choice in obj.get("choices") or ():
            holder = (choice.get("message") or choice.get("delta") or {}) if isinstance(choice, dict) else {}
            for call in holder.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    if first_only is None or first_only(f"{choice.get('index')}:{call.get('index')}"):
                        function["arguments"] = BROKEN_ARGS_PREFIX + function["arguments"]
                        changed = True
        for item in obj.get("output") or ():  # Responses API: function_call items
            if isinstance(item, dict) and item.get("type") == "function_call" and isinstance(item.get("arguments"), str):
                item["arguments"] = BROKEN_ARGS_PREFIX + item["arguments"]
                changed = True
        return changed
    if provider == "Anthropic":
        delta = obj.get("delta")
        if obj.get("type") == "content_block_delta" and isinstance(delta, dict) and delta.get("type") == "input_json_delta":
            if first_only is None or first_only(str(obj.get("index"))):
                delta["partial_json"] = BROKEN_ARGS_PREFIX + str(delta.get("partial_json", ""))
                return True
            return False
        for block in obj.get("content") or ():
            if isinstance(block, dict) and block.get("type") == "tool_use":
                block["input"] = corrupt_object_args(block.get("input"))
                changed = True
        return changed
    for candidate in obj.get("candidates") or ():
        parts = ((candidate.get("content") or {}).get("parts") or ()) if isinstance(candidate, dict) else ()
        for part in parts:
            call = part.get("functionCall") if isinstance(part, dict) else None
            if isinstance(call, dict):
                call["args"] = corrupt_object_args(call.get("args"))
                changed = True
    return changed
