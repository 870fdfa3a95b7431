from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from contracts.run import RunResource, RunStatus
from notifier.signing import rfc3339, signed_headers, webhook_body
from standardwebhooks import Webhook, WebhookVerificationError
from storage.tenants import new_secret

RUN = RunResource(
    run_id="run_0123",
    workflow_id="wf",
    workflow_version=1,
    status=RunStatus.COMPLETED,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)


def test_body_has_type_timestamp_and_the_run_resource() -> None:
    body = json.loads(webhook_body("completed", datetime(2026, 1, 1, 12, tzinfo=UTC), RUN))
    assert body["type"] == "run.completed"
    assert body["timestamp"] == "2026-01-01T12:00:00.000Z"
    assert body["data"] == RUN.model_dump(mode="json", by_alias=True)
    assert body["data"]["runId"] == "run_0123"


def test_headers_verify_with_the_standardwebhooks_library() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    body = webhook_body("completed", datetime.now(UTC), RUN)
    headers = signed_headers("run_0123:completed", datetime.now(UTC), body, [secret])
    assert headers["webhook-id"] == "run_0123:completed"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers)["type"] == "run.completed"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_during_rotation_both_secrets_sign() -> None:
    new, old = new_secret(), new_secret()
    body = webhook_body("started", datetime.now(UTC), RUN)
    headers = signed_headers("id", datetime.now(UTC), body, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)


def test_rfc3339_is_utc_with_z() -> None:
    assert rfc3339(datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)) == "2026-05-06T07:08:09.123Z"
