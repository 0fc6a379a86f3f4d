"""What the web layer needs from a language model, and how a model can fail.

Two models implement `Model`: the offline deterministic one (`offline_model`) and the
Gemini REST client (`gemini`). The web layer (`app`) only knows this module, so it
never depends on which one is configured.

Every failure of a model is a `ModelError` subclass whose message a user can act on
(what went wrong upstream, what to do about it); `app` maps each subclass to an HTTP
status. The messages never contain the API key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from agentops.errors import AgentOpsError

Role = Literal["user", "model"]  # Gemini's names for the two sides of a conversation


@dataclass(frozen=True)
class Turn:
    """One earlier message of a chat, oldest first."""

    role: Role
    text: str


class Model(Protocol):
    @property
    def name(self) -> str:
        """"offline" or "gemini": reported by /healthz and in every answer."""
        ...

    async def chat(self, message: str, history: Sequence[Turn]) -> str:
        """The reply to `message`, given the conversation so far."""
        ...

    async def summarize(self, text: str, max_sentences: int) -> str:
        """A summary of `text` of at most `max_sentences` sentences."""
        ...


class ModelError(AgentOpsError):
    """The model could not answer; the message says why."""


class ModelRateLimited(ModelError):
    """The model's quota is exhausted for now (Gemini 429).

    `retry_after` is the upstream Retry-After value (seconds or an HTTP date), or None
    when the upstream gave no hint.
    """

    def __init__(self, message: str, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelUnavailable(ModelError):
    """The model's service failed or could not be reached (Gemini 5xx, connection errors)."""


class ModelTimeout(ModelError):
    """The model did not answer within the configured timeout."""

    def __init__(self, message: str, timeout_s: float) -> None:
        super().__init__(message)
        self.timeout_s = timeout_s


class ModelRequestRejected(ModelError):
    """The model refused the request as invalid (Gemini 400/404/other 4xx)."""


class ModelAuthError(ModelRequestRejected):
    """The model refused the API key (Gemini 401/403, or 400 API_KEY_INVALID)."""


class ModelBadResponse(ModelError):
    """The model answered, but not with usable text (malformed, no candidates, blocked)."""
