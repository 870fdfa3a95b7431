"""Concurrency across keys, order within a key, and commits that never pass unfinished work."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from bus.keyed import KeyedWorkers

TP = TopicPartition("t", 0)


class Consumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


def _msg(consumer: Consumer, offset: int, key: bytes) -> Any:
    record = SimpleNamespace(
        topic=TP.topic, partition=TP.partition, offset=offset, key=key, value=b"{}"
    )
    return SimpleNamespace(raw_message=record, consumer=consumer, headers={})


async def _until(condition: Any, within: float = 5.0) -> None:
    """Poll `condition` (plain state of the test, nothing to wait on) until a deadline."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_records_of_one_key_run_in_order_while_other_keys_run_at_once() -> None:
    consumer = Consumer()
    gates = {i: asyncio.Event() for i in range(4)}
    started: list[int] = []
    finished: list[int] = []

    async def handle(msg: Any) -> None:
        started.append(msg.offset)
        await gates[msg.offset].wait()
        finished.append(msg.offset)

    workers = KeyedWorkers(handle, commit_interval=3600)
    for offset, key in ((0, b"a"), (1, b"a"), (2, b"b"), (3, b"c")):
        await workers.submit(_msg(consumer, offset, key))
    await _until(lambda: sorted(started) == [0, 2, 3])
    assert 1 not in started, "the second record of key a waits for the first"
    gates[1].set()
    gates[3].set()
    await _until(lambda: finished == [3])
    gates[0].set()
    await _until(lambda: finished == [3, 0, 1])
    gates[2].set()
    await _until(lambda: workers.in_flight == 0)
    await workers.drain(within=1)


async def test_offsets_are_committed_only_below_the_lowest_unfinished_record() -> None:
    consumer = Consumer()
    slow = asyncio.Event()

    async def handle(msg: Any) -> None:
        if msg.offset == 10:
            await slow.wait()

    workers = KeyedWorkers(handle, commit_interval=3600)
    for offset in (10, 11, 12):
        await workers.submit(_msg(consumer, offset, f"k{offset}".encode()))
    await _until(lambda: workers.in_flight == 1)
    await workers.commit()
    assert consumer.commits == [{TP: 10}], "records 11 and 12 are done, 10 is not"
    slow.set()
    await _until(lambda: workers.in_flight == 0)
    await workers.commit()
    assert consumer.commits[-1] == {TP: 13}
    await workers.drain(within=1)


async def test_a_failing_record_is_retried_in_place_before_the_next_of_its_key() -> None:
    consumer = Consumer()
    seen: list[int] = []
    failures = {0: 2}

    async def handle(msg: Any) -> None:
        offset = msg.offset
        seen.append(offset)
        if failures.get(offset, 0):
            failures[offset] -= 1
            raise ConnectionError("store unreachable")

    workers = KeyedWorkers(handle, commit_interval=3600)
    await workers.submit(_msg(consumer, 0, b"a"))
    await workers.submit(_msg(consumer, 1, b"a"))
    await _until(lambda: workers.in_flight == 0)
    assert seen == [0, 0, 0, 1]
    await workers.drain(within=1)


async def test_the_number_of_records_in_flight_is_bounded() -> None:
    consumer = Consumer()
    gate = asyncio.Event()

    async def handle(msg: Any) -> None:
        await gate.wait()

    workers = KeyedWorkers(handle, max_in_flight=2, commit_interval=3600)
    await workers.submit(_msg(consumer, 0, b"a"))
    await workers.submit(_msg(consumer, 1, b"b"))
    third = asyncio.create_task(workers.submit(_msg(consumer, 2, b"c")))
    await asyncio.sleep(0.05)
    assert not third.done(), "the consumer is held back at the limit"
    gate.set()
    await third
    await _until(lambda: workers.in_flight == 0)
    await workers.drain(within=1)


class AssignedConsumer(Consumer):
    def __init__(self, assigned: set[TopicPartition]) -> None:
        super().__init__()
        self.assigned = set(assigned)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *partitions: TopicPartition) -> None:
        self.assigned -= set(partitions)


async def test_a_revoked_partition_is_settled_before_it_is_given_up_and_late_records_dropped() -> (
    None
):
    consumer = AssignedConsumer({TP})
    gate = asyncio.Event()
    handled: list[int] = []

    async def handle(msg: Any) -> None:
        await gate.wait()
        handled.append(msg.offset)

    workers = KeyedWorkers(handle, commit_interval=3600, revoke_timeout=5)
    await workers.submit(_msg(consumer, 0, b"a"))
    revoke = asyncio.create_task(workers.listener().on_partitions_revoked([TP]))
    await asyncio.sleep(0.05)
    assert not revoke.done(), "the record in flight finishes before the partition goes"
    gate.set()
    await revoke
    assert handled == [0]
    assert consumer.commits == [{TP: 1}]
    consumer.assigned = set()
    # Fetched before the rebalance, handed over after it: the new owner handles it.
    await workers.submit(_msg(consumer, 1, b"b"))
    assert workers.in_flight == 0
    assert handled == [0]
    await workers.drain(within=1)
