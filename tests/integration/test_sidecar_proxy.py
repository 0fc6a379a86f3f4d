"""The sidecar's proxy on the wire: a real sidecar process in front of a stand-in agent.

No operator here (its URL refuses connections): proxying must not depend on it.
"""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from operator_harness import free_port, wait_for
from sidecar_harness import SidecarProcess
from upstream_agent import UpstreamAgent


@pytest.fixture
def upstream() -> Iterator[UpstreamAgent]:
    with UpstreamAgent(free_port()) as agent:
        yield agent


@pytest.fixture
def sidecar(upstream: UpstreamAgent, tmp_path: Path) -> Iterator[SidecarProcess]:
    sc = SidecarProcess(agent="chat", namespace="default", operator_url=f"http://127.0.0.1:{free_port()}",
                        token="t" * 32, upstream_port=upstream.port, log_path=tmp_path / "sidecar.log",
                        extra_args=["--upstream-timeout", "1s"])
    sc.start()
    try:
        yield sc
    finally:
        sc.stop()


def test_bodies_and_methods_pass_through(sidecar: SidecarProcess) -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB: larger than the read-whole limit, so it streams
    r = requests.post(f"{sidecar.url}/echo", data=payload, timeout=10)
    assert r.status_code == 200 and r.content == payload
    assert r.headers["X-Body-Length"] == str(len(payload))
    r = requests.put(f"{sidecar.url}/echo?x=1&y=%2F", data=b"small", timeout=5)
    assert (r.status_code, r.content, r.headers["X-Method"]) == (200, b"small", "PUT")
    # A chunked upload (no Content-Length) arrives whole.
    r = requests.post(f"{sidecar.url}/echo", data=iter([b"a" * 1000, b"b" * 1000]), timeout=5)
    assert r.content == b"a" * 1000 + b"b" * 1000
    r = requests.get(f"{sidecar.url}/big?n=3000000", timeout=10)
    assert len(r.content) == 3_000_000
    r = requests.head(f"{sidecar.url}/big?n=1000", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Length"] == "1000" and r.content == b""
    assert requests.get(f"{sidecar.url}/no-such-path", timeout=5).status_code == 404


def test_headers_pass_through_minus_hop_by_hop(sidecar: SidecarProcess) -> None:
    r = requests.get(f"{sidecar.url}/headers", headers={
        "X-Custom": "v1", "Authorization": "Bearer abc", "Connection": "keep-alive, X-Drop-Me",
        "X-Drop-Me": "secret", "Proxy-Authorization": "Basic zzz",
    }, timeout=5)
    seen = {k.lower(): v for k, v in r.json().items()}
    assert seen["x-custom"] == "v1" and seen["authorization"] == "Bearer abc"
    assert "x-drop-me" not in seen and "proxy-authorization" not in seen
    assert seen["x-forwarded-for"] == "127.0.0.1" and seen["x-forwarded-proto"] == "http"
    r = requests.get(f"{sidecar.url}/cookies", timeout=5)
    assert r.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    # Content-Encoding passes through untouched: the proxy neither decodes nor re-encodes.
    r = requests.get(f"{sidecar.url}/gzip", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=5)
    raw = r.raw.read(decode_content=False)
    assert r.headers["Content-Encoding"] == "gzip" and gzip.decompress(raw) == b"hello " * 100


def test_responses_stream_chunk_by_chunk(sidecar: SidecarProcess) -> None:
    started = time.monotonic()
    with requests.get(f"{sidecar.url}/stream", stream=True, timeout=10) as r:
        chunks = r.iter_lines()
        assert next(chunks) == b"chunk-0"
        first = time.monotonic() - started
        rest = list(chunks)
    total = time.monotonic() - started
    assert rest == [b"chunk-1", b"chunk-2", b"chunk-3", b"chunk-4"]
    # The upstream takes 1.5 s in all; the first chunk must not wait for the last.
    assert total >= 1.2 and first < total - 0.9, (first, total)


def test_keeps_connections_alive(sidecar: SidecarProcess) -> None:
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=5) as s:
        for _ in range(3):
            s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
            data = b""
            while not data.endswith(b"hi"):
                data += s.recv(65536)
            assert data.startswith(b"HTTP/1.1 200")


def test_agent_errors_become_gateway_errors_and_are_counted(sidecar: SidecarProcess, upstream: UpstreamAgent) -> None:
    r = requests.get(f"{sidecar.url}/slow?s=3", timeout=10)  # the sidecar's upstream timeout is 1 s
    assert r.status_code == 504 and r.json()["source"] == "agentops-sidecar"
    upstream.stop()  # the agent goes away
    r = requests.get(f"{sidecar.url}/echo", timeout=10)
    assert r.status_code == 502 and "cannot reach the agent" in r.json()["error"]
    metrics = sidecar.metrics_text()
    assert 'agentops_sidecar_upstream_errors_total{kind="timeout"} 1.0' in metrics
    assert 'agentops_sidecar_upstream_errors_total{kind="connection"} 1.0' in metrics
    # The prober notices too, and readiness follows.
    wait_for(lambda: requests.get(f"{sidecar.admin_url}/readyz", timeout=2).status_code == 503, timeout=10, what="readyz 503")
    state = sidecar.state()
    assert state["probe"]["ok"] is False and state["probe"]["consecutiveFailures"] >= 1


def test_unreachable_operator_is_reported_not_fatal(sidecar: SidecarProcess) -> None:
    state = wait_for(lambda: (s := sidecar.state())["operatorProblem"] and s, timeout=10, what="operator problem in state")
    assert "cannot reach the operator" in state["operatorProblem"]
    assert state["enforced"] == [] and state["leaseRemainingSeconds"] is None
    assert requests.get(f"{sidecar.url}/echo", timeout=5).status_code == 200


@pytest.mark.parametrize("args, message", [
    ([], "--agent"),
    (["--agent", "a", "--operator-url", "ftp://x"], "--operator-url"),
    (["--agent", "a", "--operator-url", "http://x", "--listen", "nope"], "--listen"),
    (["--agent", "a", "--operator-url", "http://x", "--probe-interval", "often"], "--probe-interval"),
    (["--agent", "a", "--operator-url", "http://x", "--"], "nothing after '--'"),
])
def test_bad_settings_are_named(args: list[str], message: str) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "agentops", "sidecar", *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"}, timeout=30)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
