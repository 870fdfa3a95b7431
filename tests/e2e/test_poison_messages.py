"""Poison messages end their run: a message that cannot be processed is dead-lettered with its
reason, its run ends `failed` with that reason (run event and webhook included), and the
partition it was on keeps moving. And a webhook receiver's unreadable `Retry-After` does not
make the notifier resend for ever."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2
from bus import deadletter
from bus.topics import Topic, topic_name
from e2e_helpers import poll, register
from e2e_receiver import Receiver, Reply

pytestmark = pytest.mark.e2e

ECHO = {
    "name": "echo",
    "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
    "nodes": [{"id": "say", "type": "text.template", "params": {"template": "{{ inputs.x }}"}}],
    "outputs": {"text": "{{ nodes.say.text }}"},
}
WAITS = {
    "name": "waits",
    "inputSchema": {"type": "object"},
    "nodes": [{"id": "pause", "type": "wait", "params": {"seconds": 60}}],
    "outputs": {"waited": "{{ nodes.pause.waited }}"},
}
UNKNOWN_VERSION = "com.sprello.workflow.step.succeeded.v9"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _topic(system: Any, topic: Topic) -> str:
    return topic_name(topic, system.env["KAFKA_TOPIC_PREFIX"])


def _headers(event_type: str, run_id: str) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"poison-{time.time_ns()}".encode()),
        ("ce_source", b"/e2e"),
        ("ce_type", event_type.encode()),
        ("ce_subject", run_id.encode()),
        ("ce_time", b"2026-11-29T19:00:00Z"),
        ("content-type", b"application/json"),
    ]


async def _reader(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    """A consumer of every partition of `topic` (no group: it only reads), positioned at the
    end, so it sees only what is written from now on."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="latest")
    await consumer.start()
    deadline = time.monotonic() + 10
    while not consumer.assignment():
        assert time.monotonic() < deadline, f"no partitions of {topic} assigned"
        await asyncio.sleep(0.05)
    partitions = list(consumer.assignment())
    await consumer.seek_to_end(*partitions)
    for tp in partitions:
        await consumer.position(tp)  # resolve the end now, before anything is written
    return consumer


async def _produce_poison(
    system: Any, topic: Topic, event_type: str, run_id: str, value: dict[str, Any]
) -> tuple[str, int, int, list[dict[str, str]]]:
    """Send one record keyed by the run and return where it went, and the dead-letter records
    that arrive for it within 30 s."""
    bootstrap = system.env["KAFKA_BOOTSTRAP_SERVERS"]
    dead = _topic(system, Topic.DEAD_LETTER)
    consumer = await _reader(bootstrap, dead)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        name = _topic(system, topic)
        sent = await producer.send_and_wait(
            name,
            json.dumps(value).encode(),
            key=run_id.encode(),
            headers=_headers(event_type, run_id),
        )
        found: list[dict[str, str]] = []
        deadline = time.monotonic() + 30
        while not found and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for r in records:
                    headers = {k: v.decode() for k, v in r.headers}
                    if headers.get(deadletter.RUN_ID) == run_id:
                        found.append(headers)
        return name, sent.partition, sent.offset, found
    finally:
        await producer.stop()
        await consumer.stop()


def _partition_of(run_id: str, partitions: int) -> int:
    """Kafka's default partitioner, as the services' producers use it for a runId key."""
    return int(murmur2(run_id.encode()) & 0x7FFFFFFF) % partitions


def test_a_poison_message_is_dead_lettered_and_its_run_fails_with_the_reason(
    system: Any, receiver: Receiver
) -> None:
    with system.client() as c:
        waits, echo = register(c, WAITS), register(c, ECHO)
        run = c.post(
            f"/v1/workflows/{waits}/run",
            json={"inputs": {}, "webhook": f"{receiver.url}/hook"},
            headers={"Prefer": "respond-async"},
        ).json()
        run_id = run["runId"]
        assert poll(c, run_id, until=("running",), timeout=20)["status"] == "running"

        produced = time.monotonic()
        topic, partition, offset, letters = asyncio.run(
            _produce_poison(
                system,
                Topic.STEP_FINISHED,
                UNKNOWN_VERSION,
                run_id,
                {"runId": run_id, "nodeId": "pause", "attempt": 1, "outputs": {}},
            )
        )
        # Parked with where it came from and why.
        assert len(letters) == 1, letters
        (letter,) = letters
        assert letter[deadletter.TOPIC] == topic
        assert letter[deadletter.PARTITION] == str(partition)
        assert letter[deadletter.OFFSET] == str(offset)
        assert letter[deadletter.ATTEMPTS] == "1"
        assert "unknown event type" in letter[deadletter.ERROR]

        # The run ends failed with that reason (it was waiting 60 s).
        final = poll(c, run_id, timeout=20)
        assert final["status"] == "failed", final
        print(f"\nrun failed {time.monotonic() - produced:.2f} s after its poison message")
        assert final["error"]["code"] == "poison_message"
        assert UNKNOWN_VERSION in final["error"]["message"]
        assert "unknown event type" in final["error"]["message"]
        assert "Traceback" not in final["error"]["message"]
        steps = {s["nodeId"]: s["status"] for s in final["steps"]}
        assert steps == {"pause": "canceled"}

        # Its webhook went out through the normal path.
        assert receiver.wait_for(
            lambda: (
                bool(receiver.calls("/hook"))
                and any(json.loads(r.body)["type"] == "run.failed" for r in receiver.calls("/hook"))
            )
        )
        failed = next(
            json.loads(r.body)
            for r in receiver.calls("/hook")
            if json.loads(r.body)["type"] == "run.failed"
        )
        assert failed["data"]["error"]["code"] == "poison_message"

        # The partition was not held: later runs on it complete.
        partitions = len(_partitions(system, topic))
        on_same_partition = 0
        for i in range(60):
            later = c.post(f"/v1/workflows/{echo}/run", json={"inputs": {"x": str(i)}}).json()
            later = poll(c, later["runId"], timeout=20)
            assert later["status"] == "completed", later
            if _partition_of(later["runId"], partitions) == partition:
                on_same_partition += 1
                if on_same_partition == 2:
                    break
        assert on_same_partition == 2, "no later run landed on the poisoned partition"


def _partitions(system: Any, topic: str) -> set[int]:
    async def read() -> set[int]:
        consumer = await _reader(system.env["KAFKA_BOOTSTRAP_SERVERS"], topic)
        try:
            return {tp.partition for tp in consumer.assignment()}
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_a_step_request_the_executor_cannot_read_is_answered_with_a_final_step_failed(
    system: Any,
) -> None:
    run_id = f"run_poison{time.time_ns()}"

    async def scenario() -> tuple[list[dict[str, str]], dict[str, Any] | None]:
        bootstrap = system.env["KAFKA_BOOTSTRAP_SERVERS"]
        finished = _topic(system, Topic.STEP_FINISHED)
        consumer = await _reader(bootstrap, finished)
        try:
            *_, letters = await _produce_poison(
                system,
                Topic.STEP_REQUESTED,
                "com.sprello.workflow.step.requested.v9",
                run_id,
                {"runId": run_id, "nodeId": "render", "attempt": 1, "nodeType": "x"},
            )
            answer = None
            deadline = time.monotonic() + 30
            while answer is None and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        data = json.loads(r.value)
                        if data.get("runId") == run_id and "error" in data:
                            answer = data
            return letters, answer
        finally:
            await consumer.stop()

    letters, answer = asyncio.run(scenario())
    assert letters, "the executor parked the step request"
    assert letters[0][deadletter.TOPIC] == _topic(system, Topic.STEP_REQUESTED)
    assert answer is not None, "no step.failed came back"
    assert (answer["nodeId"], answer["attempt"]) == ("render", 1)
    assert answer["error"]["code"] == "poison_message"
    assert answer["error"]["retryable"] is False
    assert "step.requested.v9" in answer["error"]["message"]


def test_a_retry_after_that_is_not_ascii_does_not_make_the_notifier_resend_forever(
    system: Any, receiver: Receiver
) -> None:
    # "²" goes out as the latin-1 byte 0xB2: a digit to str.isdigit(), not to float().
    receiver.on("/busy", Reply(status=503, headers={"Retry-After": "²"}))
    with system.client() as c:
        echo = register(c, ECHO)
        run = c.post(
            f"/v1/workflows/{echo}/run",
            json={"inputs": {"x": "a"}, "webhook": f"{receiver.url}/busy"},
        ).json()
        assert run["status"] == "completed", run
        delivery_id = f"{run['runId']}:completed"
        deadline = time.monotonic() + 30
        while True:
            items = c.get(f"/v1/runs/{run['runId']}/webhook-deliveries").json()["items"]
            delivery = next((d for d in items if d["deliveryId"] == delivery_id), None)
            if delivery is not None and delivery["status"] != "pending":
                break
            assert time.monotonic() < deadline, f"delivery still pending: {delivery}"
            time.sleep(0.2)
    # The e2e schedule is "0,0.5,1": three attempts, then the delivery has failed.
    assert delivery["status"] == "failed"
    assert [a["statusCode"] for a in delivery["attempts"]] == [503, 503, 503]
    sent = [
        r
        for r in receiver.calls("/busy")
        if {k.lower(): v for k, v in r.headers.items()}.get("webhook-id") == delivery_id
    ]
    assert len(sent) == 3
