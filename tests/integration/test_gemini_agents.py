"""The real sample agents (`python -m agentops agent chat|summary`) against a local
stand-in of Gemini's REST endpoint.

The stand-in is an aiohttp app on 127.0.0.1 in the test's own event loop: it checks
each request exactly as Gemini would receive it (path, `x-goog-api-key`, contents) and
answers with whatever Gemini-shaped response the test set. The agent runs as a
subprocess with its real Gemini client, so the tests cover the whole path: CLI and
settings, the HTTP session, error mapping and the agent's log. Readiness is polled
with a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agentops.processes import terminate

KEY = "AIzaTEST-stand-in-key_0123456789"
MODEL = "gemini-test-model"
LISTENING = re.compile(r"listening on (http://\S+)")
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass
class Canned:
    """One response of the stand-in: a JSON body (or raw bytes), or no answer at all."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


def gemini_answer(text: str) -> Canned:
    return Canned(body={
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8},
    })


def google_error(code: int, status: str, message: str, **headers: str) -> Canned:
    return Canned(status=code, body={"error": {"code": code, "message": message, "status": status}}, headers=headers)


class GeminiStandIn:
    """generateContent on 127.0.0.1; records each request and any way it differs from Gemini's."""

    def __init__(self) -> None:
        self.response = gemini_answer("stand-in answer")
        self.requests: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.release = asyncio.Event()  # ends hanging requests at teardown
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1beta/models/{target}", self.generate_content)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()

    def _check(self, request: web.Request, body: Any) -> None:
        expected_path = f"/v1beta/models/{MODEL}:generateContent"
        if request.path != expected_path:
            self.problems.append(f"path {request.path!r}, expected {expected_path!r}")
        if request.headers.get("x-goog-api-key") != KEY:
            self.problems.append("x-goog-api-key header missing or wrong")
        if request.content_type != "application/json":
            self.problems.append(f"Content-Type {request.content_type!r}")
        if not isinstance(body, dict) or set(body) - {"contents", "generationConfig"} or not body.get("contents"):
            self.problems.append(f"body is not a generateContent request: {body!r}")
            return
        for item in body["contents"]:
            if not (isinstance(item, dict) and set(item) == {"role", "parts"} and item["role"] in ("user", "model")
                    and isinstance(item["parts"], list) and all(set(p) == {"text"} for p in item["parts"])):
                self.problems.append(f"malformed content {item!r}")

    async def generate_content(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = None
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        self._check(request, body)
        canned = self.response
        if canned.hang:
            await self.release.wait()  # longer than any --model-timeout in these tests
        if isinstance(canned.body, bytes):
            return web.Response(status=canned.status, body=canned.body, headers=canned.headers)
        return web.json_response(canned.body, status=canned.status, headers=canned.headers)


@dataclass
class Agent:
    proc: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


StartAgent = Callable[..., Awaitable[Agent]]


@pytest.fixture
async def gemini() -> AsyncIterator[GeminiStandIn]:
    stand_in = GeminiStandIn()
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        yield session


async def _wait_ready(agent: Agent, http: aiohttp.ClientSession, timeout: float = 20.0) -> None:
    """Poll the log for the bound address, then /healthz, until the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if agent.proc.poll() is not None:
            raise AssertionError(f"agent exited with {agent.proc.returncode}:\n{agent.log()}")
        if not agent.url and (found := LISTENING.search(agent.log())):
            agent.url = found.group(1)
        if agent.url:
            try:
                async with http.get(f"{agent.url}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
        if time.monotonic() >= deadline:
            raise AssertionError(f"agent not ready after {timeout}s:\n{agent.log()}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def start_agent(
    tmp_path: Path, http: aiohttp.ClientSession, gemini: GeminiStandIn
) -> AsyncIterator[StartAgent]:
    """Start the real agent as a subprocess; `key=False` runs it without a Gemini key."""
    agents: list[Agent] = []

    async def start(kind: str, *args: str, key: bool = True) -> Agent:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "AGENTOPS_"))}
        if key:
            env["GEMINI_API_KEY"] = KEY
        cmd = [
            sys.executable, "-m", "agentops", "agent", kind, "--host", "127.0.0.1", "--port", "0",
            "--gemini-base-url", gemini.url, "--gemini-model", MODEL, *args,
        ]
        log_path = tmp_path / f"agent-{kind}-{len(agents)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        agent = Agent(proc, log_path)
        agents.append(agent)
        await _wait_ready(agent, http)
        return agent

    yield start
    for agent in agents:
        await asyncio.to_thread(terminate, agent.proc)
        # Whatever happened in the test, the key never reached the agent's log.
        assert KEY not in agent.log()


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with http.post(url, json=body) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


async def test_chat_answers_through_gemini(start_agent: StartAgent, gemini: GeminiStandIn, http: aiohttp.ClientSession) -> None:
    agent = await start_agent("chat")
    gemini.response = gemini_answer("Operators reconcile custom resources.")
    status, body, _ = await post(http, f"{agent.url}/v1/chat", {
        "message": "What does an operator do?",
        "history": [{"role": "user", "text": "Hi"}, {"role": "model", "text": "Hello! How can I help?"}],
    })
    assert (status, body) == (200, {"reply": "Operators reconcile custom resources.", "model": "gemini"})
    assert gemini.problems == []
    [request] = gemini.requests
    assert request["path"] == f"/v1beta/models/{MODEL}:generateContent"
    assert request["body"]["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello! How can I help?"}]},
        {"role": "user", "parts": [{"text": "What does an operator do?"}]},
    ]
    async with http.get(f"{agent.url}/healthz") as resp:
        health = await resp.json()
    assert health["model"] == "gemini" and health["agent"] == "chat"


async def test_summary_answers_through_gemini(start_agent: StartAgent, gemini: GeminiStandIn, http: aiohttp.ClientSession) -> None:
    agent = await start_agent("summary")
    gemini.response = gemini_answer("  The council funded transit.  ")
    text = "The council met. It approved the transit budget. Riders were pleased."
    status, body, _ = await post(http, f"{agent.url}/v1/summarize", {"text": text, "maxSentences": 2})
    assert (status, body) == (200, {"summary": "The council funded transit.", "model": "gemini"})
    assert gemini.problems == []
    [request] = gemini.requests
    [content] = request["body"]["contents"]
    prompt = content["parts"][0]["text"]
    assert content["role"] == "user"
    assert "at most 2 sentences" in prompt and prompt.endswith(text)
    # The summary agent serves only its own endpoint.
    async with http.post(f"{agent.url}/v1/chat", json={"message": "hi"}) as resp:
        assert resp.status == 404


async def test_gemini_429_becomes_a_clear_429_with_retry_after(
    start_agent: StartAgent, gemini: GeminiStandIn, http: aiohttp.ClientSession
) -> None:
    agent = await start_agent("chat")
    gemini.response = google_error(
        429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", **{"Retry-After": "7"}
    )
    status, body, headers = await post(http, f"{agent.url}/v1/chat", {"message": "hello"})
    assert status == 429
    assert body == {"error": "model rate limited by Gemini (429): Resource has been exhausted (e.g. check quota); retry after 7s"}
    assert headers["Retry-After"] == "7"
    assert gemini.problems == []


async def test_gemini_500_becomes_502_naming_the_upstream_status(
    start_agent: StartAgent, gemini: GeminiStandIn, http: aiohttp.ClientSession
) -> None:
    agent = await start_agent("summary")
    gemini.response = google_error(500, "INTERNAL", "An internal error has occurred.")
    status, body, _ = await post(http, f"{agent.url}/v1/summarize", {"text": "Some text to summarise."})
    assert status == 502
    assert body == {"error": "Gemini failed with upstream status 500 INTERNAL: An internal error has occurred; try again later"}
    assert "Gemini failed with upstream status 500" in agent.log()  # and the operator of the agent sees why


async def test_slow_gemini_becomes_504_within_the_model_timeout(
    start_agent: StartAgent, gemini: GeminiStandIn, http: aiohttp.ClientSession
) -> None:
    agent = await start_agent("chat", "--model-timeout", "500ms")
    gemini.response = Canned(hang=True)
    started = time.monotonic()
    status, body, _ = await post(http, f"{agent.url}/v1/chat", {"message": "are you there?"})
    elapsed = time.monotonic() - started
    assert status == 504
    assert body["error"].startswith("the model did not answer within 0.5 s (--model-timeout)")
    assert 0.5 <= elapsed < 5, elapsed
    assert len(gemini.requests) == 1


async def test_rejected_key_becomes_502_without_leaking_the_key(
    start_agent: StartAgent, gemini: GeminiStandIn, http: aiohttp.ClientSession
) -> None:
    agent = await start_agent("chat")
    # A hostile or careless upstream that echoes the key must not make the agent echo it.
    gemini.response = google_error(403, "PERMISSION_DENIED", f"Permission denied for API key {KEY}.")
    async with http.post(f"{agent.url}/v1/chat", json={"message": "hello"}) as resp:
        raw = await resp.text()
        status = resp.status
    assert status == 502
    assert KEY not in raw
    assert json.loads(raw) == {"error": (
        "Gemini rejected the API key (403 PERMISSION_DENIED): Permission denied for API key <redacted>; "
        "check --gemini-api-key-file or GEMINI_API_KEY"
    )}


async def test_blocked_prompt_becomes_502_saying_so(
    start_agent: StartAgent, gemini: GeminiStandIn, http: aiohttp.ClientSession
) -> None:
    agent = await start_agent("chat")
    gemini.response = Canned(body={"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []}})
    status, body, _ = await post(http, f"{agent.url}/v1/chat", {"message": "something unsafe"})
    assert (status, body) == (502, {"error": "Gemini blocked the prompt (blockReason SAFETY); rephrase the request"})


async def test_malformed_gemini_body_becomes_502(
    start_agent: StartAgent, gemini: GeminiStandIn, http: aiohttp.ClientSession
) -> None:
    agent = await start_agent("summary")
    gemini.response = Canned(body=b"<html>proxy error</html>", headers={"Content-Type": "text/html"})
    status, body, _ = await post(http, f"{agent.url}/v1/summarize", {"text": "Some text."})
    assert (status, body) == (502, {"error": "Gemini answered 200 with a body that is not valid JSON"})


async def test_unreachable_gemini_becomes_502(start_agent: StartAgent, gemini: GeminiStandIn, http: aiohttp.ClientSession) -> None:
    agent = await start_agent("chat")
    await gemini.stop()  # nothing listens on its port any more
    status, body, _ = await post(http, f"{agent.url}/v1/chat", {"message": "hello"})
    assert status == 502
    assert body["error"].startswith(f"cannot reach Gemini at {gemini.url}: ")


async def test_without_a_key_the_agent_runs_offline(
    start_agent: StartAgent, gemini: GeminiStandIn, http: aiohttp.ClientSession
) -> None:
    agent = await start_agent("summary", key=False)
    async with http.get(f"{agent.url}/healthz") as resp:
        health = await resp.json()
    assert health["status"] == "ok" and health["agent"] == "summary" and health["model"] == "offline"
    assert re.fullmatch(r"[0-9a-f-]{36}", health["instance"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", health["startedAt"])
    status, body, _ = await post(http, f"{agent.url}/v1/summarize", {"text": "First point. Second point.", "maxSentences": 1})
    assert status == 200 and body["model"] == "offline"
    assert gemini.requests == []


async def test_sigterm_stops_the_agent_cleanly(start_agent: StartAgent) -> None:
    agent = await start_agent("chat")
    assert await asyncio.to_thread(terminate, agent.proc, grace_s=10) == 0
    assert "stopped" in agent.log()


def test_a_bad_flag_exits_2_naming_it() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agentops", "agent", "chat", "--model-timeout", "-1"],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "agentops agent chat: --model-timeout: '-1' is not a duration such as 30s, 5m or 1h30m"
