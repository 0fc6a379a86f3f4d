"""The sidecar's link to the operator: what it keeps when the operator is unreachable
(bounded, and never the faults), and who it says it is on every request.

The identity tests talk to a small aiohttp server on 127.0.0.1 standing in for the
operator's API (its paths and its `{"error": ...}` refusals), over real http and https.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agentops.local_pki import write_pki
from agentops.logs import JsonFormatter
from agentops.times import format_timestamp
from agentops_sidecar.faults import FaultTable
from agentops_sidecar.identity import FileToken, StaticToken, TokenSource
from agentops_sidecar.instance import Instance
from agentops_sidecar.operator_link import BACKOFF, MAX_CARRY_S, OperatorLink, retry_delay
from agentops_sidecar.operator_tls import OperatorTLS
from agentops_sidecar.proxy import Recorder
from agentops_sidecar.settings import SidecarSettings


class _Prober:
    consecutive_failures = 0
    last_error = None

    def in_startup(self, now: float) -> bool:
        return False


def link(recorder: Recorder) -> OperatorLink:
    settings = SidecarSettings(namespace="ns", agent="chat", operator_url="http://op:8080", upstream="http://127.0.0.1:8000",
                               identity="static", static_token="t" * 32, sidecar_id="pod-1")
    return OperatorLink(settings, None, tokens=StaticToken("t" * 32), tls=OperatorTLS(None),  # type: ignore[arg-type]
                        table=FaultTable(), recorder=recorder, instance=Instance("pod-1"),
                        prober=_Prober(), restart=None)  # type: ignore[arg-type]


def test_undelivered_windows_merge_until_the_carry_limit_then_drop() -> None:
    recorder = Recorder(now=0.0)
    lk = link(recorder)
    t = 0.0
    delivered_requests = 0
    while t < MAX_CARRY_S * 3:
        for _ in range(10):
            recorder.record(200, 0.01, None)
        t += 5.0
        window = lk.cut_window(t)
        lk._carry(window, t, "operator down")  # every delivery fails
        delivered_requests = window.requests
    # What is held is one window of at most MAX_CARRY_S of traffic, whatever the outage.
    assert lk._carried is None or t - lk._carried.started <= MAX_CARRY_S
    assert delivered_requests <= (MAX_CARRY_S / 5.0 + 1) * 10
    assert lk.reports["dropped"] >= 2


def test_a_delivered_window_carries_the_undelivered_one() -> None:
    recorder = Recorder(now=0.0)
    lk = link(recorder)
    recorder.record(503, 0.01, "http5xx")
    lk._carry(lk.cut_window(5.0), 5.0, "timeout")
    recorder.record(200, 0.01, None)
    window = lk.cut_window(10.0)
    assert window.requests == 2 and window.errors["http5xx"] == 1 and window.started == 0.0
    assert lk._carried is None


def test_restart_requests_are_level_based() -> None:
    import asyncio

    calls: list[str] = []

    async def restart(reason: str) -> None:
        calls.append(reason)

    lk = link(Recorder(now=0.0))
    lk._restart = restart

    async def run(*tokens: Any) -> None:
        for token in tokens:
            await lk._maybe_restart(token)

    asyncio.run(run("a", "a", "b", "b", None, None, "c"))
    # "a" is adopted at start (the agent just started); "b" and "c" each restart once.
    assert len(calls) == 2 and "(b)" in calls[0] and "(c)" in calls[1]


def test_json_logs_carry_extra_fields() -> None:
    record = logging.LogRecord("agentops_sidecar", logging.INFO, __file__, 1, "fault %s enforced", ("slow",), None)
    record.fault = "slow"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "fault slow enforced" and entry["fault"] == "slow" and entry["level"] == "INFO"
    assert entry["time"].endswith("Z")


# ---------------------------------------------------------------- identity on every request


@dataclass
class Operator:
    """The operator's sidecar API as far as the link sees it: records who called, answers as told."""

    url: str = ""
    seen: list[tuple[str, str]] = field(default_factory=list)  # (path, Authorization)
    refusal: tuple[int, str] | None = None  # (status, error) for every request while set

    async def assignments(self, request: web.Request) -> web.Response:
        return self._answer(request) or web.json_response({
            "agent": {"namespace": "ns", "name": "chat"}, "version": 1, "leaseSeconds": 30,
            "serverTime": format_timestamp(time.time()), "faults": [], "restart": None,
        })

    async def telemetry(self, request: web.Request) -> web.Response:
        await request.read()
        return self._answer(request) or web.json_response({"accepted": True}, status=202)

    def _answer(self, request: web.Request) -> web.Response | None:
        self.seen.append((request.path, request.headers.get("Authorization", "")))
        if self.refusal is None:
            return None
        status, error = self.refusal
        return web.json_response({"error": error}, status=status)


async def serve(operator: Operator, ssl_context: ssl.SSLContext | None = None) -> web.AppRunner:
    app = web.Application()
    app.router.add_get("/v1/assignments/{namespace}/{agent}", operator.assignments)
    app.router.add_post("/v1/telemetry", operator.telemetry)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    operator.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    return runner


@pytest.fixture
async def operator() -> AsyncIterator[Operator]:
    op = Operator()
    runner = await serve(op)
    yield op
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def live_link(url: str, session: aiohttp.ClientSession, tokens: TokenSource, tls: OperatorTLS | None = None) -> OperatorLink:
    settings = SidecarSettings(namespace="ns", agent="chat", operator_url=url, sidecar_id="pod-1", max_poll_wait_s=0.2)
    return OperatorLink(settings, session, tokens=tokens, tls=tls or OperatorTLS(None), table=FaultTable(),
                        recorder=Recorder(now=asyncio.get_running_loop().time()), instance=Instance("pod-1"),
                        prober=_Prober(), restart=None)  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def polling(lk: OperatorLink, body: Callable[[], Awaitable[None]]) -> None:
    """Run `body` while the link polls for assignments."""
    task = asyncio.create_task(lk.poll_assignments())
    try:
        await body()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def rotate(file: Path, token: str) -> None:
    staged = file.with_name(file.name + ".new")
    staged.write_text(token)
    staged.replace(file)  # a new inode in the old place, as the kubelet's rename


async def test_every_request_carries_the_token_current_at_its_time(
    operator: Operator, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    file = tmp_path / "token"
    rotate(file, "token-one")
    lk = live_link(operator.url, session, FileToken(str(file)))
    await lk.report_once()

    async def rotate_while_polling() -> None:
        await until(lambda: len(operator.seen) >= 3, "polls with the first token")
        rotate(file, "token-two")
        await until(lambda: operator.seen[-1][1] == "Bearer token-two", "a poll with the rotated token")

    await polling(lk, rotate_while_polling)
    await lk.report_once()
    assert operator.seen[0] == ("/v1/telemetry", "Bearer token-one")
    assert operator.seen[-1] == ("/v1/telemetry", "Bearer token-two")
    tokens = [auth for _, auth in operator.seen]
    # Once rotated, never the old one again.
    assert tokens == sorted(tokens) and set(tokens) == {"Bearer token-one", "Bearer token-two"}
    assert lk.reports["accepted"] == 2 and lk.last_problem is None


async def test_a_missing_token_is_the_links_problem_and_sends_nothing(
    operator: Operator, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    file = tmp_path / "token"
    lk = live_link(operator.url, session, FileToken(str(file)))
    lk.recorder.record(200, 0.01, None)
    await lk.report_once()
    assert lk.reports == {"accepted": 0, "rejected": 0, "failed": 1, "dropped": 0}
    assert lk._carried is not None and lk._carried.requests == 1  # kept for when the token is there
    assert lk.last_problem == f"cannot read the identity token {file}: No such file or directory"
    assert operator.seen == []
    rotate(file, "token-one")  # the kubelet wrote it: the poll gets through and the problem clears

    async def reaches() -> None:
        await until(lambda: operator.seen != [] and lk.last_problem is None, "a poll once the token exists", timeout=15)

    await polling(lk, reaches)
    await lk.report_once()
    assert lk.reports["accepted"] == 1 and lk._carried is None


@pytest.mark.parametrize(
    ("status", "error", "said"),
    [
        (401, "the token's audience is not agentops", "401: it was not accepted"),
        (403, "ServiceAccount ns/other is not one of the Agent's spec.identity.serviceAccounts (chat)",
         "403: it is not allowed to speak for this agent"),
    ],
)
async def test_a_refused_identity_is_the_links_problem_quoting_the_operator(
    operator: Operator, session: aiohttp.ClientSession, status: int, error: str, said: str
) -> None:
    operator.refusal = (status, error)
    lk = live_link(operator.url, session, StaticToken("t" * 32))
    lk.recorder.record(200, 0.01, None)
    await lk.report_once()
    expected = f"the operator refused this sidecar's identity (--identity kubernetes; {said}): {error}"
    assert lk.last_problem == expected
    # The report itself was fine: kept for when the token or the Agent changes.
    assert lk.reports["failed"] == 1 and lk.reports["rejected"] == 0 and lk._carried is not None
    lk.last_problem = None

    async def refused() -> None:
        await until(lambda: lk.last_problem == expected, "the poll's refusal")

    await polling(lk, refused)


def test_a_403_waits_the_backoff_cap_at_once_other_failures_climb_to_it() -> None:
    def high() -> float:
        return 0.999999

    assert retry_delay(403, 1, None, rand=high) == pytest.approx(BACKOFF.cap_s, rel=1e-3)
    assert retry_delay(403, 1, None, rand=lambda: 0.0) == BACKOFF.cap_s * BACKOFF.jitter[0]
    assert retry_delay(401, 1, None, rand=high) == pytest.approx(BACKOFF.first_s, rel=1e-3)
    assert retry_delay(503, 1, "1") == 1.0  # the operator's Retry-After, while it cannot check tokens
    assert retry_delay(500, 30, None, rand=high) == pytest.approx(BACKOFF.cap_s, rel=1e-3)


# ---------------------------------------------------------------- the operator's certificate


async def test_the_operator_certificate_is_verified_against_the_ca_file_reread_when_it_changes(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    write_pki(tmp_path / "operator")  # a CA and a serving certificate for 127.0.0.1 it signed
    write_pki(tmp_path / "other")  # a CA that did not sign it
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(tmp_path / "operator" / "apiserver.crt", tmp_path / "operator" / "apiserver.key")
    op = Operator()
    runner = await serve(op, served)
    try:
        mounted = tmp_path / "ca.crt"
        mounted.write_bytes((tmp_path / "other" / "ca.crt").read_bytes())
        tls = OperatorTLS(str(mounted))
        lk = live_link(op.url, session, StaticToken("t" * 32), tls)

        async def refuses_then_trusts() -> None:
            await until(lambda: lk.last_problem is not None, "a refused certificate")
            assert lk.last_problem is not None
            assert lk.last_problem.startswith(f"cannot reach the operator at {op.url}: ClientConnectorCertificateError")
            assert lk.last_problem.endswith(f"(its certificate was checked against the CA file {mounted})")
            assert op.seen == []  # no token was sent to a server that could not prove who it is
            # The CA bundle is updated in place (a ConfigMap): trusted without a restart.
            staged = tmp_path / "ca.crt.new"
            staged.write_bytes((tmp_path / "operator" / "ca.crt").read_bytes())
            staged.replace(mounted)
            await until(lambda: op.seen != [] and lk.last_problem is None, "a poll over verified https", timeout=15)

        await polling(lk, refuses_then_trusts)
        await lk.report_once()
        assert lk.reports["accepted"] == 1 and op.seen[-1] == ("/v1/telemetry", "Bearer " + "t" * 32)
        assert tls.loads == 2
    finally:
        await runner.cleanup()
