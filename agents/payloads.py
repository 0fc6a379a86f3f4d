"""The agents' request and response bodies, and their validation.

Validation is strict and pure (no I/O): an unknown field is refused by name rather than
ignored, so that a typo such as `maxSentence` does not silently fall back to a
default. Each refusal is an InvalidField whose text is `<field>: <problem; what is
allowed>`, which the web layer returns as-is with status 422. `null` for an optional
field means "not given".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from agentops.errors import InvalidField
from agentops_agents.model import Role, Turn

# A chat message is a prompt, not a document; 8000 characters keep one request (with
# its history) well inside a model's context and the agent's body limit.
MAX_MESSAGE_CHARS = 8000
MAX_HISTORY_TURNS = 50
# About 15,000 words: a long article or a short report.
MAX_TEXT_CHARS = 100_000
MAX_SENTENCES = 20
DEFAULT_MAX_SENTENCES = 3
ROLES: tuple[Role, ...] = ("user", "model")


@dataclass(frozen=True)
class ChatRequest:
    message: str
    history: tuple[Turn, ...] = ()


@dataclass(frozen=True)
class SummaryRequest:
    text: str
    max_sentences: int = DEFAULT_MAX_SENTENCES


class ChatResponse(TypedDict):
    reply: str
    model: str


class SummaryResponse(TypedDict):
    summary: str
    model: str


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _object(value: Any, field: str, allowed: tuple[str, ...], example: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidField(field, f"must be a JSON object such as {example}, got {json_type(value)}")
    for key in value:
        if key not in allowed:
            name = key if field == "body" else f"{field}.{key}"
            raise InvalidField(name, f"unknown field; allowed fields are {', '.join(allowed)}")
    return value


def _text(value: Any, field: str, max_chars: int) -> str:
    allowed = f"allowed 1..{max_chars} characters"
    if value is None:
        raise InvalidField(field, f"is required: a string, {allowed}")
    if not isinstance(value, str):
        raise InvalidField(field, f"must be a string, got {json_type(value)}; {allowed}")
    if not value.strip():
        raise InvalidField(field, f"must not be empty or only whitespace; {allowed}")
    if len(value) > max_chars:
        raise InvalidField(field, f"is {len(value)} characters long; {allowed}")
    return value


def _turn(value: Any, field: str) -> Turn:
    body = _object(value, field, ("role", "text"), '{"role": "user", "text": "..."}')
    role = body.get("role")
    if role not in ROLES:
        raise InvalidField(f"{field}.role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    return Turn(role=role, text=_text(body.get("text"), f"{field}.text", MAX_MESSAGE_CHARS))


def parse_chat_request(payload: Any) -> ChatRequest:
    """`{"message": str, "history": [{"role": "user"|"model", "text": str}, ...]}`."""
    body = _object(payload, "body", ("message", "history"), '{"message": "Hello"}')
    message = _text(body.get("message"), "message", MAX_MESSAGE_CHARS)
    history = body.get("history")
    if history is None:
        return ChatRequest(message=message)
    if not isinstance(history, list):
        raise InvalidField("history", f"must be an array of {{role, text}} objects, got {json_type(history)}")
    if len(history) > MAX_HISTORY_TURNS:
        raise InvalidField("history", f"has {len(history)} turns; allowed at most {MAX_HISTORY_TURNS}")
    return ChatRequest(message=message, history=tuple(_turn(t, f"history[{i}]") for i, t in enumerate(history)))


def parse_summary_request(payload: Any) -> SummaryRequest:
    """`{"text": str, "maxSentences": int}`."""
    body = _object(payload, "body", ("text", "maxSentences"), '{"text": "...", "maxSentences": 3}')
    text = _text(body.get("text"), "text", MAX_TEXT_CHARS)
    count = body.get("maxSentences")
    if count is None:
        return SummaryRequest(text=text)
    if isinstance(count, bool) or not isinstance(count, int):
        raise InvalidField("maxSentences", f"must be a whole number 1..{MAX_SENTENCES}, got {json_type(count)}")
    if not 1 <= count <= MAX_SENTENCES:
        raise InvalidField("maxSentences", f"is {count}; allowed 1..{MAX_SENTENCES}")
    return SummaryRequest(text=text, max_sentences=count)
