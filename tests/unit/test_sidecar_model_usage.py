"""Reading answers as they pass: SSE framing, usage, end markers, and classification."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentops_sidecar.model_usage import AnswerReader, SseSplitter, classify, classify_status


def events(raw: bytes, cuts: list[int]) -> list[tuple[bytes, str, str]]:
    splitter, out, last = SseSplitter(), [], 0
    for cut in [*cuts, len(raw)]:
        out += [(e.raw, e.event, e.data) for e in splitter.feed(raw[last:cut])]
        last = cut
    return out + [(e.raw, e.event, e.data) for e in splitter.close()]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_events_split_on_any_line_ending_and_any_chunking(eol: bytes) -> None:
    raw = (b"event: a" + eol + b"data: {\"x\": 1}" + eol + eol + b": comment" + eol + b"data: one" + eol + b"data:two" + eol + eol)
    whole = events(raw, [])
    assert [(e, d) for _, e, d in whole] == [("a", '{"x": 1}'), ("", "one\ntwo")]
    assert b"".join(r for r, _, _ in whole) == raw  # the raw bytes are the stream, nothing lost
    for cut in range(1, len(raw)):
        assert events(raw, [cut]) == whole, cut


def test_an_unfinished_event_is_left_over() -> None:
    splitter = SseSplitter()
    assert splitter.feed(b"data: 1\n\ndata: 2") and splitter.rest() == b"data: 2"


def sse(provider: str, *objs: Any) -> list[bytes]:
    end = b"\r\n\r\n" if provider == "Gemini" else b"\n\n"
    return [b"data: " + (o if isinstance(o, bytes) else json.dumps(o).encode()) + end for o in objs]


def read_stream(provider: Any, chunks: list[bytes]) -> AnswerReader:
    reader, splitter = AnswerReader(provider), SseSplitter()
    for chunk in chunks:
        for event in splitter.feed(chunk):
            reader.event(event)
    for event in splitter.close():
        reader.event(event)
    reader.finish()
    return reader


def test_openai_stream_usage_chunk_and_done() -> None:
    chunks = sse("OpenAI", {"choices": [{"index": 0, "delta": {"content": "hi"}}]},
                 {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                 {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 5}}, b"[DONE]")
    reader = read_stream("OpenAI", chunks)
    assert (reader.input_tokens, reader.output_tokens, reader.ended, reader.problem) == (11, 5, True, None)
    assert not read_stream("OpenAI", chunks[:-1]).ended


def test_anthropic_stream_usage_is_cumulative() -> None:
    chunks = sse("Anthropic", {"type": "message_start", "message": {"usage": {"input_tokens": 20, "cache_read_input_tokens": 5, "output_tokens": 1}}},
                 {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}},
                 {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}},
                 {"type": "message_stop"})
    reader = read_stream("Anthropic", chunks)
    assert (reader.input_tokens, reader.output_tokens, reader.ended) == (25, 9, True)


def test_gemini_stream_takes_the_last_usage_and_ends_at_a_finish_reason() -> None:
    chunks = sse("Gemini", {"candidates": [{"content": {"parts": [{"text": "a"}]}}], "usageMetadata": {"promptTokenCount": 4}},
                 {"candidates": [{"content": {"parts": [{"text": "b"}]}, "finishReason": "STOP"}],
                  "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6, "thoughtsTokenCount": 2}})
    reader = read_stream("Gemini", chunks)
    assert (reader.input_tokens, reader.output_tokens, reader.ended) == (4, 8, True)
    assert not read_stream("Gemini", chunks[:1]).ended


@pytest.mark.parametrize(("provider", "obj"), [
    ("OpenAI", {"choices": [{"index": 0, "message": {}, "finish_reason": "content_filter"}]}),
    ("OpenAI", {"object": "response", "status": "incomplete", "incomplete_details": {"reason": "content_filter"}}),
    ("Anthropic", {"type": "message", "stop_reason": "refusal", "content": []}),
    ("Gemini", {"promptFeedback": {"blockReason": "SAFETY"}}),
    ("Gemini", {"candidates": [{"finishReason": "PROHIBITED_CONTENT"}]}),
])
def test_safety_markers_in_a_body(provider: Any, obj: Any) -> None:
    reader = AnswerReader(provider)
    reader.body(json.dumps(obj).encode())
    assert reader.problem == "safety_block"


def test_broken_json_and_tool_arguments_are_malformed() -> None:
    reader = AnswerReader("OpenAI")
    reader.body(b'{"choices": [')
    assert reader.problem == "malformed_response"
    reader = AnswerReader("OpenAI")
    reader.body(json.dumps({"choices": [{"message": {"tool_calls": [{"function": {"arguments": "{{\"a\":1}"}}]}}]}).encode())
    assert reader.problem == "malformed_response"
    streamed = sse("OpenAI", *({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": part}}]}}]}
                               for part in ('{"ci', 'ty": "Paris"}')), b"[DONE]")
    assert read_stream("OpenAI", streamed).problem is None
    assert read_stream("OpenAI", [streamed[0].replace(b'{\\"ci', b'{{\\"ci'), *streamed[1:]]).problem == "malformed_response"
    anthropic = sse("Anthropic", {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use"}},
                    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{{"}},
                    {"type": "content_block_stop", "index": 1}, {"type": "message_stop"})
    assert read_stream("Anthropic", anthropic).problem == "malformed_response"
    assert read_stream("Anthropic", sse("Anthropic", b"{not json")).problem == "malformed_response"


def test_an_anthropic_error_event_names_its_type() -> None:
    chunks = sse("Anthropic", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert read_stream("Anthropic", chunks).problem == "overloaded"


@pytest.mark.parametrize(("status", "headers", "body", "kind"), [
    (429, {"retry-after": "1"}, b'{"error":{"code":"rate_limit_exceeded"}}', "rate_limit"),
    (429, {}, b'{"error":{"type":"insufficient_quota"}}', "quota_exhausted"),
    (429, {"x-should-retry": "false"}, b'{"type":"error","error":{"type":"rate_limit_error"}}', "quota_exhausted"),
    (429, {}, b'{"error":{"message":"check quota","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo"}]}}', "rate_limit"),
    (429, {}, b'{"error":{"message":"You exceeded your current quota"}}', "quota_exhausted"),
    (503, {}, b"", "overloaded"),
    (529, {}, b"", "overloaded"),
    (500, {}, b"", "server_error"),
    (502, {}, b"", "server_error"),
    (400, {}, b'{"error":{"code":"context_length_exceeded"}}', "context_length"),
    (400, {}, b'{"type":"error","error":{"message":"prompt is too long: 1 tokens > 0 maximum"}}', "context_length"),
    (400, {}, b'{"error":{"message":"The input token count (2) exceeds the maximum number of tokens allowed (1)."}}', "context_length"),
    (400, {}, b'{"error":{"code":"content_policy_violation"}}', "safety_block"),
    (401, {}, b'{"error":{"message":"bad key"}}', "client_error"),
    (404, {}, b"", "client_error"),
])
def test_classify_status(status: int, headers: dict[str, str], body: bytes, kind: str) -> None:
    assert classify_status(status, headers, body) == kind


def test_classify_streams_and_transport_failures() -> None:
    done = read_stream("OpenAI", sse("OpenAI", b"[DONE]"))
    cut = read_stream("OpenAI", sse("OpenAI", {"choices": []}))
    assert classify(200, {}, b"", done, streamed=True, failure=None) is None
    assert classify(200, {}, b"", cut, streamed=True, failure=None) == "stream_interrupted"
    assert classify(200, {}, b"", cut, streamed=True, failure="connection") == "stream_interrupted"
    assert classify(200, {}, b"", cut, streamed=True, failure="timeout") == "timeout"
    assert classify(None, {}, b"", None, streamed=False, failure="connection") == "connection"
    assert classify(None, {}, b"", None, streamed=False, failure="timeout") == "timeout"
    assert classify(200, {}, b"", AnswerReader("OpenAI"), streamed=False, failure=None) is None
