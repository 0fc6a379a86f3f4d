"""Which Model* faults strike one attempt of a model call.

A Model* fault's `spec.model` block (agentops.api_types.ModelFaultParams) says which
calls it hits — providers, models, operations, each "any" when absent or empty — and
its type's parameters. `parse_model_block` turns the block into a `ModelSpec` once,
when the assignment arrives; `pick` runs per attempt.

**Attempts.** SDKs retry a failed call with the same request. To let `firstAttempts: N`
hit attempts 1..N only, the gateway needs to know which attempt it sees:

* the SDK's own count when it sends one (`x-stainless-retry-count`, OpenAI and
  Anthropic SDKs): authoritative;
* otherwise a repeat of the same request (same provider, method, path and body, by
  hash; neither the body nor any key is kept) within `REPEAT_WINDOW_S` of a *failed*
  attempt is the next attempt of the same call. A success ends the call, so the next
  identical request starts afresh; an identical request while the first is still in
  flight is a concurrent call, not a retry (a client retries after a failure). Two deliberate identical calls less than a minute apart, the first of
  which failed, count as attempts of one call: the price of working without help from
  the client.

The tracker is a bounded LRU (`MAX_TRACKED`), so an agent sending endless distinct
requests costs a fixed amount of memory. Time is passed in.

**Percentage.** With `firstAttempts`, the fault's percentage is drawn once per call
(remembered with the call) so a hit call is hit on all its first N attempts and a
spared one is spared on all; without it, each attempt draws afresh.
"""

from __future__ import annotations

import hashlib
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from agentops.api_types import DEFAULT_AFTER_CHUNKS, DEFAULT_RETRY_AFTER, ModelOperation, ModelProvider
from agentops.durations import parse_duration
from agentops.errors import InvalidField

if TYPE_CHECKING:
    from agentops_sidecar.faults import Fault

# How long a failed attempt's request is remembered as "the same call": the SDKs' own
# backoff tops out well below this (openai/anthropic: 8 s; google-genai: 60 s with
# retry options), and a minute is what the CRD promises (spec.model.firstAttempts).
REPEAT_WINDOW_S = 60.0
# Calls remembered at once: an agent has far fewer calls failing at the same time.
MAX_TRACKED = 4096
RETRY_COUNT_HEADER = "x-stainless-retry-count"
# Types that only change a stream: a call that does not stream is answered in full.
STREAM_ONLY = frozenset({"ModelSlowStream", "ModelStreamStall", "ModelStreamCut"})
# A safety refusal is an answer to a generation; an embedding is not refused that way.
GENERATIVE: frozenset[ModelOperation] = frozenset({"chat", "generate_content", "text_completion"})
_PROVIDERS = frozenset({"Gemini", "OpenAI", "Anthropic"})
_OPERATIONS = frozenset({"chat", "generate_content", "text_completion", "embeddings", "count_tokens", "other"})


class BadModelBlock(ValueError):
    """spec.model cannot be enforced (the message names the field)."""


@dataclass(frozen=True)
class ModelSpec:
    providers: frozenset[str] = frozenset()  # empty: every provider
    models: frozenset[str] = frozenset()
    operations: frozenset[str] = frozenset()
    first_attempts: int | None = None
    retry_after_s: float | None = None
    delay_s: float | None = None  # None: until the caller gives up or the fault ends
    after_chunks: int = DEFAULT_AFTER_CHUNKS

    def matches(self, provider: str, model: str, operation: str) -> bool:
        return ((not self.providers or provider in self.providers)
                and (not self.models or model in self.models)
                and (not self.operations or operation in self.operations))


def _names(block: Mapping[str, Any], key: str, allowed: frozenset[str] | None, field_: str) -> frozenset[str]:
    value = block.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadModelBlock(f"{field_}.{key} must be a list of names")
    if allowed is not None and not set(value) <= allowed:
        raise BadModelBlock(f"{field_}.{key}: {sorted(set(value) - allowed)} not among {', '.join(sorted(allowed))}")
    return frozenset(value)


def _duration(block: Mapping[str, Any], key: str, field_: str) -> float | None:
    value = block.get(key)
    if value is None:
        return None
    try:
        seconds = parse_duration(value, f"{field_}.{key}")
    except InvalidField as exc:
        raise BadModelBlock(str(exc)) from None
    if not 0.001 <= seconds <= 3600:
        raise BadModelBlock(f"{field_}.{key} must be between 1ms and 1h")
    return seconds


def parse_model_block(kind: str, block: Any, field_: str) -> ModelSpec:
    """`spec.model` of a Model* fault → ModelSpec, or BadModelBlock."""
    if not isinstance(block, dict):
        raise BadModelBlock(f"{field_} must be an object")
    first = block.get("firstAttempts")
    if first is not None and (isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= 100):
        raise BadModelBlock(f"{field_}.firstAttempts must be an integer from 1 to 100")
    after = block.get("afterChunks", DEFAULT_AFTER_CHUNKS)
    if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after <= 100_000:
        raise BadModelBlock(f"{field_}.afterChunks must be an integer from 0 to 100000")
    retry_after = _duration(block, "retryAfter", field_)
    if retry_after is None and kind == "ModelRateLimit":
        retry_after = parse_duration(DEFAULT_RETRY_AFTER)
    delay = _duration(block, "delay", field_)
    if delay is None and kind in ("ModelSlowFirstToken", "ModelSlowStream"):
        raise BadModelBlock(f"{field_}.delay is required for {kind}")
    return ModelSpec(
        providers=_names(block, "providers", _PROVIDERS, field_),
        models=_names(block, "models", None, field_),
        operations=_names(block, "operations", _OPERATIONS, field_),
        first_attempts=first, retry_after_s=retry_after, delay_s=delay, after_chunks=after,
    )


@dataclass
class _Call:
    seen: float  # last attempt (or its failure), monotonic
    attempts: int
    open: int = 1  # attempts in flight
    draws: dict[str, bool] = field(default_factory=dict)  # fault uid → hit, for firstAttempts


@dataclass(frozen=True, slots=True)
class Attempt:
    key: bytes
    number: int  # 1 for a first attempt
    sdk_count: bool  # the number came from the SDK's retry header

    @property
    def is_retry(self) -> bool:
        return self.number > 1


def call_key(provider: str, method: str, path: str, body: bytes) -> bytes:
    # A digest, so the tracker holds neither prompts nor the API keys a query may carry.
    digest = hashlib.blake2b(digest_size=16)
    for part in (provider.encode(), method.encode(), path.encode()):
        digest.update(part)
        digest.update(b"\0")
    digest.update(body)
    return digest.digest()


class AttemptTracker:
    def __init__(self, *, window_s: float = REPEAT_WINDOW_S, capacity: int = MAX_TRACKED) -> None:
        self.window_s, self.capacity = window_s, capacity
        self._calls: OrderedDict[bytes, _Call] = OrderedDict()

    def __len__(self) -> int:
        return len(self._calls)

    def attempt(self, key: bytes, retry_header: str | None, now: float) -> Attempt:
        """Register one attempt of the call `key` at `now` and say which attempt it is."""
        calls = self._calls
        call = calls.get(key)
        if call is not None and now - call.seen > self.window_s:
            call = None
        sdk = retry_header.isdigit() if retry_header is not None else False
        if sdk:
            assert retry_header is not None
            number = int(retry_header) + 1
            if call is None or number == 1:
                call = _Call(now, number)  # a first attempt starts a new call, with fresh draws
            call.attempts, call.seen = number, now
        elif call is None:
            call = _Call(now, 1)
        elif call.open:
            call.open += 1  # the same request again while one is in flight: a concurrent call
            calls.move_to_end(key)
            return Attempt(key, 1, False)
        else:
            call.attempts += 1
            call.seen = now
            call.open = 1
        calls[key] = call
        calls.move_to_end(key)
        while len(calls) > self.capacity:
            calls.popitem(last=False)
        return Attempt(key, call.attempts, sdk)

    def finished(self, key: bytes, ok: bool, now: float) -> None:
        """An attempt ended: a success ends its call (an identical request from now on is
        a new call); a failure leaves it open for a retry within the window."""
        call = self._calls.get(key)
        if call is None:
            return
        if ok:
            del self._calls[key]
            return
        call.open = max(0, call.open - 1)
        call.seen = now

    def draw(self, key: bytes, uid: str, fraction: float, rnd: Callable[[], float]) -> bool:
        """The call's one draw against a fault's percentage, made on its first sight."""
        call = self._calls.get(key)
        if call is None:
            return rnd() < fraction
        hit = call.draws.get(uid)
        if hit is None:
            hit = call.draws[uid] = rnd() < fraction
        return hit


def applies(fault: Fault, operation: str, streams: bool) -> bool:
    """Whether a fault of this type can change this call at all."""
    if fault.type in STREAM_ONLY:
        return streams
    if fault.type == "ModelSafetyBlock":
        return operation in GENERATIVE
    return True


def pick(faults: tuple[Fault, ...], *, provider: ModelProvider, model: str, operation: str, streams: bool,
         attempt: Attempt, tracker: AttemptTracker, rnd: Callable[[], float] = random.random) -> Fault | None:
    """The first fault (in assignment order) that strikes this attempt, or None.

    One fault per attempt: two Model* faults on the same call would contradict each
    other (a 429 cannot also stream slowly), so the first that hits wins.
    """
    for fault in faults:
        spec = fault.model
        if spec is None or not spec.matches(provider, model, operation) or not applies(fault, operation, streams):
            continue
        if spec.first_attempts is not None:
            if attempt.number > spec.first_attempts:
                continue
            hit = fault.fraction >= 1.0 or tracker.draw(attempt.key, fault.uid, fault.fraction, rnd)
        else:
            hit = fault.fraction >= 1.0 or rnd() < fault.fraction
        if hit:
            return fault
    return None
