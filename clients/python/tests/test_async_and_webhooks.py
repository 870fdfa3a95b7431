"""The asyncio client's retries, and webhook verification, without a server."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
import respx
from standardwebhooks import Webhook
from workflow_client import AsyncClient, Unreachable, WebhookVerificationError, verify_webhook
from workflow_client import aio as async_module

URL = "http://api.test"
RUN = {
    "runId": "run_" + "0" * 28,
    "workflowId": "wf",
    "workflowVersion": 1,
    "status": "completed",
    "createdAt": "2026-11-29T20:00:00Z",
}
SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"


@respx.mock
async def test_the_async_client_retries_429_with_one_idempotency_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses: list[float] = []

    async def record(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(async_module, "_sleep", record)
    route = respx.post(f"{URL}/v1/workflows/wf/run").mock(
        side_effect=[
            httpx.Response(
                429, json={"title": "too many", "status": 429}, headers={"Retry-After": "2"}
            ),
            httpx.Response(200, json=RUN),
        ]
    )
    async with AsyncClient(URL, "k") as client:
        run = await client.run("wf", {"x": 1})
    assert run.status == "completed"
    assert pauses == [2.0]
    keys = {call.request.headers["Idempotency-Key"] for call in route.calls}
    assert len(keys) == 1


@respx.mock
async def test_a_connection_refused_every_time_raises_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def skip(seconds: float) -> None:
        return None

    monkeypatch.setattr(async_module, "_sleep", skip)
    route = respx.get(f"{URL}/v1/workflows").mock(side_effect=httpx.ConnectError("refused"))
    async with AsyncClient(URL, "k") as client:
        with pytest.raises(Unreachable):
            await client.workflows.list()
    assert route.call_count == client.config.retry.max_attempts


def _signed(body: str) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "webhook-id": "run_x:completed",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SECRET).sign("run_x:completed", now, body),
    }


def test_a_signed_delivery_verifies_and_a_tampered_one_raises() -> None:
    body = '{"type":"run.completed","data":{"runId":"run_x"}}'
    headers = _signed(body)
    assert verify_webhook(SECRET, headers, body.encode())["type"] == "run.completed"
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, headers, body.replace("run_x", "run_y"))
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, {**headers, "webhook-signature": "garbage"}, body)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, {k: v for k, v in headers.items() if k != "webhook-id"}, body)
