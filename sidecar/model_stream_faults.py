"""Stream-shaping Model* faults: what happens to an SSE answer event by event.

A stream under one of these faults is passed on in whole events rather than raw chunks
(`model_gateway` switches to that only when such a fault strikes the call):
ModelSlowStream holds each event back by `model.delay`; ModelStreamStall and
ModelStreamCut let `model.afterChunks` events through and then hold the stream, or cut
the connection before the end marker; ModelMalformedJson cuts one event's JSON short;
ModelCorruptToolArguments breaks the tool-call arguments in the events that carry them.
A fault withdrawn while it holds a stream releases it (`FaultTable.hold`); the stream
then goes on unharmed. `corrupt_body` is the same corruption for a whole (non-streamed)
answer.
"""

from __future__ import annotations

import json

from agentops.api_types import ModelProvider
from agentops_sidecar.faults import Fault, FaultTable
from agentops_sidecar.model_shapes import corrupt_tool_calls
from agentops_sidecar.model_usage import SseEvent

# The faults that need the stream in whole events rather than raw chunks.
EVENT_FAULTS = frozenset({"ModelSlowStream", "ModelStreamStall", "ModelStreamCut", "ModelMalformedJson",
                          "ModelCorruptToolArguments"})


class EventShaper:
    """Applies one stream-shaping fault to a stream, event by event."""

    def __init__(self, table: FaultTable, fault: Fault, provider: ModelProvider) -> None:
        assert fault.model is not None
        self.table, self.fault, self.spec, self.provider = table, fault, fault.model, provider
        self.sent = 0  # events written
        # Released: pacing over (the fault was withdrawn, or struck and let the stream go
        # on); the body-shaping faults have no pacing to do at all.
        self.released = fault.type in ("ModelMalformedJson", "ModelCorruptToolArguments")  # no pacing to do
        self._malformed_done = False
        self._seen_calls: set[str] = set()

    def _first(self, call_id: str) -> bool:
        if call_id in self._seen_calls:
            return False
        self._seen_calls.add(call_id)
        return True

    def shape(self, event: SseEvent) -> SseEvent:
        kind = self.fault.type
        if kind == "ModelMalformedJson" and not self._malformed_done and event.data and event.data != "[DONE]":
            self._malformed_done = True
            return _replace_data(event, event.data[: max(1, len(event.data) // 2)])
        if kind == "ModelCorruptToolArguments" and event.data and event.data != "[DONE]":
            try:
                obj = json.loads(event.data)
            except ValueError:
                return event
            if corrupt_tool_calls(self.provider, obj, self._first):
                return _replace_data(event, json.dumps(obj, separators=(",", ":")))
        return event

    async def before_event(self) -> bool:
        """Pace, stall or stop before the next event; False: cut the connection now."""
        if self.released:
            return True
        kind = self.fault.type
        if kind == "ModelSlowStream":
            assert self.spec.delay_s is not None
            if not await self.table.hold(frozenset({self.fault.uid}), self.spec.delay_s):
                self.released = True
            return True
        if self.sent == self.spec.after_chunks:
            if kind == "ModelStreamCut":
                if any(f.uid == self.fault.uid for f in self.table.model):
                    return False
                self.released = True
            elif kind == "ModelStreamStall":
                if await self.table.hold(frozenset({self.fault.uid}), self.spec.delay_s):
                    return False  # stalled for model.delay: then the connection closes
                self.released = True
        return True


def _replace_data(event: SseEvent, data: str) -> SseEvent:
    old = event.data.encode()
    raw = event.raw.replace(old, data.encode(), 1) if old in event.raw else b"data: " + data.encode() + b"\n\n"
    return SseEvent(raw, event.event, data)


def corrupt_body(provider: ModelProvider, body: bytes) -> bytes:
    try:
        obj = json.loads(body)
    except ValueError:
        return body
    if corrupt_tool_calls(provider, obj):
        return json.dumps(obj, separators=(",", ":")).encode()
    return body
