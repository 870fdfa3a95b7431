"""Small helpers the end-to-end tests share."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
from bus.topics import Topic, topic_name

TERMINAL = ("completed", "failed", "canceled")

TWO_STEPS: dict[str, Any] = {
    "name": "two steps",
    "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
    "nodes": [
        {"id": "first", "type": "text.template", "params": {"template": "{{ inputs.x }}!"}},
        {
            "id": "second",
            "type": "text.template",
            "params": {"template": "{{ nodes.first.text }}?"},
        },
    ],
    "outputs": {"text": "{{ nodes.second.text }}"},
}
"""Two dependent steps that do no I/O: the run path itself, and nothing else."""


def register(c: httpx.Client, definition: dict[str, Any], workflow_id: str | None = None) -> str:
    """Register `definition` (under a fresh id unless given) and return the workflow id."""
    workflow_id = workflow_id or f"wf-{secrets.token_hex(4)}"
    r = c.put(f"/v1/workflows/{workflow_id}", json=definition)
    assert r.status_code in (200, 201), r.text
    return workflow_id


def poll(
    c: httpx.Client, run_id: str, until: tuple[str, ...] = TERMINAL, timeout: float = 60
) -> dict[str, Any]:
    """The run once its status is in `until`, or as it is when `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = c.get(f"/v1/runs/{run_id}").raise_for_status().json()
        if run["status"] in until or time.monotonic() > deadline:
            return run
        time.sleep(0.1)


def committed_to_end(system: Any, group_id: str, topic: Topic, timeout: float = 30) -> None:
    """Until the consumer group's committed offsets reach the end of every partition of the
    (e2e-prefixed) topic: everything published to it so far is handled and will not be
    delivered to that group again."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    bootstrap = system.env["KAFKA_BOOTSTRAP_SERVERS"]
    name = topic_name(topic, system.env["KAFKA_TOPIC_PREFIX"])

    async def lag() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        consumer = AIOKafkaConsumer(name, bootstrap_servers=bootstrap)  # no group: reads only
        await admin.start()
        await consumer.start()
        try:
            committed = await admin.list_consumer_group_offsets(group_id)
            partitions = [
                TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()
            ]
            assert partitions, f"no partitions for {name}"
            ends = await consumer.end_offsets(partitions)
            done = {tp: meta.offset for tp, meta in committed.items()}
            return sum(max(0, end - done.get(tp, 0)) for tp, end in ends.items())
        finally:
            await consumer.stop()
            await admin.close()

    deadline = time.monotonic() + timeout
    while (left := asyncio.run(lag())) > 0:
        assert time.monotonic() < deadline, f"{group_id} has {left} records of {name} uncommitted"
        time.sleep(0.1)
