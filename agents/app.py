"""The sample agents' HTTP API (aiohttp): routes, validation and error mapping.

    GET  /                 what this agent is and which endpoints it serves
    GET  /healthz          {"status": "ok", "agent", "model", "instance", "startedAt"}
    POST /v1/chat          chat agent only:    {"message", "history"?} → {"reply", "model"}
    POST /v1/summarize     summary agent only: {"text", "maxSentences"?} → {"summary", "model"}

Every error is JSON `{"error": "..."}`: 400 body is not JSON, 413 body too large,
415 not application/json, 422 a field is invalid (named), 404/405 as usual. Model
failures (see `model.py`) map to what a gateway would answer: 429 when Gemini rate
limits (with its Retry-After), 504 when it does not answer in time, 502 for every
other upstream failure — the agent itself is fine, the model behind it is not.

The model is chosen once per process and opened on startup (a Gemini client's HTTP
session lives exactly as long as the app and is closed on cleanup).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web

from agentops.errors import AgentOpsError, InvalidField
from agentops.times import format_time
from agentops_agents.gemini import GeminiClient
from agentops_agents.model import Model, ModelError, ModelRateLimited, ModelTimeout
from agentops_agents.offline_model import OfflineModel
from agentops_agents.payloads import (
    ChatResponse,
    SummaryResponse,
    parse_chat_request,
    parse_summary_request,
)
from agentops_agents.settings import AgentKind, AgentSettings

log = logging.getLogger(__name__)

# A summary request holds at most 100,000 characters, i.e. at most ~600 KiB of JSON
# even with every character escaped; 1 MiB admits that and refuses anything bigger
# before it is read into memory.
MAX_BODY_BYTES = 1024 * 1024

MODEL = web.AppKey[Model]("model")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ENDPOINTS: dict[AgentKind, tuple[str, str]] = {
    "chat": ("/v1/chat", '{"message": str, "history"?: [{"role": "user"|"model", "text": str}]} -> {"reply", "model"}'),
    "summary": ("/v1/summarize", '{"text": str, "maxSentences"?: 1..20 (default 3)} -> {"summary", "model"}'),
}


@dataclass(frozen=True)
class AgentInstance:
    """Who this process is: /healthz reports it so that a restart is visible."""

    id: str
    started_at: str  # RFC 3339, UTC

    @classmethod
    def new(cls, now: datetime) -> AgentInstance:
        return cls(id=str(uuid.uuid4()), started_at=format_time(now))


class Refused(AgentOpsError):
    """A request the agent will not process; `status` and the message go to the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def model_error_response(exc: ModelError) -> web.Response:
    """429 for a rate limit (Retry-After passed on), 504 for a timeout, 502 otherwise."""
    if isinstance(exc, ModelRateLimited):
        return _error(429, str(exc), {"Retry-After": exc.retry_after} if exc.retry_after else None)
    if isinstance(exc, ModelTimeout):
        return _error(504, str(exc))
    return _error(502, str(exc))


async def json_body(request: web.Request) -> Any:
    """The decoded JSON body, or Refused with 415/400 (413 is raised by aiohttp)."""
    if request.content_type != "application/json":
        given = request.headers.get("Content-Type") or "none"
        raise Refused(415, f"Content-Type must be application/json, got {given}")
    raw = await request.read()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Refused(400, f"body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise Refused(400, "body is not valid JSON: nested too deeply") from exc


@asynccontextmanager
async def open_model(settings: AgentSettings) -> AsyncIterator[Model]:
    """Gemini when a key is configured, the offline model otherwise."""
    if not settings.gemini_api_key:
        yield OfflineModel()
        return
    async with aiohttp.ClientSession() as session:
        yield GeminiClient(
            session,
            api_key=settings.gemini_api_key,
            base_url=settings.gemini_base_url,
            model=settings.gemini_model,
            timeout_s=settings.model_timeout_s,
        )


def build_app(settings: AgentSettings, instance: AgentInstance, *, model: Model | None = None) -> web.Application:
    """The agent's application; `model` replaces the configured one (tests)."""
    kind = settings.kind
    path, contract = ENDPOINTS[kind]

    def not_found() -> web.Response:
        return _error(404, f"not found; the {kind} agent serves GET /, GET /healthz and POST {path}")

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refused as exc:
            return _error(exc.status, str(exc))
        except InvalidField as exc:
            return _error(422, str(exc))
        except ModelError as exc:
            log.warning("%s %s: %s", request.method, request.path, exc)
            return model_error_response(exc)
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"request body larger than {MAX_BODY_BYTES} bytes (1 MiB)")
        except web.HTTPNotFound:
            return not_found()
        except web.HTTPMethodNotAllowed as exc:
            allowed = ", ".join(sorted(exc.allowed_methods))
            return _error(405, f"{request.method} is not allowed on {request.path}; allowed: {allowed}", {"Allow": allowed})
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return _error(exc.status, exc.reason, allow)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return _error(500, "internal error in the agent; its log has the details")

    async def describe(request: web.Request) -> web.Response:
        current = request.app[MODEL]
        body: dict[str, Any] = {
            "agent": kind,
            "model": current.name,
            "endpoints": {
                "GET /": "this description",
                "GET /healthz": '{"status": "ok", "agent", "model", "instance", "startedAt"}',
                f"POST {path}": contract,
            },
        }
        if current.name == "gemini":
            body["geminiModel"] = settings.gemini_model
        return web.json_response(body)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({
            "status": "ok",
            "agent": kind,
            "model": request.app[MODEL].name,
            "instance": instance.id,
            "startedAt": instance.started_at,
        })

    async def chat(request: web.Request) -> web.Response:
        req = parse_chat_request(await json_body(request))
        current = request.app[MODEL]
        reply = await current.chat(req.message, req.history)
        return web.json_response(ChatResponse(reply=reply, model=current.name))

    async def summarize(request: web.Request) -> web.Response:
        req = parse_summary_request(await json_body(request))
        current = request.app[MODEL]
        summary = await current.summarize(req.text, req.max_sentences)
        return web.json_response(SummaryResponse(summary=summary, model=current.name))

    async def model_context(app: web.Application) -> AsyncIterator[None]:
        if model is not None:
            app[MODEL] = model
            yield
            return
        async with open_model(settings) as opened:
            app[MODEL] = opened
            yield

    app = web.Application(middlewares=[errors], client_max_size=MAX_BODY_BYTES)
    app.cleanup_ctx.append(model_context)
    app.router.add_get("/", describe)
    app.router.add_get("/healthz", healthz)
    app.router.add_post(path, chat if kind == "chat" else summarize)
    return app
