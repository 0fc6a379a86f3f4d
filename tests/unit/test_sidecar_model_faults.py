"""Model* faults: parsing spec.model, matching a call, attempts of one call, percentages."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from agentops_sidecar.faults import BadAssignment, Fault, FaultTable, parse_fault
from agentops_sidecar.model_faults import AttemptTracker, BadModelBlock, call_key, parse_model_block, pick

SERVER = datetime(2026, 1, 1, tzinfo=timezone.utc)


def model_fault(name: str, kind: str = "ModelRateLimit", percentage: float = 100, **block: Any) -> dict[str, Any]:
    return {"uid": f"u-{name}", "name": name, "type": kind, "expiresAt": "2026-01-01T00:01:00Z", "percentage": percentage,
            "model": block}


def parsed(name: str, kind: str = "ModelRateLimit", percentage: float = 100, **block: Any) -> Fault:
    return parse_fault(model_fault(name, kind, percentage, **block), server_time=SERVER, now=0.0)


def test_model_block_defaults_and_durations() -> None:
    rate = parse_model_block("ModelRateLimit", {}, "f")
    assert rate.retry_after_s == 1.0 and rate.after_chunks == 1 and rate.first_attempts is None and rate.delay_s is None
    assert parse_model_block("ModelOverloaded", {}, "f").retry_after_s is None  # none unless set
    spec = parse_model_block("ModelStreamStall", {"delay": "1m30s", "afterChunks": 0, "firstAttempts": 2,
                                                  "providers": ["OpenAI"], "operations": ["chat"], "models": ["m"]}, "f")
    assert (spec.delay_s, spec.after_chunks, spec.first_attempts) == (90.0, 0, 2)
    assert spec.matches("OpenAI", "m", "chat") and not spec.matches("Gemini", "m", "chat")
    assert not spec.matches("OpenAI", "other", "chat") and not spec.matches("OpenAI", "m", "embeddings")
    assert parse_model_block("ModelTimeout", {"providers": []}, "f").matches("Anthropic", "", "other")  # empty: any


@pytest.mark.parametrize(("kind", "block", "problem"), [
    ("ModelSlowStream", {}, "delay is required"),
    ("ModelSlowFirstToken", {"delay": "0s"}, "between 1ms and 1h"),
    ("ModelRateLimit", {"retryAfter": "soon"}, "retryAfter"),
    ("ModelRateLimit", {"firstAttempts": 0}, "firstAttempts"),
    ("ModelRateLimit", {"firstAttempts": True}, "firstAttempts"),
    ("ModelStreamCut", {"afterChunks": -1}, "afterChunks"),
    ("ModelRateLimit", {"providers": ["Azure"]}, "providers"),
    ("ModelRateLimit", {"operations": ["chat", "dance"]}, "operations"),
    ("ModelRateLimit", {"models": "gpt"}, "models"),
    ("ModelRateLimit", [], "must be an object"),
])
def test_model_block_refuses_what_it_cannot_enforce(kind: str, block: Any, problem: str) -> None:
    with pytest.raises(BadModelBlock, match=problem):
        parse_model_block(kind, block, "f")


def test_table_keeps_traffic_and_model_faults_apart() -> None:
    table = FaultTable()
    latency = {"uid": "u-l", "name": "slow", "type": "Latency", "expiresAt": "2026-01-01T00:01:00Z", "latency": {"delayMs": 5}}
    problems = table.replace({"version": 1, "serverTime": "2026-01-01T00:00:00Z", "leaseSeconds": 30,
                              "faults": [latency, model_fault("rl"), model_fault("bad", "ModelSlowStream")]}, now=0.0)
    assert len(problems) == 1 and "delay is required" in problems[0]
    assert [f.name for f in table.traffic] == ["slow"] and [f.name for f in table.model] == ["rl"]
    assert [f.name for f in table.effective] == ["slow", "rl"]
    table.refresh(61.0)  # both expire at their own expiresAt
    assert table.traffic == () and table.model == ()


def test_a_model_fault_without_its_block_is_skipped() -> None:
    item = model_fault("x")
    item["model"] = "everything"
    with pytest.raises(BadAssignment, match="model must be an object"):
        parse_fault(item, server_time=SERVER, now=0.0)


def test_attempts_repeat_within_the_window_and_a_success_starts_afresh() -> None:
    tracker = AttemptTracker(window_s=60.0)
    key = call_key("OpenAI", "POST", "/v1/chat/completions", b'{"model":"m"}')
    assert key != call_key("OpenAI", "POST", "/v1/chat/completions", b'{"model":"n"}')
    numbers = []
    for t in (0.0, 1.0, 2.0):
        numbers.append(tracker.attempt(key, None, t).number)
        tracker.finished(key, False, t + 0.5)
    assert numbers == [1, 2, 3]
    assert tracker.attempt(key, None, 63.0).number == 1  # more than a minute after the last failure: a new call
    tracker.finished(key, True, 63.5)
    assert tracker.attempt(key, None, 64.0).number == 1


def test_an_identical_request_in_flight_is_a_concurrent_call_not_a_retry() -> None:
    tracker = AttemptTracker()
    assert tracker.attempt(b"k", None, 0.0).number == 1
    assert tracker.attempt(b"k", None, 0.1).number == 1
    tracker.finished(b"k", False, 0.2)
    tracker.finished(b"k", False, 0.3)
    assert tracker.attempt(b"k", None, 0.4).number == 2  # after the failures: a retry


def test_the_sdk_retry_header_is_authoritative() -> None:
    tracker = AttemptTracker()
    key = b"k"
    assert tracker.attempt(key, "0", 0.0).number == 1
    assert tracker.attempt(key, "2", 1.0).number == 3 and tracker.attempt(key, "2", 1.0).is_retry
    assert tracker.attempt(key, "0", 2.0).number == 1  # the SDK says: a new call, though the same request
    tracker.finished(key, False, 2.5)
    assert tracker.attempt(key, "garbage", 3.0).number == 2  # unreadable: the tracker counts


def test_the_tracker_is_bounded() -> None:
    tracker = AttemptTracker(capacity=3)
    for i in range(10):
        tracker.attempt(bytes([i]), None, float(i))
        tracker.finished(bytes([i]), False, float(i))
    assert len(tracker) == 3
    assert tracker.attempt(bytes([0]), None, 10.0).number == 1  # forgotten: the oldest went first


def _pick(faults: tuple[Fault, ...], tracker: AttemptTracker, key: bytes, now: float, draws: list[float], *,
          streams: bool = False, operation: str = "chat", retry: str | None = None) -> str | None:
    attempt = tracker.attempt(key, retry, now)
    fault = pick(faults, provider="OpenAI", model="m", operation=operation, streams=streams, attempt=attempt,
                 tracker=tracker, rnd=lambda: draws.pop(0))
    tracker.finished(key, fault is None, now)  # struck: failed, so the next identical request is a retry
    return fault.name if fault else None


def test_first_attempts_hits_only_the_first_n() -> None:
    tracker = AttemptTracker()
    faults = (parsed("rl", firstAttempts=2),)
    assert [_pick(faults, tracker, b"k", float(t), []) for t in range(3)] == ["rl", "rl", None]
    assert _pick(faults, tracker, b"k", 4.0, []) == "rl"  # the call succeeded: the same request again is a new call


def test_with_first_attempts_a_call_draws_once() -> None:
    tracker = AttemptTracker()
    faults = (parsed("rl", percentage=50, firstAttempts=3),)
    draws = [0.2, 0.9]  # call k: hit; call j: spared; no further draws are made
    assert [_pick(faults, tracker, b"k", float(t), draws) for t in range(4)] == ["rl", "rl", "rl", None]
    assert draws == [0.9]  # one draw for all of call k's attempts
    assert _pick(faults, tracker, b"j", 0.0, draws) is None and draws == []


def test_without_first_attempts_each_attempt_draws() -> None:
    tracker = AttemptTracker()
    faults = (parsed("rl", percentage=50),)
    draws = [0.2, 0.9, 0.1]
    assert [_pick(faults, tracker, b"k", float(t), draws) for t in range(3)] == ["rl", None, "rl"]


def test_percentage_zero_hits_nothing() -> None:
    tracker = AttemptTracker()
    faults = (parsed("rl", percentage=0),)
    assert _pick(faults, tracker, b"k", 0.0, [0.0]) is None


def test_stream_faults_skip_calls_that_do_not_stream_and_the_next_fault_may_hit() -> None:
    tracker = AttemptTracker()
    faults = (parsed("cut", "ModelStreamCut"), parsed("slow", "ModelSlowFirstToken", delay="1s"))
    assert _pick(faults, tracker, b"a", 0.0, []) == "slow"
    assert _pick(faults, tracker, b"b", 0.0, [], streams=True) == "cut"


def test_a_safety_block_strikes_generations_only() -> None:
    tracker = AttemptTracker()
    faults = (parsed("safe", "ModelSafetyBlock"),)
    assert _pick(faults, tracker, b"a", 0.0, [], operation="embeddings") is None
    assert _pick(faults, tracker, b"b", 0.0, [], operation="chat") == "safe"
