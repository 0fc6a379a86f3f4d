"""The real provider SDKs accept what the model stand-ins answer (tests/integration/model_standins.py).

google-genai, openai and anthropic are configured only by their environment: the base-URL
variables (GOOGLE_GEMINI_BASE_URL, OPENAI_BASE_URL, ANTHROPIC_BASE_URL) and the usual
API-key variables. For each provider: a plain call, a stream delivered event by event,
a tool call whose arguments parse, token usage as the stand-in counted it, and the key
arriving untouched in the provider's header. The stand-in's bodies also validate
against each SDK's own response types, its records hold exactly the bytes a client
received, and its error, mid-stream drop and slow answers surface as each SDK's own
exceptions, with the retries each SDK makes by default.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pydantic
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from model_standins import (
    PROVIDERS,
    Answer,
    Provider,
    Recorded,
    Sent,
    StandIns,
    ToolCall,
    anthropic_error,
    gemini_error,
    openai_error,
    split,
)

pytestmark = pytest.mark.timeout(30)

KEYS: dict[Provider, str] = {
    "gemini": "AIzaSyStandIn-gemini_key-0123456789abc",
    "openai": "sk-proj-standin-openai-key-0123456789",
    "anthropic": "sk-ant-api03-standin-anthropic-key-0123456789",
}
GEMINI_MODEL, OPENAI_MODEL, ANTHROPIC_MODEL = "gemini-2.5-flash", "gpt-4o-mini", "claude-sonnet-4-5"
PROMPT = "Tell me about the weather."
MESSAGES: list[Any] = [{"role": "user", "content": PROMPT}]
TEXT = "Sunny all week, with a light breeze from the west in the afternoons."
WEATHER = ToolCall("get_weather", {"city": "Paris", "days": 3, "units": "metric", "hourly": False})
PAUSE = 0.2  # between stream events, where a test watches them arrive one by one
# Variables that would steer an SDK away from what the test set (another key, Vertex AI,
# an API version, a proxy, extra headers, a credentials profile).
FOREIGN_ENV = (
    "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_ENTERPRISE", "GOOGLE_GENAI_API_VERSION",
    "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_VERTEX_BASE_URL", "GOOGLE_GENAI_HTTP_CLIENT",
    "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_ADMIN_KEY", "OPENAI_CUSTOM_HEADERS",
    "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_CUSTOM_HEADERS", "ANTHROPIC_PROFILE",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
)


@pytest.fixture
def providers(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIns]:
    """The stand-ins, accepting only KEYS, with every SDK pointed at them by its environment."""
    with StandIns(keys=KEYS) as standins:
        for name in FOREIGN_ENV:
            monkeypatch.delenv(name, raising=False)
        for name, value in standins.env(KEYS).items():
            monkeypatch.setenv(name, value)
        yield standins


def only(providers: StandIns, provider: Provider) -> tuple[Recorded, Sent]:
    """The one request `provider` received and the one response it sent."""
    requests, sent = providers.requests(provider), providers.sent(provider)
    assert len(requests) == 1 and len(sent) == 1, (requests, sent)
    return requests[0], sent[0]


def assert_event_by_event(sent: Sent, arrivals: list[tuple[float, str]]) -> None:
    """Each piece reached the SDK before the stand-in wrote the event after it: nothing was held back."""
    assert sent.complete
    index = -1
    for arrived, piece in arrivals:
        needle = json.dumps(piece)[1:-1].encode()
        index = next(i for i in range(index + 1, len(sent.writes)) if needle in sent.writes[i][1])
        if index + 1 < len(sent.writes):
            assert arrived < sent.writes[index + 1][0], f"{piece!r} arrived after the next event left"


def sse_data(sent: Sent) -> list[Any]:
    """The JSON of each `data:` line the stand-in sent (without OpenAI's [DONE])."""
    lines = sent.body.decode().splitlines()
    return [json.loads(line[6:]) for line in lines if line.startswith("data: ") and line != "data: [DONE]"]


# --- Gemini (google-genai) -------------------------------------------------------------------------


@pytest.mark.parametrize("api_version", [None, "v1beta"])
def test_gemini_generate_content(providers: StandIns, monkeypatch: pytest.MonkeyPatch, api_version: str | None) -> None:
    if api_version:
        monkeypatch.setenv("GOOGLE_GENAI_API_VERSION", api_version)
    providers.answer("gemini", Answer(text=TEXT, input_tokens=23, output_tokens=17))

    client = genai.Client()  # kept: a google-genai Client closes its connections when collected
    response = client.models.generate_content(model=GEMINI_MODEL, contents=PROMPT)

    assert response.text == TEXT
    assert response.candidates and response.candidates[0].finish_reason == genai_types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (23, 17, 40)
    request, sent = only(providers, "gemini")
    # google-genai 3.x calls v1 unless GOOGLE_GENAI_API_VERSION says otherwise.
    assert request.path == f"/{api_version or 'v1'}/models/{GEMINI_MODEL}:generateContent"
    assert request.header("x-goog-api-key") == KEYS["gemini"]
    assert request.json()["contents"][0]["parts"][0]["text"] == PROMPT
    genai_types.GenerateContentResponse.model_validate(json.loads(sent.body))  # field names Gemini's (extra=forbid)


def test_gemini_stream_arrives_event_by_event(providers: StandIns) -> None:
    providers.answer("gemini", Answer(text=TEXT, chunks=4, pause=PAUSE, input_tokens=9, output_tokens=14))

    arrivals, last, client = [], None, genai.Client()
    for chunk in client.models.generate_content_stream(model=GEMINI_MODEL, contents=PROMPT):
        arrivals.append((time.monotonic(), chunk.text or ""))
        last = chunk

    assert [text for _, text in arrivals] == split(TEXT, 4)
    assert "".join(text for _, text in arrivals) == TEXT
    assert last is not None and last.usage_metadata is not None
    assert (last.usage_metadata.prompt_token_count, last.usage_metadata.candidates_token_count,
            last.usage_metadata.total_token_count) == (9, 14, 23)
    request, sent = only(providers, "gemini")
    assert request.path == f"/v1/models/{GEMINI_MODEL}:streamGenerateContent?alt=sse"
    assert request.header("x-goog-api-key") == KEYS["gemini"]
    assert sent.header("Content-Type") == "text/event-stream"
    assert all(data.startswith(b"data: ") and data.endswith(b"\r\n\r\n") for _, data in sent.writes)
    assert_event_by_event(sent, arrivals)
    for event in sse_data(sent):
        genai_types.GenerateContentResponse.model_validate(event)


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_function_call(providers: StandIns, stream: bool) -> None:
    providers.answer("gemini", Answer.tool(WEATHER.name, WEATHER.arguments, input_tokens=31, output_tokens=12))
    client = genai.Client()
    tool = genai_types.Tool(function_declarations=[genai_types.FunctionDeclaration(
        name=WEATHER.name, description="The forecast for a city.",
        parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}})])
    config = genai_types.GenerateContentConfig(tools=[tool])

    if stream:
        chunks = list(client.models.generate_content_stream(model=GEMINI_MODEL, contents=PROMPT, config=config))
        calls = [call for chunk in chunks for call in chunk.function_calls or []]
        usage = chunks[-1].usage_metadata
    else:
        response = client.models.generate_content(model=GEMINI_MODEL, contents=PROMPT, config=config)
        calls, usage = response.function_calls or [], response.usage_metadata

    assert [(call.name, call.args) for call in calls] == [(WEATHER.name, WEATHER.arguments)]
    assert usage is not None and (usage.prompt_token_count, usage.candidates_token_count) == (31, 12)
    request, _ = only(providers, "gemini")
    assert request.json()["tools"][0]["functionDeclarations"][0]["name"] == WEATHER.name
    assert request.header("x-goog-api-key") == KEYS["gemini"]


# --- OpenAI -------------------------------------------------------------------------------------------


def test_openai_chat_completion(providers: StandIns) -> None:
    providers.answer("openai", Answer(text=TEXT, input_tokens=21, output_tokens=13))

    completion = openai.OpenAI().chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)

    assert completion.choices[0].message.content == TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == OPENAI_MODEL
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        21, 13, 34)
    request, sent = only(providers, "openai")
    assert request.path == "/v1/chat/completions"
    assert request.header("Authorization") == f"Bearer {KEYS['openai']}"
    assert request.json()["messages"] == MESSAGES
    ChatCompletion.model_validate(json.loads(sent.body))


@pytest.mark.parametrize("include_usage", [True, False])
def test_openai_stream_arrives_event_by_event(providers: StandIns, include_usage: bool) -> None:
    providers.answer("openai", Answer(text=TEXT, chunks=3, pause=PAUSE, input_tokens=8, output_tokens=16))
    options: Any = {"include_usage": True} if include_usage else openai.omit

    arrivals, usages = [], []
    for chunk in openai.OpenAI().chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, stream=True,
                                                          stream_options=options):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic(), chunk.choices[0].delta.content))
        if chunk.usage is not None:
            usages.append(chunk.usage)

    assert [text for _, text in arrivals] == split(TEXT, 3)
    assert "".join(text for _, text in arrivals) == TEXT
    if include_usage:
        assert [(u.prompt_tokens, u.completion_tokens, u.total_tokens) for u in usages] == [(8, 16, 24)]
    else:
        assert usages == []
    request, sent = only(providers, "openai")
    assert request.json()["stream"] is True
    assert request.header("Authorization") == f"Bearer {KEYS['openai']}"
    assert sent.writes[-1][1] == b"data: [DONE]\n\n"
    assert all(data.endswith(b"\n\n") and not data.endswith(b"\r\n\r\n") for _, data in sent.writes)
    assert_event_by_event(sent, arrivals)
    for chunk_json in sse_data(sent):
        ChatCompletionChunk.model_validate(chunk_json)


def openai_tool_call_streamed(client: openai.OpenAI, tools: Any) -> tuple[str | None, str, str | None, Any]:
    """(name, arguments, finish reason, usage) put together from the chunks, as an agent would."""
    name, fragments, finish, usage = None, [], None, None
    for chunk in client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, tools=tools, stream=True,
                                                stream_options={"include_usage": True}):
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                assert delta.index == 0 and delta.function is not None
                name = name or delta.function.name
                fragments.append(delta.function.arguments or "")
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    assert len([f for f in fragments if f]) == 4  # the arguments came in pieces
    return name, "".join(fragments), finish, usage


@pytest.mark.parametrize("stream", [False, True])
def test_openai_tool_call(providers: StandIns, stream: bool) -> None:
    providers.answer("openai", Answer.tool(WEATHER.name, WEATHER.arguments, chunks=4, input_tokens=40, output_tokens=18))
    tools: Any = [{"type": "function", "function": {"name": WEATHER.name, "parameters": {"type": "object"}}}]
    client = openai.OpenAI()

    if stream:
        name, arguments, finish, usage = openai_tool_call_streamed(client, tools)
    else:
        completion = client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, tools=tools)
        call = (completion.choices[0].message.tool_calls or [])[0]
        assert call.type == "function" and call.id.startswith("call_")
        name, arguments = call.function.name, call.function.arguments
        finish, usage = completion.choices[0].finish_reason, completion.usage

    assert name == WEATHER.name
    assert json.loads(arguments) == WEATHER.arguments
    assert finish == "tool_calls"
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (40, 18)
    request, _ = only(providers, "openai")
    assert request.json()["tools"] == tools


# --- Anthropic --------------------------------------------------------------------------------------


def test_anthropic_message(providers: StandIns) -> None:
    providers.answer("anthropic", Answer(text=TEXT, input_tokens=25, output_tokens=11))

    message = anthropic.Anthropic().messages.create(model=ANTHROPIC_MODEL, max_tokens=256, messages=MESSAGES)

    assert [block.text for block in message.content if block.type == "text"] == [TEXT]
    assert message.stop_reason == "end_turn"
    assert message.model == ANTHROPIC_MODEL
    assert (message.usage.input_tokens, message.usage.output_tokens) == (25, 11)
    request, sent = only(providers, "anthropic")
    assert request.path == "/v1/messages"
    # anthropic 2.x sends an API key as a bearer token (x-api-key was 0.x's header); both reach the API.
    assert request.header("Authorization") == f"Bearer {KEYS['anthropic']}"
    assert request.header("anthropic-version")
    assert request.json()["messages"] == MESSAGES
    Message.model_validate(json.loads(sent.body))


def test_anthropic_stream_arrives_event_by_event(providers: StandIns) -> None:
    providers.answer("anthropic", Answer(text=TEXT, chunks=3, pause=PAUSE, input_tokens=10, output_tokens=19))

    arrivals = []
    with anthropic.Anthropic().messages.stream(model=ANTHROPIC_MODEL, max_tokens=256, messages=MESSAGES) as stream:
        for text in stream.text_stream:
            arrivals.append((time.monotonic(), text))
        final = stream.get_final_message()

    assert [text for _, text in arrivals] == split(TEXT, 3)
    assert "".join(text for _, text in arrivals) == TEXT
    assert (final.usage.input_tokens, final.usage.output_tokens) == (10, 19)
    assert final.stop_reason == "end_turn"
    request, sent = only(providers, "anthropic")
    assert request.json()["stream"] is True
    assert request.header("Authorization") == f"Bearer {KEYS['anthropic']}"
    names = [data.split(b"\n", 1)[0].decode() for _, data in sent.writes]
    assert names == ["event: message_start", "event: content_block_start", "event: ping"] + [
        "event: content_block_delta"] * 3 + ["event: content_block_stop", "event: message_delta", "event: message_stop"]
    assert_event_by_event(sent, arrivals)
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RawMessageStreamEvent)
    for event in sse_data(sent):
        if event["type"] != "ping":
            adapter.validate_python(event)


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_tool_use(providers: StandIns, stream: bool) -> None:
    providers.answer("anthropic", Answer.tool(WEATHER.name, WEATHER.arguments, chunks=4, input_tokens=44,
                                              output_tokens=21))
    tools: Any = [{"name": WEATHER.name, "input_schema": {"type": "object"}}]
    client = anthropic.Anthropic()

    message: Message
    if stream:
        fragments = []
        for event in client.messages.create(model=ANTHROPIC_MODEL, max_tokens=256, messages=MESSAGES, tools=tools,
                                            stream=True):
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                fragments.append(event.delta.partial_json)
        assert len([f for f in fragments if f]) == 4  # the input came in pieces
        assert json.loads("".join(fragments)) == WEATHER.arguments
        with client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=256, messages=MESSAGES, tools=tools) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(model=ANTHROPIC_MODEL, max_tokens=256, messages=MESSAGES, tools=tools)

    uses = [block for block in message.content if block.type == "tool_use"]
    assert [(use.name, use.input) for use in uses] == [(WEATHER.name, WEATHER.arguments)]
    assert uses[0].id.startswith("toolu_")
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (44, 21)
    for request in providers.requests("anthropic"):
        assert request.json()["tools"] == tools
        assert request.header("Authorization") == f"Bearer {KEYS['anthropic']}"


# --- the stand-in itself -----------------------------------------------------------------------------


POSTS: dict[Provider, tuple[str, dict[str, str], dict[str, Any]]] = {
    "gemini": (f"/v1beta/models/{GEMINI_MODEL}:", {"x-goog-api-key": KEYS["gemini"]},
               {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}),
    "openai": ("/v1/chat/completions", {"Authorization": f"Bearer {KEYS['openai']}"},
               {"model": OPENAI_MODEL, "messages": MESSAGES}),
    "anthropic": ("/v1/messages", {"x-api-key": KEYS["anthropic"], "anthropic-version": "2023-06-01"},
                  {"model": ANTHROPIC_MODEL, "max_tokens": 256, "messages": MESSAGES}),
}


def post(providers: StandIns, provider: Provider, *, stream: bool) -> tuple[int, list[tuple[str, str]], bytes]:
    path, headers, body = POSTS[provider]
    if provider == "gemini":
        path += "streamGenerateContent?alt=sse" if stream else "generateContent"
    else:
        body = {**body, "stream": stream}
    request = urllib.request.Request(providers.origin + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.getheaders(), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.items(), error.read()


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_records_the_exact_bytes_a_client_received(providers: StandIns, provider: Provider, stream: bool) -> None:
    providers.answer(provider, Answer(text=TEXT, headers={"x-standin-test": "1"}))

    status, headers, body = post(providers, provider, stream=stream)

    request, sent = only(providers, provider)
    assert (status, sent.status, sent.complete) == (200, 200, True)
    assert sent.body == body
    assert sent.headers == tuple(headers)  # as sent, in order, including aiohttp's Date and framing headers
    assert sent.header("x-standin-test") == "1"
    assert request.body == json.dumps(POSTS[provider][2] if provider == "gemini" else
                                      {**POSTS[provider][2], "stream": stream}).encode()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_missing_or_wrong_key_is_refused_as_the_provider_does(providers: StandIns, provider: Provider) -> None:
    path, headers, body = POSTS[provider]
    wanted = {"gemini": (403, 400), "openai": (401, 401), "anthropic": (401, 401)}[provider]
    for key, expected in zip(("", "not-the-key"), wanted):
        sent_headers = {name: (value if name == "anthropic-version" else
                               "Bearer " + key if name == "Authorization" else key)
                        for name, value in headers.items()}
        request = urllib.request.Request(providers.origin + path + ("generateContent" if provider == "gemini" else ""),
                                         data=json.dumps(body).encode(), headers=sent_headers)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == expected
        envelope = json.loads(refused.value.read())
        assert envelope["error"]["message"]
        if provider == "anthropic":
            assert envelope["type"] == "error" and envelope["error"]["type"] == "authentication_error"


def test_unknown_paths_are_recorded_and_answered_404(providers: StandIns) -> None:
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(providers.origin + "/v1/embeddings?x=1", timeout=10)
    assert missing.value.code == 404
    [request] = providers.requests()
    assert (request.provider, request.method, request.path) == (None, "GET", "/v1/embeddings?x=1")


def test_shuts_down_without_leaving_a_thread_or_a_port() -> None:
    before = set(threading.enumerate())
    with StandIns() as standins:
        standins.answer("openai", pause=5.0)  # a stream still running at shutdown is cancelled
        port = standins.port
        conn = socket.create_connection(("127.0.0.1", port), timeout=5)
        body = b'{"model":"m","stream":true}'
        conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        conn.recv(1)  # the stream has started
        started = time.monotonic()
    assert time.monotonic() - started < 5
    conn.close()
    assert set(threading.enumerate()) <= before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


# --- errors, dropped streams and slow answers, as each SDK sees them ---------------------------------


FAST_RETRY = {"retry-after-ms": "1"}  # the Stainless SDKs wait this long instead of their backoff


def test_openai_error_envelope_and_default_retries(providers: StandIns) -> None:
    providers.fail("openai", openai_error(429, "Rate limit reached for gpt-4o-mini.", type="requests",
                                          code="rate_limit_exceeded", headers=FAST_RETRY))
    with pytest.raises(openai.RateLimitError) as raised:
        openai.OpenAI().chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    assert (raised.value.status_code, raised.value.code, raised.value.type) == (429, "rate_limit_exceeded", "requests")
    # Two retries by default, each numbered in x-stainless-retry-count, the key unchanged.
    attempts = providers.requests("openai")
    assert [r.header("x-stainless-retry-count") for r in attempts] == ["0", "1", "2"]
    assert {r.header("Authorization") for r in attempts} == {f"Bearer {KEYS['openai']}"}

    providers.fail("openai", openai_error(503, "The server is overloaded.", type="server_error", headers=FAST_RETRY,
                                          times=1))
    completion = openai.OpenAI().chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    assert completion.choices[0].message.content == Answer().text  # the retry got the answer
    assert [r.header("x-stainless-retry-count") for r in providers.requests("openai")[3:]] == ["0", "1"]


def test_anthropic_overloaded_and_default_retries(providers: StandIns) -> None:
    providers.fail("anthropic", anthropic_error(529, "overloaded_error", "Overloaded", headers=FAST_RETRY))
    with pytest.raises(anthropic.OverloadedError) as raised:
        anthropic.Anthropic().messages.create(model=ANTHROPIC_MODEL, max_tokens=256, messages=MESSAGES)
    assert raised.value.status_code == 529
    assert isinstance(raised.value, anthropic.InternalServerError)
    assert isinstance(raised.value.body, dict) and raised.value.body["error"]["type"] == "overloaded_error"
    assert [r.header("x-stainless-retry-count") for r in providers.requests("anthropic")] == ["0", "1", "2"]

    providers.fail("anthropic", anthropic_error(400, "invalid_request_error", "max_tokens: field required",
                                                headers=FAST_RETRY))
    with pytest.raises(anthropic.BadRequestError):
        anthropic.Anthropic().messages.create(model=ANTHROPIC_MODEL, max_tokens=256, messages=MESSAGES)
    assert len(providers.requests("anthropic")) == 4  # a 400 is not retried


def test_gemini_error_envelope_and_no_retries_by_default(providers: StandIns) -> None:
    providers.fail("gemini", gemini_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.",
                                          retry_delay="1s", headers={"Retry-After": "1"}))
    client = genai.Client()
    with pytest.raises(genai_errors.ClientError) as raised:
        client.models.generate_content(model=GEMINI_MODEL, contents=PROMPT)
    assert (raised.value.code, raised.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert raised.value.details["error"]["details"][0]["retryDelay"] == "1s"
    assert len(providers.requests("gemini")) == 1  # google-genai retries only when HttpRetryOptions say so

    providers.fail("gemini", gemini_error(503, "UNAVAILABLE", "The model is overloaded.", times=2))
    retrying = genai.Client(http_options=genai_types.HttpOptions(
        retry_options=genai_types.HttpRetryOptions(initial_delay=0.01, max_delay=0.02)))
    assert retrying.models.generate_content(model=GEMINI_MODEL, contents=PROMPT).text == Answer().text
    assert len(providers.requests("gemini")) == 4


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_stream_dropped_midway_fails_in_the_sdk(providers: StandIns, provider: Provider) -> None:
    # Two text pieces through: Anthropic's message_start, content_block_start and ping come first, OpenAI's role chunk.
    cut = {"gemini": 2, "openai": 3, "anthropic": 5}[provider]
    providers.answer(provider, Answer(text=TEXT, chunks=5, cut_after=cut))
    received: list[str] = []
    gemini = genai.Client()
    with pytest.raises(Exception) as raised:
        if provider == "gemini":
            for chunk in gemini.models.generate_content_stream(model=GEMINI_MODEL, contents=PROMPT):
                received.append(chunk.text or "")
        elif provider == "openai":
            for delta in openai.OpenAI().chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, stream=True):
                received.append(delta.choices[0].delta.content or "")
        else:
            with anthropic.Anthropic().messages.stream(model=ANTHROPIC_MODEL, max_tokens=256,
                                                       messages=MESSAGES) as stream:
                received.extend(stream.text_stream)

    expected = {"gemini": httpx2.RemoteProtocolError, "openai": openai.APIConnectionError,
                "anthropic": anthropic.APIConnectionError}[provider]
    assert type(raised.value) is expected
    assert "".join(received) == "".join(split(TEXT, 5)[:2])
    _, sent = only(providers, provider)  # once the stream has begun, no SDK retries it
    assert not sent.complete and len(sent.writes) == cut


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_slow_answer_is_a_read_timeout_in_the_sdk(providers: StandIns, provider: Provider) -> None:
    providers.answer(provider, delay=3.0)
    started, gemini = time.monotonic(), genai.Client()
    with pytest.raises(Exception) as raised:
        if provider == "gemini":
            gemini.models.generate_content(model=GEMINI_MODEL, contents=PROMPT,
                                                   config={"http_options": {"timeout": 300}})  # milliseconds
        elif provider == "openai":
            openai.OpenAI().with_options(max_retries=0, timeout=0.3).chat.completions.create(
                model=OPENAI_MODEL, messages=MESSAGES)
        else:
            anthropic.Anthropic().with_options(max_retries=0, timeout=0.3).messages.create(
                model=ANTHROPIC_MODEL, max_tokens=256, messages=MESSAGES)

    expected = {"gemini": httpx2.ReadTimeout, "openai": openai.APITimeoutError,
                "anthropic": anthropic.APITimeoutError}[provider]
    assert type(raised.value) is expected
    assert time.monotonic() - started < 2.5
    assert len(providers.requests(provider)) == 1
