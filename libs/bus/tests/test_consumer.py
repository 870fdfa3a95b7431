"""The dispatcher's delivery rules, with an in-memory publisher standing in for Kafka."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from bus import deadletter
from bus.consumer import AttemptTimedOut, Dispatcher, Incoming, backoff
from bus.deadletter import DeadLetter
from bus.envelope import encode
from bus.keyed import KeyedWorkers
from bus.publisher import EventPublisher
from bus.topics import Topic, topic_specs
from contracts.events import RunRequested

EVENT = RunRequested(
    run_id="run_1",
    tenant_id="t",
    workflow_id="w",
    workflow_version=1,
    requested_at=datetime.now(UTC),
)


class Recorder:
    def __init__(self) -> None:
        self.dead: list[dict[str, Any]] = []
        self.letters: list[DeadLetter] = []

    async def dead_letter(self, letter: DeadLetter) -> None:
        self.letters.append(letter)
        self.dead.append({"error": letter.reason, "headers": letter.record_headers()})


def _dispatcher(handler: Any, recorder: Recorder) -> Dispatcher:
    return Dispatcher(
        {RunRequested: handler},
        recorder,  # type: ignore[arg-type]
        max_attempts=3,
        retry_delay=0,
    )


async def _deliver(dispatcher: Dispatcher, value: bytes | None = None) -> Any:
    out = encode(EVENT, source="/test", event_id="e-1")
    return await dispatcher.dispatch(
        topic="t",
        key=out.key,
        value=value if value is not None else out.value,
        headers=out.headers,
    )


async def test_an_undecodable_record_goes_to_the_dead_letter_topic_at_once() -> None:
    recorder = Recorder()

    async def never(_: Any) -> None:
        raise AssertionError("not called")

    assert await _deliver(_dispatcher(never, recorder), value=b"{not json") is None
    assert len(recorder.dead) == 1
    assert "not a CloudEvent" in recorder.dead[0]["error"] or "schema" in recorder.dead[0]["error"]


async def test_a_handler_bug_is_retried_then_dead_lettered_instead_of_blocking() -> None:
    recorder = Recorder()
    calls = 0

    async def broken(_: Any) -> None:
        nonlocal calls
        calls += 1
        raise LookupError("workflow missing")

    dispatcher = _dispatcher(broken, recorder)
    for _ in range(2):
        with pytest.raises(LookupError):
            await _deliver(dispatcher)
    assert await _deliver(dispatcher) is None
    assert calls == 3
    assert recorder.dead[0]["error"] == "LookupError: workflow missing"


async def test_a_dependency_outage_is_retried_for_as_long_as_it_lasts() -> None:
    recorder = Recorder()
    calls = 0

    async def flaky(_: Any) -> None:
        nonlocal calls
        calls += 1
        if calls <= 5:
            raise ConnectionError("mongo down")

    dispatcher = _dispatcher(flaky, recorder)
    for _ in range(5):
        with pytest.raises(ConnectionError):
            await _deliver(dispatcher)
    envelope = await _deliver(dispatcher)
    assert envelope is not None
    assert recorder.dead == []


async def test_a_known_event_type_without_a_handler_is_skipped_without_decoding() -> None:
    from contracts.events import StepStarted

    recorder = Recorder()
    called: list[Any] = []

    async def handler(data: Any) -> None:
        called.append(data)

    dispatcher = _dispatcher(handler, recorder)
    out = encode(
        StepStarted(run_id="run_1", node_id="a", attempt=1, started_at=datetime.now(UTC)),
        source="/test",
    )
    # A body that would not even decode: it is never looked at.
    result = await dispatcher.dispatch(
        topic="t", key=out.key, value=b"not json", headers=out.headers
    )
    assert result is None
    assert called == []
    assert recorder.dead == []


# --- poison messages end their run, within a known budget ------------------------------------


def _record(value: bytes | None = None, *, offset: int = 7, subject: str = "run_1") -> Incoming:
    out = encode(EVENT, source="/test", event_id=f"e-{offset}")
    headers = {**out.headers, "ce_subject": subject}
    return Incoming("in", 3, offset, out.key, out.value if value is None else value, headers)


def _parking(handler: Any, recorder: Recorder, ended: list[DeadLetter], **kw: Any) -> Dispatcher:
    async def end_run(letter: DeadLetter) -> None:
        ended.append(letter)

    return Dispatcher(
        {RunRequested: handler},
        recorder,  # type: ignore[arg-type]
        max_attempts=kw.pop("max_attempts", 3),
        retry_delay=0,
        on_dead_letter=end_run,
        **kw,
    )


async def _never(_: Any) -> None:
    raise AssertionError("not called")


async def test_an_undecodable_record_is_parked_with_where_it_came_from_and_its_run_ended() -> None:
    recorder, ended = Recorder(), list[DeadLetter]()
    dispatcher = _parking(_never, recorder, ended)
    assert await dispatcher.handle_record(_record(b"{not json", subject="run_9")) is None
    (letter,) = recorder.letters
    headers = letter.record_headers()
    assert headers[deadletter.TOPIC] == "in"
    assert headers[deadletter.PARTITION] == "3"
    assert headers[deadletter.OFFSET] == "7"
    assert headers[deadletter.ATTEMPTS] == "1"
    assert headers[deadletter.RUN_ID] == "run_9"
    assert headers["ce_type"] == RunRequested.event_type, "the original headers are kept"
    assert headers[deadletter.ERROR].startswith(("not a CloudEvent", RunRequested.event_type))
    assert ended == [letter]
    message = letter.describe()
    assert RunRequested.event_type in message
    assert "could not be processed" in message
    assert "Traceback" not in message


async def test_an_unknown_schema_version_is_parked_and_names_its_run_from_the_subject() -> None:
    recorder, ended = Recorder(), list[DeadLetter]()
    dispatcher = _parking(_never, recorder, ended)
    record = _record()
    record = Incoming(
        record.topic,
        record.partition,
        record.offset,
        None,
        record.value,
        {**record.headers, "ce_type": "com.sprello.workflow.run.requested.v9"},
    )
    await dispatcher.handle_record(record)
    assert ended[0].run_id == "run_1"
    assert "unknown event type" in ended[0].reason
    assert "run.requested.v9" in ended[0].describe()


async def test_a_handler_failing_every_try_is_parked_once_after_its_budget() -> None:
    recorder, ended = Recorder(), list[DeadLetter]()
    calls = 0

    async def broken(_: Any) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("the stored run cannot be read")

    dispatcher = _parking(broken, recorder, ended, max_attempts=4)
    record = _record()
    for _ in range(3):
        with pytest.raises(ValueError, match="cannot be read"):
            await dispatcher.handle_record(record)
    assert await dispatcher.handle_record(record) is None
    assert calls == 4
    (letter,) = recorder.letters
    assert letter.attempts == 4
    assert letter.event == EVENT
    assert letter.record_headers()[deadletter.ATTEMPTS] == "4"
    assert ended == [letter]
    assert "after 4 tries: ValueError: the stored run cannot be read" in letter.describe()


async def test_a_message_too_large_for_kafka_is_not_a_dependency_outage() -> None:
    recorder, ended = Recorder(), list[DeadLetter]()

    async def publishes_too_much(_: Any) -> None:
        raise MessageSizeTooLargeError("The message is 2000000 bytes")

    dispatcher = _parking(publishes_too_much, recorder, ended, max_attempts=2)
    assert not dispatcher.is_transient(MessageSizeTooLargeError())
    assert dispatcher.is_transient(KafkaConnectionError())
    with pytest.raises(MessageSizeTooLargeError):
        await dispatcher.handle_record(_record())
    await dispatcher.handle_record(_record())
    assert "MessageSizeTooLargeError" in ended[0].reason


async def test_a_try_running_past_its_timeout_counts_against_the_budget() -> None:
    recorder, ended = Recorder(), list[DeadLetter]()

    async def hangs(_: Any) -> None:
        await asyncio.Event().wait()

    dispatcher = _parking(hangs, recorder, ended, max_attempts=2, attempt_timeout=0.01)
    with pytest.raises(TimeoutError):
        await dispatcher.handle_record(_record())
    await dispatcher.handle_record(_record())
    assert ended[0].reason.startswith(AttemptTimedOut.__name__)
    assert not dispatcher.is_transient(AttemptTimedOut())


def test_the_retry_budget_is_tries_times_their_timeout_plus_bounded_pauses() -> None:
    assert [backoff(n, 0.5, 30) for n in range(1, 10)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff(10_000, 0.5, 30) == 30, "no overflow however long an outage lasts"
    dispatcher = Dispatcher({}, Recorder(), max_attempts=5, attempt_timeout=30)  # type: ignore[arg-type]
    assert dispatcher.retry_budget() == 5 * 30 + 0.5 + 1 + 2 + 4
    assert Dispatcher({}, Recorder()).retry_budget() is None  # type: ignore[arg-type]


async def test_ending_the_run_is_retried_while_a_dependency_is_down_without_parking_twice() -> None:
    recorder = Recorder()
    outage = 2
    ended: list[DeadLetter] = []

    async def end_run(letter: DeadLetter) -> None:
        nonlocal outage
        if outage:
            outage -= 1
            raise ConnectionError("mongo down")
        ended.append(letter)

    dispatcher = Dispatcher(
        {RunRequested: _never},
        recorder,  # type: ignore[arg-type]
        retry_delay=0,
        on_dead_letter=end_run,
    )
    record = _record(b"{not json")
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await dispatcher.handle_record(record)
    await dispatcher.handle_record(record)
    assert len(recorder.letters) == 1
    assert len(ended) == 1


async def test_a_failure_to_end_the_run_that_is_not_transient_does_not_hold_the_record() -> None:
    recorder = Recorder()

    async def end_run(letter: DeadLetter) -> None:
        raise LookupError("no such run")

    dispatcher = Dispatcher(
        {RunRequested: _never},
        recorder,  # type: ignore[arg-type]
        on_dead_letter=end_run,
    )
    assert await dispatcher.handle_record(_record(b"{not json")) is None
    assert len(recorder.letters) == 1


async def test_a_poison_record_does_not_hold_its_key_in_keyed_workers() -> None:
    recorder, ended = Recorder(), list[DeadLetter]()

    async def always_fails(data: Any) -> None:
        raise ValueError("always")

    dispatcher = _parking(always_fails, recorder, ended, max_attempts=3)

    class Consumer:
        async def commit(self, offsets: dict[TopicPartition, int]) -> None:
            self.offsets = offsets

    consumer = Consumer()
    good = encode(EVENT, source="/test", event_id="good")
    later: list[str] = []

    async def handle(record: Incoming) -> object:
        if record.offset == 2:
            later.append("handled")
            return None
        return await dispatcher.handle_record(record)

    workers = KeyedWorkers(handle, commit_interval=3600)
    for offset in (1, 2):
        record = SimpleNamespace(
            topic="in", partition=0, offset=offset, key=b"run_1", value=good.value
        )
        msg = SimpleNamespace(raw_message=record, consumer=consumer, headers=good.headers)
        await workers.submit(msg)  # type: ignore[arg-type]
    deadline = asyncio.get_running_loop().time() + 5
    while workers.in_flight:
        assert asyncio.get_running_loop().time() < deadline, "the key is still held"
        await asyncio.sleep(0.01)
    assert later == ["handled"], "the next record of the same key ran after the poison one"
    assert len(ended) == 1
    await workers.commit()
    assert consumer.offsets == {TopicPartition("in", 0): 3}
    await workers.drain(within=1)


class FakeBroker:
    """Declares publishers like FastStream's broker; a value over `limit` is refused."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.published: list[tuple[bytes, str, dict[str, str]]] = []

    def publisher(self, topic: str, **_: Any) -> FakePublisher:
        return FakePublisher(self, topic)


@dataclass
class FakePublisher:
    broker: FakeBroker
    topic: str

    async def publish(self, value: bytes, *, key: Any, headers: Any) -> None:
        if len(value) > self.broker.limit:
            raise MessageSizeTooLargeError(f"{len(value)} bytes")
        self.broker.published.append((value, self.topic, headers))


async def test_a_value_too_large_for_the_dead_letter_topic_is_parked_without_it() -> None:
    broker = FakeBroker(limit=100)
    publisher = EventPublisher(broker, source="/t", prefix="e2e.")  # type: ignore[arg-type]
    letter = DeadLetter("in", 0, 5, b"run_1", b"x" * 500, {}, "too big", 1)
    await publisher.dead_letter(letter)
    ((value, topic, headers),) = broker.published
    assert topic == "e2e.workflow.dead-letter.v1"
    assert value == b""
    assert headers[deadletter.VALUE_DROPPED] == "500"
    assert headers[deadletter.ERROR] == "too big"


def test_the_dead_letter_topic_is_in_the_registry() -> None:
    names = {spec.name for spec in topic_specs(6, "e2e.")}
    assert f"e2e.{Topic.DEAD_LETTER.value}" in names
