"""What a model call is, read off its path and body: provider, operation, model, streaming.

The agent reaches the gateway at one path prefix per provider (`/gemini`, `/openai`,
`/anthropic`), set through each SDK's own base-URL variable; the rest of the path and
the query go to that provider's upstream unchanged. Everything else the gateway needs
to know about a call is derived here, from what the SDK sends anyway:

* the operation, as OpenTelemetry's `gen_ai.operation.name` names it, from the path;
* the model, from the JSON body (OpenAI, Anthropic) or the path (`models/{m}:…`, Gemini);
* whether it streams: `"stream": true` in the body, or Gemini's `:streamGenerateContent`.

Pure functions, no I/O. Request bodies are read but never stored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from agentops.api_types import ModelOperation, ModelProvider

# Path prefix → provider. The keys are what an agent puts in its base-URL setting.
PREFIXES: dict[str, ModelProvider] = {"gemini": "Gemini", "openai": "OpenAI", "anthropic": "Anthropic"}
PREFIX_OF: dict[ModelProvider, str] = {provider: prefix for prefix, provider in PREFIXES.items()}
DEFAULT_UPSTREAMS: dict[ModelProvider, str] = {
    "Gemini": "https://generativelanguage.googleapis.com",
    "OpenAI": "https://api.openai.com",
    "Anthropic": "https://api.anthropic.com",
}
# OpenTelemetry's gen_ai.provider.name for each (semantic conventions, gen-ai registry).
OTEL_PROVIDER: dict[ModelProvider, str] = {"Gemini": "gcp.gemini", "OpenAI": "openai", "Anthropic": "anthropic"}

# Gemini names the model and the method in the path: /v1beta/models/gemini-2.0-flash:generateContent
# (tuned models: /v1beta/tunedModels/x:generateContent).
_GEMINI_PATH = re.compile(r"/(?:models|tunedModels)/([^/:?]+):([A-Za-z]+)")
_GEMINI_OPERATIONS: dict[str, ModelOperation] = {
    "generateContent": "generate_content",
    "streamGenerateContent": "generate_content",
    "countTokens": "count_tokens",
    "embedContent": "embeddings",
    "batchEmbedContents": "embeddings",
}
# OpenAI-compatible paths, matched on their ending so any version prefix (/v1, /openai/v1) works.
_OPENAI_OPERATIONS: tuple[tuple[str, ModelOperation], ...] = (
    ("/chat/completions", "chat"),
    ("/responses", "chat"),
    ("/completions", "text_completion"),
    ("/embeddings", "embeddings"),
)
_ANTHROPIC_OPERATIONS: dict[str, ModelOperation] = {"/v1/messages": "chat", "/v1/messages/count_tokens": "count_tokens"}
# A model name in a body longer than this is cut (the wire limit is agentops.wire.MAX_MODEL_NAME).
MAX_MODEL_NAME = 128


@dataclass(frozen=True, slots=True)
class Route:
    provider: ModelProvider
    upstream_path: str  # the rest of the path and the query, still percent-encoded
    operation: ModelOperation
    path_model: str | None  # Gemini's model from the path; None for the others
    path_streams: bool  # Gemini's :streamGenerateContent


def resolve(raw_path: str) -> Route | None:
    """`/openai/v1/chat/completions?x=1` → Route; None when the prefix is no provider's."""
    if not raw_path.startswith("/"):
        return None
    whole_path, sep, query = raw_path.partition("?")
    prefix, _, tail = whole_path[1:].partition("/")
    provider = PREFIXES.get(prefix)
    if provider is None:
        return None
    path = "/" + tail
    rest = path + sep + query
    if provider == "Gemini":
        found = _GEMINI_PATH.search(path)
        if found is None:
            return Route(provider, rest, "other", None, False)
        method = found.group(2)
        return Route(provider, rest, _GEMINI_OPERATIONS.get(method, "other"), found.group(1)[:MAX_MODEL_NAME],
                     method == "streamGenerateContent")
    if provider == "Anthropic":
        return Route(provider, rest, _ANTHROPIC_OPERATIONS.get(path.rstrip("/"), "other"), None, False)
    trimmed = path.rstrip("/")
    for ending, operation in _OPENAI_OPERATIONS:
        if trimmed.endswith(ending):
            return Route(provider, rest, operation, None, False)
    return Route(provider, rest, "other", None, False)


@dataclass(frozen=True, slots=True)
class CallInfo:
    model: str  # "" when the request names none
    streams: bool


def call_info(route: Route, body: bytes) -> CallInfo:
    """The model and streaming flag of one call, from its route and request body."""
    if route.provider == "Gemini":
        return CallInfo(route.path_model or "", route.path_streams)
    fields = _top_level(body)
    model = fields.get("model")
    return CallInfo(model[:MAX_MODEL_NAME] if isinstance(model, str) else "", fields.get("stream") is True)


def _top_level(body: bytes) -> dict[str, Any]:
    # The whole body is parsed: the only way to be sure "model" is the top-level key and
    # not one inside a message. Bodies are JSON the SDK just serialised; a body that is
    # not (a multipart upload, say) names no model.
    if not body or body[:1] != b"{":
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
