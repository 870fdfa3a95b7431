"""With Kafka not taking messages, a run request is answered 202 within PUBLISH_TIMEOUT_SECONDS
with the run stored and due (the sweeper publishes it later), never held open until the
client gives up. The ingress app runs in-process on the real MongoDB and S3 with a publisher
that never returns, which is what an unreachable Kafka looks like to it."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from devstack.api import Endpoints
from ingress.app import create_app
from ingress.hub import Hub
from ingress.runtime import Runtime
from ingress.settings import IngressSettings
from storage import mongo
from storage.assets import AssetStore
from storage.idempotency import IdempotencyKeys
from storage.keys import ApiKeyRepository
from storage.runs import RunRepository
from storage.workflows import WorkflowRepository

pytestmark = pytest.mark.integration

PUBLISH_TIMEOUT = 1.0
ECHO = {
    "name": "echo",
    "inputSchema": {"type": "object"},
    "nodes": [{"id": "say", "type": "text.template", "params": {"template": "hi"}}],
    "outputs": {"text": "{{ nodes.say.text }}"},
}


class KafkaThatNeverAnswers:
    def __init__(self) -> None:
        self.attempts = 0

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        self.attempts += 1
        await asyncio.Event().wait()


@pytest.fixture
async def ingress(stack: Endpoints) -> AsyncIterator[tuple[httpx.AsyncClient, Any, Any]]:
    database = f"it_kafka_down_{secrets.token_hex(4)}"
    settings = IngressSettings(
        **{
            **{k.lower(): v for k, v in stack.as_env().items()},
            "mongodb_database": database,
            "publish_timeout_seconds": PUBLISH_TIMEOUT,
        }
    )
    client = mongo.connect(settings.mongodb_url, app_name="it-kafka-down")
    db = client[database]
    await mongo.ensure_indexes(db)
    publisher = KafkaThatNeverAnswers()
    app = create_app(settings)  # its lifespan (which needs Kafka) is not run here
    app.state.runtime = Runtime(
        settings=settings,
        db=db,
        broker=None,  # type: ignore[arg-type]  # not used on the run path
        publisher=publisher,  # type: ignore[arg-type]
        store=AssetStore(settings.s3_config()),
        runs=RunRepository(db),
        workflows=WorkflowRepository(db),
        keys=ApiKeyRepository(db),
        hub=Hub(),
        idempotency=IdempotencyKeys(db),
    )
    _, key = await ApiKeyRepository(db).create(
        tenant_id="kafka-down", name="test", now=datetime.now(UTC)
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://ingress",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ) as http:
        yield http, publisher, db
    await client.drop_database(database)
    await client.close()


async def test_a_run_request_is_answered_202_within_the_publish_timeout_and_stays_due(
    ingress: tuple[httpx.AsyncClient, Any, Any],
) -> None:
    http, publisher, db = ingress
    assert (await http.put("/v1/workflows/echo", json=ECHO)).status_code == 201
    started = time.monotonic()
    answer = await http.post("/v1/workflows/echo/run", json={"inputs": {}})
    took = time.monotonic() - started
    assert answer.status_code == 202, answer.text
    assert answer.headers["Location"] == f"/v1/runs/{answer.json()['runId']}"
    assert publisher.attempts == 1
    assert took < PUBLISH_TIMEOUT + 10, f"held {took:.1f} s"
    print(f"answered 202 after {took:.2f} s (publish timeout {PUBLISH_TIMEOUT} s)")
    stored = await db.runs.find_one({"_id": answer.json()["runId"]})
    assert stored["status"] == "queued"
    assert stored["dueAt"] is not None, "the sweeper starts it when Kafka is back"


async def test_a_cancel_request_is_a_503_with_retry_after_within_the_publish_timeout(
    ingress: tuple[httpx.AsyncClient, Any, Any],
) -> None:
    http, publisher, _ = ingress
    assert (await http.put("/v1/workflows/echo", json=ECHO)).status_code == 201
    run_id = (await http.post("/v1/workflows/echo/run", json={"inputs": {}})).json()["runId"]
    answer = await http.post(f"/v1/runs/{run_id}/cancel")
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert int(answer.headers["Retry-After"]) > 0
    assert publisher.attempts == 2  # run.requested, then the cancel: nothing held open
