"""Run events fanned out to the requests that listen for them in this process.

Every ingress instance consumes the run and step events of all runs (no consumer group) and
hands each to the listeners of its run: a synchronous run request waits for the terminal
event, an SSE stream forwards them all. A listener is registered before the run is published
or its snapshot is read, so nothing slips between; the stored run stays the answer.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from bus.envelope import Envelope
from contracts.events import RunEventData
from contracts.run import RunStatus

TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})
QUEUE_LIMIT = 1000


def is_terminal_event(envelope: Envelope) -> bool:
    return isinstance(envelope.data, RunEventData) and envelope.data.status in TERMINAL


class Hub:
    def __init__(self) -> None:
        self._listeners: dict[str, set[asyncio.Queue[Envelope]]] = defaultdict(set)

    @contextmanager
    def listen(self, run_id: str) -> Iterator[asyncio.Queue[Envelope]]:
        queue: asyncio.Queue[Envelope] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._listeners[run_id].add(queue)
        try:
            yield queue
        finally:
            listeners = self._listeners.get(run_id)
            if listeners is not None:
                listeners.discard(queue)
                if not listeners:
                    del self._listeners[run_id]

    def publish(self, envelope: Envelope) -> None:
        for queue in self._listeners.get(envelope.data.run_id, ()):
            # A listener that stopped reading loses progress events, never the stored run.
            if not queue.full():
                queue.put_nowait(envelope)

    def __len__(self) -> int:
        return sum(len(q) for q in self._listeners.values())


async def wait_for_end(queue: asyncio.Queue[Envelope], within: float) -> bool:
    """True when the run's terminal event arrived within `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while not is_terminal_event(await queue.get()):
                pass
    except TimeoutError:
        return False
    return True
