"""Run events fanned out to the requests that listen for them in this process.

Every ingress instance consumes the run and step events of all runs (no consumer group) and
hands each to the listeners of its run: a synchronous run request waits for the terminal
event, an SSE stream forwards them all. A listener is registered before the run is published
or its snapshot is read, so nothing slips between; the stored run stays the answer.

Decoding an event costs more than anything else here, so an event is decoded only when a
listener wants it (`wants`, from the record's headers): a run's event stream wants all of its
events, a waiting request only the run's end.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from bus.envelope import Envelope
from contracts.events import RUN_EVENT_BY_STATUS, RunEventData
from contracts.run import RunStatus

TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})
TERMINAL_TYPES = frozenset(RUN_EVENT_BY_STATUS[s].event_type for s in TERMINAL)
QUEUE_LIMIT = 1000


def is_terminal_event(envelope: Envelope) -> bool:
    return isinstance(envelope.data, RunEventData) and envelope.data.status in TERMINAL


class Hub:
    def __init__(self) -> None:
        # run id -> listener queue -> whether it wants only the run's end
        self._listeners: dict[str, dict[asyncio.Queue[Envelope], bool]] = defaultdict(dict)

    @contextmanager
    def listen(self, run_id: str, *, only_end: bool = False) -> Iterator[asyncio.Queue[Envelope]]:
        queue: asyncio.Queue[Envelope] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._listeners[run_id][queue] = only_end
        try:
            yield queue
        finally:
            listeners = self._listeners.get(run_id)
            if listeners is not None:
                listeners.pop(queue, None)
                if not listeners:
                    del self._listeners[run_id]

    def wants(self, run_id: str | None, event_type: str | None) -> bool:
        """Whether any listener would take an event of this run and type."""
        listeners = self._listeners.get(run_id or "")
        if not listeners:
            return False
        return event_type in TERMINAL_TYPES or not all(listeners.values())

    def publish(self, envelope: Envelope) -> None:
        end = envelope.type in TERMINAL_TYPES
        for queue, only_end in self._listeners.get(envelope.data.run_id, {}).items():
            # A listener that stopped reading loses progress events, never the stored run.
            if (end or not only_end) and not queue.full():
                queue.put_nowait(envelope)

    def __len__(self) -> int:
        return sum(len(q) for q in self._listeners.values())


async def wait_for_end(queue: asyncio.Queue[Envelope], within: float) -> Envelope | None:
    """The run's terminal event, if it arrived within `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                envelope = await queue.get()
                if is_terminal_event(envelope):
                    return envelope
    except TimeoutError:
        return None
