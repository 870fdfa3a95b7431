"""Turning a Kafka record into a call of a typed handler, the same way in every service.

Undecodable or schema-failing records go to the dead-letter topic with the reason at once. A
handler failure is logged with the runId and re-raised after a pause, so the record is tried
again in place (`KeyedWorkers`, `handle_in_place`) or redelivered (a subscriber's ack policy).
A failure of a dependency (the `transient` exception types, and Kafka errors Kafka calls
retriable) is retried for as long as it lasts; any other failure, a try running longer than
`attempt_timeout` included, is tried `max_attempts` times, then the record is dead-lettered
with the error: a bug or an impossible message must not hold its partition.

The retry budget of one message that is not failing for a dependency is therefore
`max_attempts` tries (each at most `attempt_timeout`, when set) and the pauses between them,
`retry_delay` doubling from one to the next and never more than `max_retry_delay` each: with
the defaults 0.5 + 1 + 2 + 4 = 7.5 s for 5 tries (see `retry_budget`).

After parking a record, `on_dead_letter` lets the service end the run the record was about
(the orchestrator fails it, the executor answers a step with `step.failed`). Its transient
failures are retried like a handler's; a record already parked is not parked again when it
is retried in this process.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RequestTimedOutError,
)
from contracts.events import BY_TYPE, EventData
from faststream.kafka.message import KafkaMessage

from bus import logs, tracing
from bus.deadletter import DeadLetter, one_line
from bus.envelope import PoisonMessage, decode
from bus.publisher import EventPublisher

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

log = logging.getLogger("bus.consumer")

Handler = Callable[[Any], Awaitable[None]]
_V = TypeVar("_V")


@dataclass(frozen=True)
class Incoming:
    """One Kafka record, with its event when a typed handler decoded it (`bus.subscribe`)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Mapping[str, str]
    event: EventData | None = None


def incoming(msg: KafkaMessage, event: EventData | None = None) -> Incoming:
    """The record of a message from a single-record subscriber, and its decoded event."""
    r = cast("ConsumerRecord[bytes, bytes]", msg.raw_message)
    return Incoming(r.topic, r.partition, r.offset, r.key, r.value or b"", msg.headers, event)


class AttemptTimedOut(Exception):
    """One try of a handler ran longer than the dispatcher's `attempt_timeout`."""


OnDeadLetter = Callable[[DeadLetter], Awaitable[None]]

MEMORY = 10_000
"""Records whose failures (or parking) this process remembers; the oldest are forgotten."""


def backoff(failures: int, retry_delay: float, max_retry_delay: float) -> float:
    """The pause after the `failures`-th failed try: doubling, never above `max_retry_delay`."""
    return min(max_retry_delay, retry_delay * 2.0 ** min(failures - 1, 32))


TRANSIENT: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    KafkaConnectionError,
    KafkaTimeoutError,
    RequestTimedOutError,
)
"""Failures of a dependency (unreachable, timed out) rather than of a message."""


def is_transient(exc: BaseException, extra: tuple[type[BaseException], ...] = ()) -> bool:
    """A dependency failing (retried while it lasts) rather than the message or a bug: one of
    `TRANSIENT` or `extra`, or a Kafka error Kafka calls retriable. A message too large for
    Kafka is never transient (it stays too large), nor is a try that ran out of time."""
    if isinstance(exc, MessageSizeTooLargeError | RecordTooLargeError | AttemptTimedOut):
        return False
    if isinstance(exc, TRANSIENT + extra):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


class Dispatcher:
    def __init__(
        self,
        handlers: Mapping[type[EventData], Handler],
        publisher: EventPublisher,
        *,
        transient: tuple[type[BaseException], ...] = (),
        max_attempts: int = 5,
        retry_delay: float = 0.5,
        max_retry_delay: float = 30.0,
        attempt_timeout: float | None = None,
        on_dead_letter: OnDeadLetter | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._handlers = dict(handlers)
        # Known event types nobody here handles (e.g. step.started for the orchestrator):
        # recognised from the `ce_type` header and skipped without decoding.
        self._ignored = frozenset(BY_TYPE) - {t.event_type for t in self._handlers}
        self._publisher = publisher
        self._transient = transient
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._attempt_timeout = attempt_timeout
        self._on_dead_letter = on_dead_letter
        self._failures: OrderedDict[str, int] = OrderedDict()
        self._parked: OrderedDict[str, DeadLetter] = OrderedDict()
        """Records parked whose `on_dead_letter` has not succeeded yet (it is retried)."""

    def retry_budget(self) -> float | None:
        """The longest a message not failing for a dependency is tried before it is parked,
        in seconds; None when tries have no time limit."""
        if self._attempt_timeout is None:
            return None
        pauses = sum(
            backoff(n, self._retry_delay, self._max_retry_delay)
            for n in range(1, self._max_attempts)
        )
        return self._max_attempts * self._attempt_timeout + pauses

    def is_transient(self, exc: BaseException) -> bool:
        return is_transient(exc, self._transient)

    async def handle(self, msg: KafkaMessage, event: EventData | None = None) -> EventData | None:
        """A typed handler's body (`bus.subscribe.Take`): hand the record to `dispatch`."""
        return await self.handle_record(incoming(msg, event))

    async def handle_in_place(
        self, msg: KafkaMessage, event: EventData | None = None
    ) -> EventData | None:
        """`handle`, tried again here until the record is handled or parked: for subscribers
        that acknowledge a record on receipt, so Kafka never delivers it again."""
        record = incoming(msg, event)
        while True:
            try:
                return await self.handle_record(record)
            except Exception:
                continue  # logged, and paused for, by `dispatch`

    async def handle_record(self, record: Incoming) -> EventData | None:
        return await self.dispatch(
            topic=record.topic,
            key=record.key,
            value=record.value,
            headers=record.headers,
            partition=record.partition,
            offset=record.offset,
            event=record.event,
        )

    async def dispatch(
        self,
        *,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Mapping[str, str],
        partition: int | None = None,
        offset: int | None = None,
        event: EventData | None = None,
    ) -> EventData | None:
        """Handle one record: its `event` when a typed handler decoded it, else its value
        decoded here (what cannot be decoded is parked)."""
        # Every line logged while this record is handled carries its run, tenant, node and
        # trace (bound once decoded); none of it stays for the next record.
        with (
            logs.scope(),
            tracing.consume_span(
                f"{topic} process",
                headers,
                **{"messaging.system": "kafka", "messaging.destination.name": topic},
            ),
        ):
            return await self._dispatch(
                topic=topic,
                key=key,
                value=value,
                headers=headers,
                partition=partition,
                offset=offset,
                event=event,
            )

    async def _dispatch(
        self,
        *,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Mapping[str, str],
        partition: int | None,
        offset: int | None,
        event: EventData | None,
    ) -> EventData | None:
        if headers.get("ce_type") in self._ignored:
            return None
        # The same record each time it is tried (a redelivery has the same offset).
        where = (
            f"{topic}/{partition}@{offset}"
            if offset is not None
            else f"{topic}/{key!r}/{hashlib.sha256(value).hexdigest()}"
        )
        parked = self._parked.get(where)
        if parked is not None:
            await self._after_parking(where, parked)
            return None
        try:
            data = event if event is not None else decode(headers, value).data
        except PoisonMessage as exc:
            letter = DeadLetter(topic, partition, offset, key, value, headers, str(exc), 1)
            log.error(
                "run %s: poison message on %s sent to dead letter: %s",
                letter.run_id,
                where,
                one_line(str(exc))[:500],
            )
            await self._park(where, letter)
            return None
        logs.bind_event(data)
        handler = self._handlers.get(type(data))
        if handler is None:
            return None
        try:
            async with asyncio.timeout(self._attempt_timeout) as deadline:
                await handler(data)
        except Exception as exc:
            failure: Exception = exc
            if isinstance(exc, TimeoutError) and deadline.expired():
                failure = AttemptTimedOut(f"a try took longer than {self._attempt_timeout:g} s")
            failures = self._failures.pop(where, 0) + 1
            transient = self.is_transient(failure)
            if not transient and failures >= self._max_attempts:
                log.exception(
                    "run %s: handling %s failed %d times; sent to the dead-letter topic",
                    data.run_id,
                    data.event_type,
                    failures,
                )
                reason = f"{type(failure).__name__}: {failure}".rstrip(": ")
                letter = DeadLetter(
                    topic, partition, offset, key, value, headers, reason, failures, data
                )
                await self._park(where, letter)
                return None
            self._remember(self._failures, where, failures)
            log.exception(
                "run %s: handling %s failed (%s, attempt %d); it will be tried again",
                data.run_id,
                data.event_type,
                "transient" if transient else f"unexpected, {self._max_attempts} tries at most",
                failures,
            )
            await asyncio.sleep(backoff(failures, self._retry_delay, self._max_retry_delay))
            raise
        self._failures.pop(where, None)
        return data

    async def _park(self, where: str, letter: DeadLetter) -> None:
        await self._publisher.dead_letter(letter)
        self._remember(self._parked, where, letter)
        await self._after_parking(where, letter)

    async def _after_parking(self, where: str, letter: DeadLetter) -> None:
        """Let the service end the record's run; a dependency failing here is retried like a
        handler's, anything else is logged (the record stays parked, its run's timers are
        left to end it)."""
        if self._on_dead_letter is not None:
            try:
                await self._on_dead_letter(letter)
            except Exception as exc:
                if not self.is_transient(exc):
                    log.exception("run %s: ending it after a dead letter failed", letter.run_id)
                else:
                    failures = self._failures.pop(where, 0) + 1
                    self._remember(self._failures, where, failures)
                    log.warning(
                        "run %s: ending it after a dead letter failed (attempt %d); trying again",
                        letter.run_id,
                        failures,
                        exc_info=True,
                    )
                    await asyncio.sleep(backoff(failures, self._retry_delay, self._max_retry_delay))
                    raise
        self._parked.pop(where, None)
        self._failures.pop(where, None)

    @staticmethod
    def _remember(memory: OrderedDict[str, _V], where: str, value: _V) -> None:
        memory[where] = value
        memory.move_to_end(where)
        while len(memory) > MEMORY:
            memory.popitem(last=False)
