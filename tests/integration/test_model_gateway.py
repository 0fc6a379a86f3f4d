"""The model gateway end to end: the real SDKs → the real sidecar → stand-ins of the providers.

The google-genai, openai and anthropic SDKs are configured only by their base-URL
variables (GOOGLE_GEMINI_BASE_URL, OPENAI_BASE_URL, ANTHROPIC_BASE_URL) pointing at the
sidecar's gateway, which forwards to `model_standins` (all three providers on their
real paths). Faults are Fault resources applied with kubectl to the real API server and
delivered by the real operator. One control plane namespace, operator, stand-in server
and sidecar serve the whole module; each test removes the faults it applied.

`EXPECTED` is the record of what each SDK makes of each Model* fault: its own error
class, or the stream behaviour named.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import requests
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from model_standins import PROVIDERS, Answer, StandIns
from operator_harness import Kube, OperatorProcess, agent_manifest, wait_for
from sidecar_harness import SidecarProcess

pytestmark = pytest.mark.timeout(120)

AGENT = "llm"
KEYS = {"openai": "sk-proj-" + uuid.uuid4().hex, "anthropic": "sk-ant-api03-" + uuid.uuid4().hex, "gemini": "AIza" + uuid.uuid4().hex}
OPENAI_MODEL, ANTHROPIC_MODEL, GEMINI_MODEL = "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.0-flash"
SDK_TIMEOUT_S = 1.5  # the SDKs' own timeout: how long a hang lasts before the agent gives up
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


# ---------------------------------------------------------------- module fixtures


@pytest.fixture(scope="module")
def ns(cluster: Any, crds: Any) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(scope="module")
def op(cluster: Any, ns: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(env=cluster.env(), namespace=ns, log_path=tmp_path_factory.mktemp("op") / "operator.log", cluster=cluster,
                           extra_args=["--status-heartbeat", "2s", "--lease", "10s"])
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def kubectl(cluster: Any, ns: str) -> Kube:
    return Kube(cluster, ns)


@pytest.fixture(scope="module")
def providers() -> Iterator[StandIns]:
    with StandIns(keys=KEYS) as standins:  # type: ignore[arg-type]
        yield standins


@pytest.fixture(scope="module")
def gateway(op: OperatorProcess, kubectl: Kube, providers: StandIns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProcess]:
    kubectl.apply(agent_manifest(AGENT))
    sidecar = SidecarProcess(
        agent=AGENT, namespace=op.namespace, operator_url=op.url, token=op.token, ca_file=op.ca_file, upstream_port=providers.port,
        log_path=tmp_path_factory.mktemp("sidecar") / "sidecar.log",
        extra_args=[arg for p in ("gemini", "openai", "anthropic") for arg in ("--model-upstream", f"{p}={providers.origin}")])
    sidecar.start()
    assert sidecar.state()["modelGateway"] == f"127.0.0.1:{sidecar.gateway_port}"
    origin = sidecar.gateway_url
    saved = {name: os.environ.get(name) for name in ("GOOGLE_GEMINI_BASE_URL", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL",
                                                     "GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    os.environ.update({"GOOGLE_GEMINI_BASE_URL": f"{origin}/gemini", "OPENAI_BASE_URL": f"{origin}/openai/v1",
                       "ANTHROPIC_BASE_URL": f"{origin}/anthropic", "GEMINI_API_KEY": KEYS["gemini"],
                       "OPENAI_API_KEY": KEYS["openai"], "ANTHROPIC_API_KEY": KEYS["anthropic"]})
    os.environ.pop("GOOGLE_API_KEY", None)  # google-genai prefers it over GEMINI_API_KEY
    try:
        yield sidecar
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        sidecar.stop()


@pytest.fixture
def fresh(providers: StandIns, kubectl: Kube, gateway: SidecarProcess) -> Iterator[StandIns]:
    """Stand-ins with default answers; every Fault this test applied is gone afterwards."""
    providers.reset()
    yield providers
    kubectl.cluster.kubectl("delete", "faults", "--all", "-n", kubectl.namespace, "--wait=false", check=False)
    wait_for(lambda: gateway.enforced() == [], timeout=10, what="no fault enforced")


# ---------------------------------------------------------------- helpers


def model_fault(kubectl: Kube, gateway: SidecarProcess, name: str, kind: str, *, duration: str = "60s",
                percentage: float | None = None, **model: Any) -> None:
    """Apply a Model* Fault (fault_manifest has no `model` block) and wait until the gateway enforces it."""
    spec: dict[str, Any] = {"target": {"agent": AGENT}, "type": kind, "duration": duration, "model": model}
    if percentage is not None:
        spec["match"] = {"percentage": percentage}
    kubectl.apply(json.dumps({"apiVersion": "agentops.dev/v1alpha1", "kind": "Fault", "metadata": {"name": name}, "spec": spec}))
    wait_for(lambda: name in gateway.enforced(), timeout=10, what=f"{name} enforced")


def remove(kubectl: Kube, gateway: SidecarProcess, name: str) -> None:
    kubectl.delete("fault", name)
    wait_for(lambda: name not in gateway.enforced(), timeout=10, what=f"{name} withdrawn")


def metric(gateway: SidecarProcess, name: str, **labels: str) -> float:
    total = 0.0
    for line in gateway.metrics_text().splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def openai_client(retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(max_retries=retries, timeout=SDK_TIMEOUT_S)


def anthropic_client(retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(max_retries=retries, timeout=SDK_TIMEOUT_S)


def gemini_client(retries: int = 0) -> genai.Client:
    retry = genai_types.HttpRetryOptions(attempts=retries + 1, initial_delay=0.01, max_delay=0.05) if retries else None
    return genai.Client(http_options=genai_types.HttpOptions(timeout=int(SDK_TIMEOUT_S * 1000), retry_options=retry))


def call(provider: str, stream: bool, retries: int = 0) -> str:
    """One model call through the SDK; what it made of the answer, as text."""
    if provider == "openai":
        oc = openai_client(retries)
        messages: Any = [{"role": "user", "content": "weather in Paris?"}]
        tools: Any = [TOOL]
        if stream:
            parts = []
            for chunk in oc.chat.completions.create(model=OPENAI_MODEL, messages=messages, tools=tools, stream=True):
                for choice in chunk.choices:
                    parts.append(choice.delta.content or "")
                    parts += [tc.function.arguments or "" for tc in choice.delta.tool_calls or () if tc.function]
                    if choice.finish_reason:
                        parts.append(f"<{choice.finish_reason}>")
            return "".join(parts)
        done = oc.chat.completions.create(model=OPENAI_MODEL, messages=messages, tools=tools)
        first = done.choices[0]
        args = [tc.function.arguments for tc in first.message.tool_calls or () if tc.type == "function"]
        return f"{first.message.content or ''}{''.join(args)}<{first.finish_reason}>"
    if provider == "anthropic":
        ac = anthropic_client(retries)
        kwargs: Any = {"model": ANTHROPIC_MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "weather in Paris?"}]}
        if stream:
            with ac.messages.stream(**kwargs) as events:
                message = events.get_final_message()
        else:
            message = ac.messages.create(**kwargs)
        blocks = [getattr(b, "text", None) or json.dumps(getattr(b, "input", None)) for b in message.content]
        return f"{''.join(blocks)}<{message.stop_reason}>"
    gc = gemini_client(retries)
    if stream:
        pieces = []
        for piece in gc.models.generate_content_stream(model=GEMINI_MODEL, contents="weather in Paris?"):
            pieces.append(_gemini_text(piece))
        return "".join(pieces)
    return _gemini_text(gc.models.generate_content(model=GEMINI_MODEL, contents="weather in Paris?"))


def _gemini_text(response: genai_types.GenerateContentResponse) -> str:
    if response.prompt_feedback is not None and response.prompt_feedback.block_reason is not None:
        return f"<blocked {response.prompt_feedback.block_reason.value}>"
    out = []
    for candidate in response.candidates or ():
        for part in (candidate.content.parts if candidate.content else None) or ():
            out.append(part.text or (json.dumps(part.function_call.args) if part.function_call else ""))
        if candidate.finish_reason:
            out.append(f"<{candidate.finish_reason.value}>")
    return "".join(out)


def outcome(provider: str, stream: bool, retries: int = 0) -> tuple[str, str]:
    """("ok", text) or (exception class as module.Name, message)."""
    try:
        return "ok", call(provider, stream, retries)
    except Exception as exc:  # noqa: BLE001 - the class is what is asserted
        return f"{type(exc).__module__.split('.')[0]}.{type(exc).__name__}", str(exc)


# What each SDK makes of each fault, (provider, stream) → expected class or behaviour.
# "ok:<x>" means the call returns and its text contains x. Filled in from runs of this
# test; the report lists it.
STREAMS = (False, True)
ALL = {(p, s) for p in ("openai", "anthropic", "gemini") for s in STREAMS}
def streamed_or_not(openai: str, anthropic: str, gemini: str) -> dict[tuple[str, bool], str]:
    """The same outcome for a provider's plain and streamed calls."""
    return {(provider, s): outcome for provider, outcome in (("openai", openai), ("anthropic", anthropic), ("gemini", gemini))
            for s in STREAMS}


EXPECTED: dict[str, dict[tuple[str, bool], str]] = {
    "ModelRateLimit": streamed_or_not("openai.RateLimitError", "anthropic.RateLimitError", "google.ClientError"),
    "ModelQuotaExhausted": streamed_or_not("openai.RateLimitError", "anthropic.RateLimitError", "google.ClientError"),
    "ModelOverloaded": streamed_or_not("openai.InternalServerError", "anthropic.OverloadedError", "google.ServerError"),
    "ModelServerError": streamed_or_not("openai.InternalServerError", "anthropic.InternalServerError", "google.ServerError"),
    "ModelContextLength": streamed_or_not("openai.BadRequestError", "anthropic.BadRequestError", "google.ClientError"),
    "ModelSafetyBlock": streamed_or_not("ok:<content_filter>", "ok:<refusal>", "ok:<blocked SAFETY>"),
    "ModelTimeout": streamed_or_not("openai.APITimeoutError", "anthropic.APITimeoutError", "httpx2.ReadTimeout"),
    "ModelTimeout+delay": streamed_or_not("openai.APIConnectionError", "anthropic.APIConnectionError", "httpx2.RemoteProtocolError"),
    "ModelSlowFirstToken": {key: "ok:<" for key in ALL},
    "ModelSlowStream": {key: "ok:<" for key in ALL},
    "ModelStreamStall": {("openai", False): "ok:<", ("anthropic", False): "ok:<", ("gemini", False): "ok:<",
                         ("openai", True): "openai.APITimeoutError", ("anthropic", True): "anthropic.APITimeoutError",
                         ("gemini", True): "httpx2.ReadTimeout"},
    "ModelStreamCut": {("openai", False): "ok:<", ("anthropic", False): "ok:<", ("gemini", False): "ok:<",
                       ("openai", True): "openai.APIConnectionError", ("anthropic", True): "anthropic.APIConnectionError",
                       ("gemini", True): "httpx2.RemoteProtocolError"},
    "ModelMalformedJson": streamed_or_not("json.JSONDecodeError", "json.JSONDecodeError", "json.JSONDecodeError")
    | {("gemini", True): "google.UnknownApiResponseError"},
    # OpenAI hands arguments over as text (now unparsable); Anthropic's SDK parses the
    # streamed partial_json itself and raises; objects (Anthropic plain, Gemini) arrive
    # parsed, with every value of the wrong type for the tool's schema.
    "ModelCorruptToolArguments": streamed_or_not("ok:{{", 'ok:{"city": 0}', 'ok:{"city": 0}')
    | {("anthropic", True): "builtins.ValueError"},
}
PARAMS: dict[str, dict[str, Any]] = {
    "ModelTimeout+delay": {"delay": "200ms"}, "ModelSlowFirstToken": {"delay": "300ms"},
    "ModelSlowStream": {"delay": "100ms"}, "ModelStreamCut": {"afterChunks": 2},
    "ModelRateLimit": {"retryAfter": "2s"},
}
# The error type the gateway's signals give each fault (every call in EXPECTED is struck).
SIGNAL = {"ModelRateLimit": "rate_limit", "ModelQuotaExhausted": "quota_exhausted", "ModelOverloaded": "overloaded",
          "ModelServerError": "server_error", "ModelContextLength": "context_length", "ModelSafetyBlock": "safety_block",
          "ModelTimeout": "timeout", "ModelMalformedJson": "malformed_response"}


def _matches(expected: str, got: tuple[str, str]) -> bool:
    if expected.startswith("ok:"):
        return got[0] == "ok" and expected[3:] in got[1]
    return got[0] == expected


# ---------------------------------------------------------------- tests


def test_no_fault_passes_bytes_and_keys_untouched(fresh: StandIns, gateway: SidecarProcess) -> None:
    for provider in ("openai", "anthropic", "gemini"):
        for stream in STREAMS:
            kind, text = outcome(provider, stream)
            assert (kind, "stand-in answers" in text) == ("ok", True), (provider, stream, kind, text)
    # The bytes the SDK received are the bytes the stand-in sent, streamed and not.
    oc, ac = openai_client(), anthropic_client()
    messages: Any = [{"role": "user", "content": "hi"}]
    received = [
        oc.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=messages).http_response.content,
        ac.messages.with_raw_response.create(model=ANTHROPIC_MODEL, max_tokens=8, messages=messages).http_response.content,
    ]
    with oc.chat.completions.with_streaming_response.create(model=OPENAI_MODEL, messages=messages, stream=True) as response:
        received.append(b"".join(response.iter_bytes()))
    with ac.messages.with_streaming_response.create(model=ANTHROPIC_MODEL, max_tokens=8, messages=messages, stream=True) as raw:
        received.append(b"".join(raw.iter_bytes()))
    # google-genai exposes no raw bytes: the same request it sends, by plain HTTP.
    url = os.environ["GOOGLE_GEMINI_BASE_URL"] + f"/v1/models/{GEMINI_MODEL}:streamGenerateContent?alt=sse"
    received.append(requests.post(url, json={"contents": [{"parts": [{"text": "hi"}]}]},
                                  headers={"x-goog-api-key": KEYS["gemini"]}, timeout=10).content)
    # Only provider answers: the sidecar's health probe of its upstream (these stand-ins) may land in between.
    sent = [s.body for s in fresh.sent() if s.provider is not None][-5:]
    assert received == sent
    # API keys arrive as the SDK sent them, and no sidecar log line shows one.
    for record in fresh.requests():
        if record.provider is None:
            continue  # the sidecar's health probe of its "agent" (the stand-in's port)
        header = {"openai": "authorization", "anthropic": "x-api-key", "gemini": "x-goog-api-key"}[record.provider]
        value = record.header(header) or record.header("authorization") or ""
        assert KEYS[record.provider] in value, (record.provider, record.headers)
        assert (record.header("accept-encoding") or "identity") == "identity"
    log = gateway.log_path.read_text()
    assert not any(key in log for key in KEYS.values())


def test_a_stream_passes_event_by_event_without_buffering(fresh: StandIns, gateway: SidecarProcess) -> None:
    """Each SSE event reaches the SDK before the provider has sent the next one."""
    fresh.answer("openai", chunks=4, pause=0.4)
    arrived: list[float] = []
    stream = openai.OpenAI(max_retries=0, timeout=10).chat.completions.create(
        model=OPENAI_MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrived.append(time.monotonic())
    writes = [at for at, data in fresh.sent("openai")[-1].writes if b'"content":"' in data and b'"role"' not in data]
    assert len(arrived) == len(writes) == 4
    for i, (sent_at, got_at) in enumerate(zip(writes, arrived)):
        assert got_at >= sent_at
        if i + 1 < len(writes):
            assert got_at < writes[i + 1], f"event {i} arrived only after the provider sent event {i + 1}: buffered"


def test_each_fault_type_is_what_each_sdk_sees_from_its_provider(fresh: StandIns, kubectl: Kube, gateway: SidecarProcess) -> None:
    seen: dict[str, dict[str, str]] = {}
    wrong: list[str] = []
    for label, expected in EXPECTED.items():
        kind = label.split("+")[0]
        name = re.sub(r"[^a-z0-9]+", "-", label.lower())
        for each in PROVIDERS:
            fresh.answer(each, Answer.tool("get_weather", {"city": "Paris"}) if kind == "ModelCorruptToolArguments" else Answer())
        before = {error: metric(gateway, "agentops_model_errors_total", error_type=error) for error in set(SIGNAL.values())}
        model_fault(kubectl, gateway, name, kind, **PARAMS.get(label, {}))
        for (provider, stream), want in sorted(expected.items()):
            got = outcome(provider, stream)
            seen.setdefault(label, {})[f"{provider}{'/stream' if stream else ''}"] = got[0] if got[0] != "ok" else "ok: " + got[1][:40]
            if not _matches(want, got):
                wrong.append(f"{label} {provider} stream={stream}: want {want}, got {got[0]}: {got[1][:200]}")
        if kind in SIGNAL and "+" not in label:  # every one of the six calls was struck and counted so
            error = SIGNAL[kind]
            wait_for(lambda: metric(gateway, "agentops_model_errors_total", error_type=error) >= before[error] + len(expected),
                     timeout=5, what=f"{error} counted for {label}")
        remove(kubectl, gateway, name)
    print(json.dumps(seen, indent=1))
    assert not wrong, "\n".join(wrong)
    assert metric(gateway, "agentops_model_streams_interrupted_total") >= 3  # the three cut streams


def test_sdk_retries_are_counted_and_first_attempts_lets_them_succeed(fresh: StandIns, kubectl: Kube, gateway: SidecarProcess) -> None:
    model_fault(kubectl, gateway, "first-two", "ModelRateLimit", firstAttempts=2, retryAfter="10ms")
    for provider, otel in zip(PROVIDERS, ("gcp.gemini", "openai", "anthropic")):
        retries = metric(gateway, "agentops_model_retries_total", gen_ai_provider_name=otel)
        kind, text = outcome(provider, False, retries=3)
        assert kind == "ok" and "stand-in answers" in text, (provider, kind, text)
        assert len(fresh.requests(provider)) == 1  # attempts 1 and 2 were answered by the gateway
        wait_for(lambda: metric(gateway, "agentops_model_retries_total", gen_ai_provider_name=otel) == retries + 2,
                 timeout=5, what=f"{provider}'s two retries counted")
    # Without retries, the first attempt fails with the provider's own error.
    assert outcome("openai", True)[0] == "openai.RateLimitError"


def test_percentage_zero_hits_nothing(fresh: StandIns, kubectl: Kube, gateway: SidecarProcess) -> None:
    injected = metric(gateway, "agentops_model_faults_injected_total")
    model_fault(kubectl, gateway, "never", "ModelServerError", percentage=0)
    for provider in ("openai", "anthropic", "gemini"):
        for stream in STREAMS:
            assert outcome(provider, stream)[0] == "ok"
    assert metric(gateway, "agentops_model_faults_injected_total") == injected


def test_matching_by_provider_and_model(fresh: StandIns, kubectl: Kube, gateway: SidecarProcess) -> None:
    model_fault(kubectl, gateway, "only-claude", "ModelOverloaded", providers=["Anthropic"], models=[ANTHROPIC_MODEL])
    assert outcome("anthropic", False)[0] == "anthropic.OverloadedError"
    assert outcome("openai", False)[0] == outcome("gemini", False)[0] == "ok"


def test_a_deleted_fault_releases_a_hang_in_progress(fresh: StandIns, kubectl: Kube, gateway: SidecarProcess) -> None:
    model_fault(kubectl, gateway, "hang", "ModelTimeout")
    injected = metric(gateway, "agentops_model_faults_injected_total", type="ModelTimeout")
    result: list[tuple[str, str]] = []
    client = openai.OpenAI(max_retries=0, timeout=30)  # far longer than the test waits
    thread = threading.Thread(target=lambda: result.append(_openai_text(client)), daemon=True)
    started = time.monotonic()
    thread.start()
    wait_for(lambda: metric(gateway, "agentops_model_faults_injected_total", type="ModelTimeout") > injected,
             timeout=5, what="the call held by the fault")
    assert not fresh.requests("openai")
    kubectl.delete("fault", "hang")
    thread.join(10)
    assert result and result[0][0] == "ok" and "stand-in answers" in result[0][1], result
    assert time.monotonic() - started < 8  # released at once, not at the SDK's 30 s


def _openai_text(client: openai.OpenAI) -> tuple[str, str]:
    try:
        done = client.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "hi"}])
        return "ok", done.choices[0].message.content or ""
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__, str(exc)


def test_a_fault_stops_at_its_expiry(fresh: StandIns, kubectl: Kube, gateway: SidecarProcess) -> None:
    model_fault(kubectl, gateway, "brief", "ModelServerError", duration="3s")
    applied = time.monotonic()
    assert outcome("gemini", False)[0] == "google.ServerError"
    wait_for(lambda: outcome("gemini", False)[0] == "ok", timeout=10, interval=0.2, what="the fault expired")
    assert time.monotonic() - applied < 6


def test_the_operator_accepts_reports_with_model_calls(fresh: StandIns, kubectl: Kube, gateway: SidecarProcess, op: OperatorProcess) -> None:
    for provider in ("openai", "anthropic", "gemini"):
        assert outcome(provider, True)[0] == "ok"
    accepted = gateway.state()["reports"]["accepted"]
    wait_for(lambda: gateway.state()["reports"]["accepted"] >= accepted + 2, timeout=10, what="two more reports accepted")
    state = gateway.state()
    assert state["reports"]["rejected"] == 0, gateway.log_path.read_text()[-2000:]
    assert "refused a telemetry report" not in gateway.log_path.read_text()
    # The operator turns them into the Agent's status.model (at its next heartbeat).
    wait_for(lambda: (kubectl.status("agent", AGENT).get("model") or {}).get("calls", 0) > 0, timeout=15, what="status.model")
    text = gateway.metrics_text()
    for family in ("gen_ai_client_operation_duration_seconds_bucket", "gen_ai_client_token_usage_bucket",
                   "gen_ai_client_operation_time_to_first_chunk_seconds_bucket", "agentops_model_calls_total"):
        assert family in text, family
    assert Path(gateway.log_path).exists()


def test_a_taken_gateway_port_stops_the_sidecar_with_a_clear_error(op: OperatorProcess, tmp_path: Path) -> None:
    """Running on without the gateway would send the agent's model calls to whatever holds the port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sidecar = SidecarProcess(agent=AGENT, namespace=op.namespace, operator_url=op.url, token=op.token, ca_file=op.ca_file,
                                 upstream_port=1, log_path=tmp_path / "sidecar.log", gateway_port=port)
        with pytest.raises(RuntimeError, match="the sidecar exited with 2"):
            sidecar.start()
        sidecar.stop()
    log = (tmp_path / "sidecar.log").read_text()
    assert f"--model-gateway-listen: cannot listen on 127.0.0.1:{port}" in log
