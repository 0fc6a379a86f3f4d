"""The sidecar's two conversations with the operator.

* **Assignments** by long poll: `GET /v1/assignments/{ns}/{agent}?version=V&wait=W`
  answers as soon as the set differs from version V, so a new fault reaches the proxy
  within one round trip of the operator publishing it — no polling interval. W is at
  most half the lease, so a healthy link renews the lease at least twice per period.
* **Telemetry** every report interval: the current window is cut and posted. A window
  that cannot be delivered is folded into the next, up to `MAX_CARRY_S` of traffic.
  A change in health does not wait for the interval: every failed probe, and the
  first passing one after a failure, sends the window at once (at most one report
  per `MIN_REPORT_GAP_S`), so the operator can judge within a probe or two.
* **Instance boundaries**: when the agent is replaced (a restart), what happens until
  the new instance first passes its probe — the restart gap, refused connections
  included — is reported under the *old* instance id; the new instance is judged
  only on its own traffic. Otherwise a healed agent would carry its predecessor's
  errors for a whole health window.

Any answer from the operator renews the lease; failures back off exponentially with
jitter (`BACKOFF`), so a restarting operator is not hammered by its sidecars.

Every request carries the sidecar's current identity token (`TokenSource`, asked per
request, so a rotated token is sent as soon as it is on disk) and is verified against
the operator's CA (`OperatorTLS`, likewise re-read when its file changes). A token
that cannot be had, and a 401 or 403 from the operator, become the link's
`last_problem`, quoting the operator's reason, and are retried with the same backoff;
a 403 (this identity may not speak for this Agent) changes only when someone edits the
Agent or the pod, so it is retried at the backoff's cap rather than climbing to it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
from typing import Any, Awaitable, Callable

import aiohttp

from agentops.backoff import Backoff
from agentops_sidecar.faults import FaultTable
from agentops_sidecar.identity import TokenSource, TokenUnavailable
from agentops_sidecar.instance import Instance
from agentops_sidecar.operator_tls import OperatorTLS
from agentops_sidecar.prober import Prober
from agentops_sidecar.proxy import Recorder
from agentops_sidecar.settings import SidecarSettings
from agentops_sidecar.window import Window

log = logging.getLogger(__name__)

# Between failed polls of the operator: short, since the lease runs down meanwhile (and
# when it runs out every fault is dropped); at most 5 s, so a restarted operator is
# reached again within seconds. Jitter (down to half the delay) keeps an operator's
# many sidecars from returning to it in lockstep.
BACKOFF = Backoff(first_s=0.2, cap_s=5.0, jitter=(0.5, 1.0))
# An undelivered window older than this is dropped rather than carried: after a long
# outage the operator wants the recent picture, and memory stays bounded.
MAX_CARRY_S = 60.0
# Early reports (health changes) are spaced at least this far apart: a flapping probe
# must not turn into a report storm.
MIN_REPORT_GAP_S = 0.2
# A failure count that puts BACKOFF at its cap: what a 403 waits.
_AT_CAP = 1 + math.ceil(math.log2(BACKOFF.cap_s / BACKOFF.first_s))
_UNSET: Any = object()


class OperatorLink:
    def __init__(
        self,
        settings: SidecarSettings,
        session: aiohttp.ClientSession,
        *,
        tokens: TokenSource,
        tls: OperatorTLS,
        table: FaultTable,
        recorder: Recorder,
        instance: Instance,
        prober: Prober,
        restart: Callable[[str], Awaitable[None]] | None,
    ) -> None:
        self.settings, self.session = settings, session
        self.tokens, self.tls = tokens, tls
        self.table, self.recorder, self.instance, self.prober = table, recorder, instance, prober
        self._restart = restart
        self._assignments_url = f"{settings.operator_url}/v1/assignments/{settings.namespace}/{settings.agent}"
        self._telemetry_url = f"{settings.operator_url}/v1/telemetry"
        self._restart_seen: Any = _UNSET
        self._carried: Window | None = None
        self._report_now = asyncio.Event()
        self._retired_window: tuple[Window, str] | None = None
        # The replaced instance's id, reported until the new instance passes a probe.
        self._retiring: str | None = None
        self.reports = {"accepted": 0, "rejected": 0, "failed": 0, "dropped": 0}
        self.assignment_updates = 0
        self.restart_requests = 0
        self.last_problem: str | None = None

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    # ---------------------------------------------------------------- assignments

    async def poll_assignments(self) -> None:
        version: int | None = None
        failures = 0
        while True:
            wait = min(self.settings.max_poll_wait_s, (self.table.lease_s or 30.0) / 2)
            params = {"wait": f"{wait:g}"} if version is None else {"wait": f"{wait:g}", "version": str(version)}
            try:
                headers = await self._headers()
                async with self.session.get(self._assignments_url, params=params, headers=headers, ssl=self.tls.context(),
                                            timeout=aiohttp.ClientTimeout(total=wait + 10)) as response:
                    body = await response.json(content_type=None) if response.content_type == "application/json" else {}
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
            except TokenUnavailable as exc:
                failures += 1
                self._problem(str(exc))
                await asyncio.sleep(BACKOFF.delay(failures))
                continue
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                failures += 1
                self._problem(self._unreachable(exc))
                await asyncio.sleep(BACKOFF.delay(failures))
                continue
            now = self._now()
            if status == 200 and isinstance(body, dict):
                failures = 0
                self._problem(None)
                if body.get("version") != version:
                    version = body.get("version")
                    self.assignment_updates += 1
                    for problem in self.table.replace(body, now):
                        log.warning("skipping a fault: %s", problem)
                    log.info("assignment v%s: %d fault(s), %d enforced", version, len(self.table.assigned), len(self.table.effective),
                             extra={"version": version, "faults": [f.name for f in self.table.effective]})
                    await self._maybe_restart(body.get("restart"))
                else:
                    self.table.contact(now)
                continue
            failures += 1
            message = body.get("error") if isinstance(body, dict) else None
            if status == 404:
                # The operator is there and says this agent has no faults (no Agent
                # resource, or not watched): level-based, so enforce nothing.
                self.table.clear(now)
                version = None
                self._problem(f"operator: {message or 'agent not found'}")
            elif status in (401, 403):
                self._problem(self._refused(status, message))
            else:
                self._problem(f"operator answered {status}: {message or ''}")
            await asyncio.sleep(retry_delay(status, failures, retry_after))

    async def _maybe_restart(self, token: Any) -> None:
        if self._restart_seen is _UNSET:
            self._restart_seen = token  # adopted: this sidecar (and its agent) just started
            return
        if token == self._restart_seen:
            return
        self._restart_seen = token
        if token is None:
            return
        self.restart_requests += 1
        if self._restart is None:
            log.warning("the operator asked for a restart (%s), but this sidecar does not supervise the agent", token)
            return
        await self._restart(f"requested by the operator ({token})")

    # ---------------------------------------------------------------- telemetry

    def request_report(self) -> None:
        self._report_now.set()

    def probe_result(self, ok: bool, before: bool | None) -> None:
        if ok and self._retiring is not None:
            # The new instance is up: the window so far belongs to the old one.
            self._retired_window = (self.cut_window(self._now()), self._retiring)
            self._retiring = None
            self.request_report()
        elif not ok or before is False:
            self.request_report()

    def instance_replaced(self, old_id: str, _new_id: str) -> None:
        if self._retiring is None:
            self._retiring = old_id

    async def push_telemetry(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self.settings.report_interval_s
        while True:
            try:
                await asyncio.wait_for(self._report_now.wait(), max(0.0, next_at - loop.time()))
            except asyncio.TimeoutError:
                pass
            self._report_now.clear()
            next_at = loop.time() + self.settings.report_interval_s
            await self.report_once()
            await asyncio.sleep(MIN_REPORT_GAP_S)

    def cut_window(self, now: float) -> Window:
        window = self.recorder.window
        fresh = Window(started=now)
        fresh.applied = {f.uid for f in self.table.effective}
        self.recorder.window = fresh
        if self._carried is not None:
            window.merge_older(self._carried)
            self._carried = None
        return window

    async def report_once(self) -> None:
        retired, self._retired_window = self._retired_window, None
        if retired is not None:
            await self._post(retired[0], retired[1], self._now())
        now = self._now()
        await self._post(self.cut_window(now), self._retiring or self.instance.id, now)

    async def _post(self, window: Window, instance_id: str, now: float) -> None:
        report = window.report(
            namespace=self.settings.namespace,
            agent=self.settings.agent,
            sidecar=self.settings.sidecar_id,
            instance={"id": instance_id, "restarts": self.instance.restarts},
            now=now,
            consecutive_failures=self.prober.consecutive_failures,
            last_error=self.prober.last_error,
            starting=self.prober.in_startup(now),
        )
        try:
            headers = await self._headers()
            async with self.session.post(self._telemetry_url, json=report, headers=headers, ssl=self.tls.context(),
                                         timeout=aiohttp.ClientTimeout(total=10)) as response:
                status = response.status
                text = await response.text()
        except TokenUnavailable as exc:
            self.reports["failed"] += 1
            self._problem(str(exc))
            self._carry(window, now, str(exc))
            return
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.reports["failed"] += 1
            self._carry(window, now, f"{exc.__class__.__name__} {exc}")
            return
        if status == 202:
            self.reports["accepted"] += 1
            self.table.contact(self._now())
        elif status in (401, 403):
            # Who sent it was refused, not the report: it is kept for when the token
            # (rotated) or the Agent (its allowed identities) changes.
            self.reports["failed"] += 1
            self._problem(self._refused(status, _error_of(text)))
            self._carry(window, now, f"{status} {text[:200]}")
        elif status == 404 or status >= 500:
            # 404: the operator has not seen this Agent yet (or it is not created yet).
            self.reports["failed"] += 1
            self._carry(window, now, f"{status} {text[:200]}")
        else:
            # 4xx: this report can never be accepted; sending it again would not help.
            self.reports["rejected"] += 1
            log.error("operator refused a telemetry report (%d): %s", status, text[:500])

    def _carry(self, window: Window, now: float, why: str) -> None:
        if now - window.started > MAX_CARRY_S:
            self.reports["dropped"] += 1
            log.warning("dropping %.0f s of undelivered telemetry (%s)", now - window.started, why)
            return
        log.debug("telemetry not delivered (%s); carrying it into the next window", why)
        self._carried = window

    async def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.tokens.token()}"}

    def _refused(self, status: int, message: str | None) -> str:
        what = "is not allowed to speak for this agent" if status == 403 else "was not accepted"
        return (f"the operator refused this sidecar's identity (--identity {self.settings.identity}; {status}: it {what}): "
                f"{message or 'no reason given'}")

    def _unreachable(self, exc: BaseException) -> str:
        problem = f"cannot reach the operator at {self.settings.operator_url}: {exc.__class__.__name__} {exc}"
        if isinstance(exc, aiohttp.ClientSSLError):
            # Say which trust was used, and why the CA file did not load if it did not.
            trust = f"the CA file {self.tls.ca_file}" if self.tls.ca_file else "the system trust store"
            problem += f" (its certificate was checked against {trust}{'; ' + self.tls.problem if self.tls.problem else ''})"
        return problem

    def _problem(self, problem: str | None) -> None:
        if problem is not None and problem != self.last_problem:
            log.warning("%s", problem)
        elif problem is None and self.last_problem is not None:
            log.info("operator reachable again")
        self.last_problem = problem


def retry_delay(status: int, failures: int, retry_after: str | None, rand: Callable[[], float] = random.random) -> float:
    """Seconds before polling again after the `failures`-th refused or failed answer in a row with HTTP `status`.

    The operator's Retry-After when it gives one (a 503 while it cannot check tokens);
    for a 403, the backoff's cap at once: only an edit of the Agent or the pod changes it.
    """
    if retry_after and retry_after.isdigit():
        return float(retry_after)
    return BACKOFF.delay(max(failures, _AT_CAP) if status == 403 else failures, rand)


def _error_of(text: str) -> str | None:
    """The operator's `{"error": ...}` reason from a response body, else the body's start."""
    try:
        body = json.loads(text)
    except ValueError:
        return text[:200] or None
    return str(body["error"]) if isinstance(body, dict) and "error" in body else text[:200]
