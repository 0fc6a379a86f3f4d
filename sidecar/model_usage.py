"""Reading a provider's answer as it passes: SSE events, token usage, end markers, errors.

The gateway never holds a chunk back to read it: bytes go to the agent as they arrive,
and a copy is fed to an `AnswerReader` that parses server-sent events incrementally
(`SseSplitter`) and keeps what the signals need — token counts, whether the stream's
end marker came, and anything that makes the answer unusable. What each provider puts
where:

| provider  | tokens                                              | end of stream            |
|-----------|-----------------------------------------------------|--------------------------|
| OpenAI    | usage.prompt_tokens / completion_tokens (Responses: input_tokens / output_tokens; streams: the usage chunk) | `data: [DONE]` (Responses: response.completed / .incomplete / .failed) |
| Anthropic | usage.input_tokens (+ cache tokens) / output_tokens (streams: message_start, then message_delta, cumulative) | `message_stop` |
| Gemini    | usageMetadata.promptTokenCount / candidatesTokenCount (+ thoughtsTokenCount; streams: the last chunk carrying it) | a chunk with a finishReason (or a blocked prompt) |

`classify` then names the outcome with one of agentops.wire.MODEL_ERROR_TYPES (or None
when the call succeeded), the same way for real and for injected answers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from agentops.api_types import ModelProvider

# An event ends at a blank line; a line ends at CRLF, LF or CR (the SSE spec allows all
# three; Gemini sends CRLF). "\r(?!\n)" keeps a CRLF from counting as two line ends.
_BOUNDARY = re.compile(rb"(?:\r\n|\n|\r(?!\n)){2}")
_LINE = re.compile(r"\r\n|\n|\r")
# Past this much unterminated text the "stream" is not SSE as we know it: stop looking
# for events (the bytes still pass through) so memory stays bounded.
MAX_PENDING = 1024 * 1024
# The most of a non-stream body read for signals; a bigger answer passes unread.
MAX_READ_BODY = 8 * 1024 * 1024
_GEMINI_SAFETY = frozenset({"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY"})
_OPENAI_END = frozenset({"response.completed", "response.incomplete", "response.failed"})
# Words by which each provider's 400 says the prompt does not fit the context window.
_CONTEXT_MARKERS = ("context_length_exceeded", "maximum context length", "context window", "prompt is too long",
                    "exceeds the maximum number of tokens", "input token count")
_SAFETY_MARKERS = ("content_policy_violation", "content_filter", "responsibleaipolicyviolation")
_ANTHROPIC_ERRORS = {"overloaded_error": "overloaded", "rate_limit_error": "rate_limit", "api_error": "server_error",
                     "timeout_error": "timeout", "invalid_request_error": "client_error"}


@dataclass(slots=True)
class SseEvent:
    raw: bytes  # the event's bytes, its terminating blank line included
    event: str  # the `event:` field, "" when absent
    data: str  # the `data:` lines joined by "\n"


class SseSplitter:
    """Cuts a byte stream into SSE events as the bytes arrive."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.overflowed = False

    def feed(self, chunk: bytes, *, final: bool = False) -> list[SseEvent]:
        """Events completed by `chunk`; `final`: no more bytes will come."""
        if self.overflowed:
            return []
        buf = self._buf
        buf += chunk
        events: list[SseEvent] = []
        start = 0
        while True:
            found = _BOUNDARY.search(buf, start)
            if found is None:
                break
            end = found.end()
            if end == len(buf) and buf[-1:] == b"\r" and not final:
                break  # a CR at the very end may be the first half of a CRLF: wait for the next bytes
            raw = bytes(buf[start:end])
            events.append(_parse_event(raw))
            start = end
        if start:
            del buf[:start]
        if len(buf) > MAX_PENDING:
            self.overflowed = True
            buf.clear()
        return events

    def close(self) -> list[SseEvent]:
        """The stream ended: a last event held back for a possible CRLF is complete after all."""
        return self.feed(b"", final=True)

    def rest(self) -> bytes:
        """Bytes after the last complete event (a stream cut mid-event leaves some)."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest


def _parse_event(raw: bytes) -> SseEvent:
    event, data = "", []
    for line in _LINE.split(raw.decode("utf-8", "replace")):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    return SseEvent(raw, event, "\n".join(data))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


@dataclass
class AnswerReader:
    """What one answer (a JSON body, or a stream's events) says, for the signals."""

    provider: ModelProvider
    input_tokens: int = 0
    output_tokens: int = 0
    ended: bool = False  # the stream's end marker was seen
    events: int = 0
    problem: str | None = None  # an error type the content shows (safety, malformed, error event)
    _args: dict[str, list[str]] = field(default_factory=dict)  # streamed tool-call arguments, by call

    # ------------------------------------------------------------ streams

    def event(self, event: SseEvent) -> None:
        self.events += 1
        data = event.data
        if not data:
            return
        if self.provider == "OpenAI" and data == "[DONE]":
            self.ended = True
            return
        try:
            obj = json.loads(data)
        except ValueError:
            self._problem("malformed_response")
            return
        if isinstance(obj, dict):
            self._chunk(obj)

    def finish(self) -> None:
        """The stream is over: arguments assembled from fragments must parse now."""
        for parts in self._args.values():
            self._check_args("".join(parts))
        self._args.clear()

    def _chunk(self, obj: dict[str, Any]) -> None:
        if self.provider == "OpenAI":
            kind = obj.get("type")
            if isinstance(kind, str) and kind in _OPENAI_END:
                self.ended = True
            if "error" in obj and obj["error"]:
                self._problem("server_error")
            self._look(obj.get("response") if isinstance(obj.get("response"), dict) else obj)
            for choice in obj.get("choices") or ():
                if not isinstance(choice, dict):
                    continue
                for call in (choice.get("delta") or {}).get("tool_calls") or ():
                    fn = call.get("function") if isinstance(call, dict) else None
                    if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                        self._args.setdefault(f"{choice.get('index')}:{call.get('index')}", []).append(fn["arguments"])
            return
        if self.provider == "Anthropic":
            kind = obj.get("type")
            if kind == "message_start" and isinstance(obj.get("message"), dict):
                self._look(obj["message"])
            elif kind == "message_delta":
                self._look({"usage": obj.get("usage"), **(obj.get("delta") or {})})
            elif kind == "content_block_start" and (obj.get("content_block") or {}).get("type") == "tool_use":
                self._args[str(obj.get("index"))] = []
            elif kind == "content_block_delta" and (obj.get("delta") or {}).get("type") == "input_json_delta":
                self._args.setdefault(str(obj.get("index")), []).append(str(obj["delta"].get("partial_json", "")))
            elif kind == "content_block_stop":
                parts = self._args.pop(str(obj.get("index")), None)
                if parts is not None:
                    self._check_args("".join(parts))
            elif kind == "message_stop":
                self.ended = True
            elif kind == "error":
                error = obj.get("error") or {}
                self._problem(_ANTHROPIC_ERRORS.get(str(error.get("type")), "server_error") if isinstance(error, dict) else "server_error")
            return
        self._look(obj)
        if (obj.get("promptFeedback") or {}).get("blockReason"):
            self.ended = True
        for candidate in obj.get("candidates") or ():
            if isinstance(candidate, dict) and candidate.get("finishReason"):
                self.ended = True

    # ------------------------------------------------------------ whole bodies

    def body(self, body: bytes) -> None:
        """A complete 2xx JSON answer."""
        try:
            obj = json.loads(body)
        except ValueError:
            self._problem("malformed_response")
            return
        if not isinstance(obj, dict):
            return
        self._look(obj)
        if self.provider == "OpenAI":
            for choice in obj.get("choices") or ():
                message = choice.get("message") if isinstance(choice, dict) else None
                for call in (message or {}).get("tool_calls") or ():
                    fn = call.get("function") if isinstance(call, dict) else None
                    if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                        self._check_args(fn["arguments"])
            for item in obj.get("output") or ():
                if isinstance(item, dict) and item.get("type") == "function_call" and isinstance(item.get("arguments"), str):
                    self._check_args(item["arguments"])

    # ------------------------------------------------------------ shared

    def _look(self, obj: Any) -> None:
        """Usage and safety markers, wherever this provider puts them in an answer or chunk."""
        if not isinstance(obj, dict):
            return
        if self.provider == "Gemini":
            usage = obj.get("usageMetadata")
            if isinstance(usage, dict):
                self.input_tokens = _int(usage.get("promptTokenCount"))
                self.output_tokens = _int(usage.get("candidatesTokenCount")) + _int(usage.get("thoughtsTokenCount"))
            if (obj.get("promptFeedback") or {}).get("blockReason"):
                self._problem("safety_block")
            for candidate in obj.get("candidates") or ():
                if isinstance(candidate, dict) and candidate.get("finishReason") in _GEMINI_SAFETY:
                    self._problem("safety_block")
            return
        usage = obj.get("usage")
        if isinstance(usage, dict):
            if self.provider == "Anthropic":
                # Cumulative in a stream: the latest value is the total. Cached prompt
                # tokens are billed input too.
                if "input_tokens" in usage:
                    self.input_tokens = (_int(usage.get("input_tokens")) + _int(usage.get("cache_creation_input_tokens"))
                                         + _int(usage.get("cache_read_input_tokens")))
                if "output_tokens" in usage:
                    self.output_tokens = _int(usage.get("output_tokens"))
            else:
                self.input_tokens = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
                self.output_tokens = _int(usage.get("completion_tokens", usage.get("output_tokens")))
        if self.provider == "Anthropic":
            if obj.get("stop_reason") == "refusal":
                self._problem("safety_block")
            return
        for choice in obj.get("choices") or ():
            if isinstance(choice, dict) and choice.get("finish_reason") == "content_filter":
                self._problem("safety_block")
        if (obj.get("incomplete_details") or {}).get("reason") == "content_filter":
            self._problem("safety_block")

    def _check_args(self, text: str) -> None:
        if not text:
            return  # a tool called without arguments
        try:
            json.loads(text)
        except ValueError:
            self._problem("malformed_response")

    def _problem(self, kind: str) -> None:
        if self.problem is None:
            self.problem = kind


def classify_status(status: int, headers: Mapping[str, str], body: bytes) -> str | None:
    """The error type of a non-2xx answer, from its status and the provider's envelope."""
    if status < 400:
        return None
    text = body[:64 * 1024].decode("utf-8", "replace").lower()
    if status == 429:
        hinted = "retry-after" in headers or "retry-after-ms" in headers or "retryinfo" in text
        if headers.get("x-should-retry") == "false" or "insufficient_quota" in text or ("quota" in text and not hinted):
            return "quota_exhausted"
        return "rate_limit"
    if status in (503, 529) or "overloaded_error" in text:
        return "overloaded"
    if status >= 500:
        return "server_error"
    if any(marker in text for marker in _CONTEXT_MARKERS):
        return "context_length"
    if any(marker in text for marker in _SAFETY_MARKERS):
        return "safety_block"
    return "client_error"


def classify(status: int | None, headers: Mapping[str, str], body: bytes, reader: AnswerReader | None, *,
             streamed: bool, failure: str | None) -> str | None:
    """One call's outcome: an agentops.wire.MODEL_ERROR_TYPES value, or None for success.

    `failure` is what the transport said ("timeout", "connection"), `streamed` whether
    an SSE answer was started, `reader` what its content showed.
    """
    if status is not None and status >= 400:
        return classify_status(status, headers, body)
    if reader is not None and reader.problem is not None:
        return reader.problem
    if failure is not None:
        if streamed and failure == "connection":
            return "stream_interrupted"
        return failure
    if streamed and reader is not None and not reader.ended:
        return "stream_interrupted"
    return None
