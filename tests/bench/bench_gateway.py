"""Model gateway benchmark: the latency it adds, and its memory with many streams.

Run:  .venv/bin/python tests/bench/bench_gateway.py [--requests N] [--streams 100] [--rounds 5] [--json PATH]

A benchmark, not a test: it asserts nothing. Targets from the issue are shown with
"met"/"missed". Everything shares this machine's cores (stand-in, sidecar, load
generator); read the numbers with the load average printed beside them.

What runs: the provider stand-ins (tests/integration/model_standins.py) in a child
process, and one real sidecar (`agentops sidecar`) whose model gateway forwards to them.
No operator: the sidecar's operator link retries in the background, which costs it a
few wake-ups a second, as it would during an operator outage. The load generator is
this process (aiohttp, keep-alive connections).

What is measured, and how:

1. Non-streaming overhead: OpenAI chat completions, one at a time, alternating direct
   (to the stand-in) and through the gateway in segments of 50 (D G G D D G ...), so
   drift of the machine hits both alike. Latency is request sent → last byte read.
   Added = gateway quantile − direct quantile (p50, p99).
2. Time to first chunk: streamed OpenAI chat completions, the same way; time from the
   request to the first body byte (then the stream is read to its end).
3. Memory: the sidecar's VmRSS idle, with `--streams` concurrent Anthropic streams in
   flight (each ~1 s: 20 events, 50 ms apart), after they finish, and after `--rounds`
   more such batches; growth per finished stream = (RSS after the rounds − RSS after
   the first batch) / streams finished in between.

Prints a table and writes JSON (default artifacts/bench_gateway.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench_common import REPO, Child, Results, Target, free_port, machine, memory_kib, percentile, write_json

from agentops.processes import set_pdeathsig

KEY = "sk-bench-" + "0" * 24
SEGMENT = 50
STANDIN = """
import sys
sys.path.insert(0, {path!r})
from model_standins import Answer, StandIns
with StandIns() as s:
    s.answer("anthropic", Answer(chunks=20, pause=0.05))
    print("PORT", s.port, flush=True)
    sys.stdin.read()
"""
CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}).encode()
CHAT_STREAM = json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hello"}]}).encode()
MESSAGES_STREAM = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
                              "messages": [{"role": "user", "content": "hello"}]}).encode()
OPENAI_HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
ANTHROPIC_HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "Content-Type": "application/json"}


async def wait_until(probe: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = await probe()
            if found:
                return found
        except (aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


async def one(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> tuple[float, float]:
    """(seconds to the first body byte, seconds to the last)."""
    started = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as response:
        first = await response.content.readany()
        first_at = time.perf_counter()
        while first:
            first = await response.content.readany()
        assert response.status == 200, response.status
    return first_at - started, time.perf_counter() - started


async def interleaved(session: aiohttp.ClientSession, direct: str, gateway: str, body: bytes, n: int,
                      pick: int) -> tuple[list[float], list[float]]:
    times: dict[str, list[float]] = {"d": [], "g": []}
    order = "dggd"
    i = 0
    while len(times["g"]) < n:
        who = order[i % len(order)]
        i += 1
        for _ in range(SEGMENT):
            measured = await one(session, direct if who == "d" else gateway, body, OPENAI_HEADERS)
            times[who].append(measured[pick])
    return times["d"], times["g"]


async def streams_batch(session: aiohttp.ClientSession, url: str, n: int, sidecar_pid: int) -> int:
    """n concurrent streams; the sidecar's RSS (KiB) sampled while all are open."""
    opened = asyncio.Event()
    count = 0

    async def stream() -> None:
        nonlocal count
        async with session.post(url, data=MESSAGES_STREAM, headers=ANTHROPIC_HEADERS) as response:
            await response.content.readany()
            count += 1
            if count == n:
                opened.set()
            async for _ in response.content.iter_any():
                pass

    tasks = [asyncio.create_task(stream()) for _ in range(n)]
    await asyncio.wait_for(opened.wait(), 30)
    await asyncio.sleep(0.2)
    peak = memory_kib(sidecar_pid)["VmRSS"]
    await asyncio.gather(*tasks)
    return peak


async def run(args: argparse.Namespace, logs: Path, res: Results) -> None:
    # The stand-ins serve until their stdin closes.
    standin = Child("stand-ins", [sys.executable, "-u", "-c", STANDIN.format(path=str(REPO / "tests" / "integration"))],
                    dict(os.environ), logs / "standins.log")
    with standin.log_path.open("wb") as log:
        standin.proc = subprocess.Popen(standin.argv, env=standin.env, stdin=subprocess.PIPE, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=set_pdeathsig)
    sidecar: Child | None = None
    try:
        async def port() -> int | None:
            standin.check_alive()
            text = (logs / "standins.log").read_text()
            return int(text.split("PORT", 1)[1].split()[0]) if "PORT" in text else None

        standin_port = await wait_until(port, "the stand-ins")
        origin = f"http://127.0.0.1:{standin_port}"
        gw_port, admin_port = free_port(), free_port()
        sidecar = Child("sidecar", [
            sys.executable, "-m", "agentops", "sidecar", "--agent", "bench", "--operator-url", f"http://127.0.0.1:{free_port()}",
            "--upstream", origin, "--listen", f"127.0.0.1:{free_port()}", "--admin-listen", f"127.0.0.1:{admin_port}",
            "--model-gateway-listen", f"127.0.0.1:{gw_port}", "--model-upstream", f"openai={origin}",
            "--model-upstream", f"anthropic={origin}", "--log-format", "text", "--log-level", "ERROR",
        ], {**os.environ, "AGENTOPS_IDENTITY": "static", "AGENTOPS_STATIC_TOKEN": "t" * 32}, logs / "sidecar.log")
        sidecar.start()
        gateway = f"http://127.0.0.1:{gw_port}"
        connector = aiohttp.TCPConnector(limit=args.streams + 10)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def up() -> bool:
                assert sidecar is not None
                sidecar.check_alive()
                async with session.get(f"http://127.0.0.1:{admin_port}/healthz") as r:
                    return r.status == 200
            await wait_until(up, "the sidecar")
            # Warm both paths (connections, imports, caches).
            await interleaved(session, f"{origin}/v1/chat/completions", f"{gateway}/openai/v1/chat/completions", CHAT, 100, 1)
            res.add("rss_idle", memory_kib(sidecar.pid)["VmRSS"] / 1024, "MiB", "sidecar RSS, warmed up, no calls in flight")

            # (key, what, request body, which time `one` measures: 1 = whole call, 0 = first chunk)
            for key, what, body, pick in (("plain", "non-streaming", CHAT, 1), ("ttfc", "time to first chunk", CHAT_STREAM, 0)):
                direct, through = await interleaved(session, f"{origin}/v1/chat/completions",
                                                    f"{gateway}/openai/v1/chat/completions", body, args.requests, pick)
                for q, name in ((0.5, "p50"), (0.99, "p99")):
                    d, g = percentile(direct, q) * 1000, percentile(through, q) * 1000
                    res.add(f"{key}_direct_{name}", d, "ms", f"{what} {name}, direct")
                    res.add(f"{key}_gateway_{name}", g, "ms", f"{what} {name}, through the gateway")
                    res.add(f"{key}_added_{name}", g - d, "ms", f"{what} {name} added by the gateway",
                            Target(1.0) if name == "p50" else None)

            url = f"{gateway}/anthropic/v1/messages"
            peak = await streams_batch(session, url, args.streams, sidecar.pid)
            res.add("rss_streams", peak / 1024, "MiB", f"sidecar RSS with {args.streams} streams in flight")
            await asyncio.sleep(0.5)
            after_first = memory_kib(sidecar.pid)["VmRSS"]
            res.add("rss_after_first", after_first / 1024, "MiB", f"sidecar RSS after those {args.streams} finished")
            half = args.rounds // 2
            midway = after_first
            for i in range(args.rounds):
                await streams_batch(session, url, args.streams, sidecar.pid)
                if i + 1 == half:
                    await asyncio.sleep(0.5)
                    midway = memory_kib(sidecar.pid)["VmRSS"]
            await asyncio.sleep(0.5)
            after = memory_kib(sidecar.pid)["VmRSS"]
            res.add("rss_after_rounds", after / 1024, "MiB", f"sidecar RSS after {args.rounds} more batches")
            res.add("rss_growth_per_stream", (after - after_first) * 1024 / (args.rounds * args.streams), "bytes",
                    "RSS growth per finished stream", Target(1024))  # "none", within allocator noise
            # The second half alone: whether the growth levels off (allocator arenas and
            # pools filling once) or keeps going (something kept per stream).
            res.add("rss_growth_per_stream_late", (after - midway) * 1024 / ((args.rounds - half) * args.streams), "bytes",
                    f"RSS growth per finished stream, last {args.rounds - half} batches")
    finally:
        if sidecar is not None:
            sidecar.stop()
        if standin.proc is not None:
            assert standin.proc.stdin is not None
            standin.proc.stdin.close()
            standin.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="calls per path and phase (default 1000)")
    parser.add_argument("--streams", type=int, default=100, help="concurrent streams (default 100)")
    parser.add_argument("--rounds", type=int, default=5, help="further stream batches for the growth figure (default 5)")
    parser.add_argument("--json", type=Path, default=REPO / "artifacts" / "bench_gateway.json")
    args = parser.parse_args()
    res = Results()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        print(f"machine: {machine()}", flush=True)
        asyncio.run(run(args, Path(tmp), res))
    print()
    print(res.table())
    write_json(args.json, vars(args), res, machine=machine())
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
