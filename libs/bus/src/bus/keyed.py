"""Consuming concurrently across keys while keeping each key's order.

A partition holds the events of many runs (the key is the runId). Handling them one at a time
makes every run wait for the slowest handler of its partition; handling them all at once would
reorder the events of one run. `KeyedWorkers` takes each record as it arrives, chains it behind
the previous record of the same key, and lets records of different keys run at once, up to
`max_in_flight`.

Offsets are committed (in the background, every `commit_interval`) only below the lowest record
of each partition still being handled, so a crash redelivers everything not finished, and
nothing is committed past work that was lost. At-least-once, as before: handlers are idempotent.
The subscriber must not commit by itself (`AckPolicy.MANUAL`); its typed handlers
(`bus.subscribe`) hand each record over with its event and return at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from contracts.events import EventData
from faststream.kafka.annotations import KafkaMessage

from bus.consumer import Incoming, incoming

log = logging.getLogger("bus.keyed")

Handle = Callable[[Incoming], Awaitable[object]]


@dataclass
class _Progress:
    """Offsets of one partition: those being handled, the next after the highest seen, and
    the position last committed."""

    in_flight: set[int] = field(default_factory=set)
    next_offset: int = 0
    committed: int = -1

    def started(self, offset: int) -> None:
        self.in_flight.add(offset)
        self.next_offset = max(self.next_offset, offset + 1)

    def position(self) -> int:
        """Everything below this is handled."""
        return min(self.in_flight) if self.in_flight else self.next_offset


class KeyedWorkers:
    def __init__(
        self,
        handle: Handle,
        *,
        max_in_flight: int = 256,
        commit_interval: float = 0.2,
        on_rebalance: Callable[[], None] = lambda: None,
        revoke_timeout: float = 10.0,
    ) -> None:
        self._handle = handle
        self._slots = asyncio.Semaphore(max_in_flight)
        self._commit_interval = commit_interval
        self._on_rebalance = on_rebalance
        self._tails: dict[bytes | None, asyncio.Task[None]] = {}
        self._progress: dict[TopicPartition, _Progress] = {}
        self._consumer: Any = None
        self._committer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._by_partition: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        self._revoke_timeout = revoke_timeout
        self._closing = False

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def submit(self, msg: KafkaMessage, event: EventData | None = None) -> None:
        """Take a record and its decoded event (a typed handler's body, `bus.subscribe.Take`):
        returns once it is queued behind its key (waits while the limit of records in flight
        is reached, which holds back the consumer)."""
        self._consumer = msg.consumer
        await self._submit(incoming(msg, event))

    def _owned(self, tp: TopicPartition) -> bool:
        """Whether this consumer still holds `tp` (a record fetched before a rebalance may
        arrive after its partition went to another instance)."""
        assignment = getattr(self._consumer, "assignment", None)
        return not callable(assignment) or tp in assignment()

    async def _submit(self, record: Incoming) -> None:
        await self._slots.acquire()
        tp = TopicPartition(record.topic, record.partition)
        if self._closing or not self._owned(tp):
            self._slots.release()  # its new owner (or our next start) takes it from Kafka
            return
        self._progress.setdefault(tp, _Progress()).started(record.offset)
        key = record.key
        task = asyncio.create_task(self._run(self._tails.get(key), record, tp, key))
        self._tails[key] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        partition_tasks = self._by_partition.setdefault(tp, set())
        partition_tasks.add(task)
        task.add_done_callback(partition_tasks.discard)
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_forever(), name="offset-commits")

    async def _run(
        self,
        previous: asyncio.Task[None] | None,
        record: Incoming,
        tp: TopicPartition,
        key: bytes | None,
    ) -> None:
        try:
            if previous is not None:
                await asyncio.wait([previous])
            while True:
                try:
                    await self._handle(record)
                    break
                except Exception:
                    # The handler logged it and paused; a record is retried in place, so the
                    # records of its key stay behind it in order.
                    continue
            progress = self._progress.get(tp)
            if progress is not None:
                progress.in_flight.discard(record.offset)
        finally:
            self._slots.release()
            if self._tails.get(key) is asyncio.current_task():
                del self._tails[key]

    async def _commit_forever(self) -> None:
        while True:
            await asyncio.sleep(self._commit_interval)
            try:
                await self.commit()
            except Exception:
                log.warning("committing offsets failed; trying again", exc_info=True)

    async def commit(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        wanted = self._progress if partitions is None else set(partitions) & set(self._progress)
        chosen = [tp for tp in wanted if self._owned(tp)]
        offsets = {
            tp: pos
            for tp in chosen
            if (pos := self._progress[tp].position()) > self._progress[tp].committed
        }
        if not offsets or self._consumer is None:
            return
        await self._consumer.commit(offsets)
        for tp, pos in offsets.items():
            if tp in self._progress:
                self._progress[tp].committed = pos

    async def drain(self, within: float) -> None:
        """Take no more records, let those in flight finish (up to `within` seconds), commit
        what they finished, stop."""
        self._closing = True
        assignment = getattr(self._consumer, "assignment", None)
        if callable(assignment):
            self._consumer.pause(*assignment())
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within)
        with contextlib.suppress(Exception):
            await self.commit()
        for task in [*self._tasks, *([self._committer] if self._committer else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._committer = None

    async def _settle(self, partitions: Iterable[TopicPartition]) -> None:
        tasks = {t for tp in partitions for t in self._by_partition.pop(tp, set())}
        if not tasks:
            return
        _, unfinished = await asyncio.wait(tasks, timeout=self._revoke_timeout)
        for task in unfinished:
            task.cancel()
        if unfinished:
            log.warning("%d records of revoked partitions stopped unfinished", len(unfinished))
            await asyncio.gather(*unfinished, return_exceptions=True)

    def listener(self) -> ConsumerRebalanceListener:
        """Commits what is done before partitions go, forgets their offsets, and tells the
        owner (whose cached state may be changed by another instance from now on)."""
        workers = self

        class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
                # The partitions' next owner must not work beside us: let what we took of
                # them finish (bounded), then stop the rest before giving them up.
                await workers._settle(revoked)
                with contextlib.suppress(Exception):
                    await workers.commit(revoked)
                for tp in revoked:
                    workers._progress.pop(tp, None)
                workers._on_rebalance()

            async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
                for tp in assigned:
                    workers._progress.pop(tp, None)
                workers._on_rebalance()

        return _Listener()
