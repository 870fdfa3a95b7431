"""Requests waiting for their run to end, woken by the public run events.

A waiter is registered before the run is published, so its end cannot slip past; if an event
is missed anyway, the request reads the stored run at its deadline.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict


class Waiters:
    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Future[str]]] = defaultdict(set)

    def register(self, run_id: str) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[run_id].add(future)
        return future

    def discard(self, run_id: str, future: asyncio.Future[str]) -> None:
        futures = self._waiting.get(run_id)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del self._waiting[run_id]

    def wake(self, run_id: str, status: str) -> None:
        for future in self._waiting.pop(run_id, set()):
            if not future.done():
                future.set_result(status)

    def __len__(self) -> int:
        return sum(len(f) for f in self._waiting.values())
