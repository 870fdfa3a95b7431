"""A run's full detail (`GET /v1/runs/{runId}?detail=full`) on the real stack, and what stays
without it: the plain GET, webhooks and the public run events."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from bus.topics import Topic, topic_name
from e2e_helpers import register
from e2e_receiver import Receiver, Reply

pytestmark = pytest.mark.e2e

DEMO = json.loads((Path(__file__).parents[2] / "examples" / "studio-portrait.json").read_text())
DEMO_INPUTS = {"prompt": "Studio portrait, warm lighting", "options": {"quality": "high"}}
SIZES = {"render": (768, 768), "warm": (768, 768), "square": (512, 512), "story": (540, 960)}
DETAIL_FIELDS = {"params", "outputs", "items"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _run_events_while(system: Any, start: Callable[[], str], timeout: float = 60) -> list[Any]:
    """The public run events (JSON) of the run `start` starts and names, read from Kafka as
    other teams read them, up to its run.completed."""
    name = topic_name(Topic.RUN_EVENTS, system.env["KAFKA_TOPIC_PREFIX"])

    async def read() -> list[Any]:
        consumer = AIOKafkaConsumer(
            name, bootstrap_servers=system.env["KAFKA_BOOTSTRAP_SERVERS"], group_id=None
        )
        await consumer.start()
        try:
            deadline = time.monotonic() + timeout
            while not consumer.assignment():
                assert time.monotonic() < deadline, f"no partitions of {name} assigned"
                await asyncio.sleep(0.05)
            # Pinned at the end before the run starts: its events are all after this.
            await consumer.seek_to_end()
            for partition in consumer.assignment():
                await consumer.position(partition)
            run_id = await asyncio.to_thread(start)
            events: list[Any] = []
            while not any(e["status"] == "completed" for e in events):
                assert time.monotonic() < deadline, f"no run.completed of {run_id}: {events}"
                batches = await consumer.getmany(timeout_ms=200)
                for record in (r for batch in batches.values() for r in batch):
                    if dict(record.headers).get("ce_subject") == run_id.encode():
                        events.append(json.loads(record.value or b"null"))
            return events
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_the_demo_runs_full_detail_shows_every_steps_params_and_images_with_urls(
    system: Any,
) -> None:
    with system.client() as c:
        run = c.post(f"/v1/workflows/{register(c, DEMO)}/run", json={"inputs": DEMO_INPUTS})
        assert run.status_code == 200, run.text
        run_id = run.json()["runId"]
        detail = c.get(f"/v1/runs/{run_id}", params={"detail": "full"})
        plain = c.get(f"/v1/runs/{run_id}")
        bad = c.get(f"/v1/runs/{run_id}", params={"detail": "everything"})

    assert detail.status_code == 200, detail.text
    assert detail.json()["inputs"] == DEMO_INPUTS
    assert "inputs" not in plain.json()
    steps = {s["nodeId"]: s for s in detail.json()["steps"]}
    assert set(steps) == set(SIZES)
    assert steps["render"]["params"]["prompt"] == DEMO_INPUTS["prompt"]
    assert steps["render"]["params"]["seed"] == 7
    assert steps["warm"]["params"]["temperature"] == 0.3
    assert steps["warm"]["params"]["image"].startswith(f"s3://workflow-outputs/runs/{run_id}/")
    assert steps["square"]["params"]["fit"] == "cover"
    for node_id, (width, height) in SIZES.items():
        step = steps[node_id]
        assert step["params"], node_id
        (image,) = [o for o in step["outputs"] if o["name"] == "image"]
        assert (image["type"], image["contentType"]) == ("image", "image/png"), node_id
        assert (image["width"], image["height"]) == (width, height), node_id
        assert httpx.get(image["url"], timeout=30).status_code == 200, node_id
        assert step["items"] is None
    # The rest is the run resource, as the plain GET answers it (URLs presigned anew).
    assert [o["ref"] for o in detail.json()["outputs"]] == [
        o["ref"] for o in plain.json()["outputs"]
    ]
    for step in plain.json()["steps"]:
        assert not DETAIL_FIELDS & set(step), step
    assert bad.status_code == 422, bad.text


def test_webhooks_and_run_events_carry_no_step_params_or_outputs(
    system: Any, receiver: Receiver
) -> None:
    receiver.on("/hooks", Reply(200))
    with system.client() as c:
        workflow_id = register(c, DEMO)

        def start() -> str:
            r = c.post(
                f"/v1/workflows/{workflow_id}/run",
                json={"inputs": DEMO_INPUTS, "webhook": f"{receiver.url}/hooks"},
            )
            assert r.status_code == 200, r.text
            run_id: str = r.json()["runId"]
            return run_id

        events = _run_events_while(system, start)
    run_id = events[0]["runId"]
    assert receiver.wait_for(
        lambda: any(
            r.headers.get("webhook-id") == f"{run_id}:completed" for r in receiver.calls("/hooks")
        )
    )
    (hook,) = [
        json.loads(r.body)
        for r in receiver.calls("/hooks")
        if r.headers.get("webhook-id") == f"{run_id}:completed"
    ]

    assert [e["status"] for e in events] == ["running", "completed"]
    for document in [*events, hook["data"]]:
        assert len(document["steps"]) == len(SIZES)
        for step in document["steps"]:
            assert not DETAIL_FIELDS & set(step), step
        assert document["rerunOf"] is None
