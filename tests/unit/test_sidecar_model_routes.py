"""Which provider, operation, model and streaming flag the gateway reads off a call."""

from __future__ import annotations

import json

import pytest

from agentops_sidecar.model_routes import call_info, resolve


@pytest.mark.parametrize(("path", "provider", "upstream", "operation"), [
    ("/openai/v1/chat/completions", "OpenAI", "/v1/chat/completions", "chat"),
    ("/openai/v1/responses", "OpenAI", "/v1/responses", "chat"),
    ("/openai/v1/completions", "OpenAI", "/v1/completions", "text_completion"),
    ("/openai/v1/embeddings?x=1", "OpenAI", "/v1/embeddings?x=1", "embeddings"),
    ("/openai/openai/deployments/d/chat/completions?api-version=2024", "OpenAI",
     "/openai/deployments/d/chat/completions?api-version=2024", "chat"),
    ("/openai/v1/models", "OpenAI", "/v1/models", "other"),
    ("/anthropic/v1/messages", "Anthropic", "/v1/messages", "chat"),
    ("/anthropic/v1/messages/count_tokens", "Anthropic", "/v1/messages/count_tokens", "count_tokens"),
    ("/anthropic/v1/messages?beta=true", "Anthropic", "/v1/messages?beta=true", "chat"),
    ("/anthropic/v1/models", "Anthropic", "/v1/models", "other"),
    ("/gemini/v1beta/models/gemini-2.0-flash:generateContent", "Gemini", "/v1beta/models/gemini-2.0-flash:generateContent", "generate_content"),
    ("/gemini/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key=SECRET", "Gemini",
     "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key=SECRET", "generate_content"),
    ("/gemini/v1/models/m:countTokens", "Gemini", "/v1/models/m:countTokens", "count_tokens"),
    ("/gemini/v1beta/models/text-embedding-004:embedContent", "Gemini", "/v1beta/models/text-embedding-004:embedContent", "embeddings"),
    ("/gemini/v1beta/models/text-embedding-004:batchEmbedContents", "Gemini", "/v1beta/models/text-embedding-004:batchEmbedContents", "embeddings"),
    ("/gemini/v1beta/models", "Gemini", "/v1beta/models", "other"),
])
def test_prefix_picks_the_provider_and_the_path_the_operation(path: str, provider: str, upstream: str, operation: str) -> None:
    route = resolve(path)
    assert route is not None
    assert (route.provider, route.upstream_path, route.operation) == (provider, upstream, operation)


@pytest.mark.parametrize("path", ["/", "/v1/chat/completions", "/azure/v1/chat", "/geminix/v1", "", "openai/v1"])
def test_an_unknown_prefix_is_no_route(path: str) -> None:
    assert resolve(path) is None


def test_gemini_reads_model_and_streaming_from_the_path() -> None:
    stream = resolve("/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse")
    plain = resolve("/gemini/v1beta/tunedModels/my-tune:generateContent")
    assert stream is not None and plain is not None
    assert call_info(stream, b"{}") == call_info(stream, b"") and call_info(stream, b"").model == "gemini-2.5-pro"
    assert call_info(stream, b"").streams and not call_info(plain, b'{"stream": true}').streams
    assert call_info(plain, b"").model == "my-tune"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_openai_and_anthropic_read_model_and_stream_from_the_body(provider: str) -> None:
    route = resolve(f"/{provider}/v1/messages")
    assert route is not None
    body = {"model": "m-1", "stream": True, "messages": [{"role": "user", "content": '"model": "not-this"'}]}
    info = call_info(route, json.dumps(body).encode())
    assert (info.model, info.streams) == ("m-1", True)
    assert not call_info(route, json.dumps({"model": "m", "stream": "yes"}).encode()).streams  # only a real true
    assert call_info(route, b"not json").model == "" and call_info(route, b"[1]").model == ""
    assert call_info(route, json.dumps({"model": "x" * 500}).encode()).model == "x" * 128
