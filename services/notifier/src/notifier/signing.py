"""The Standard Webhooks message: body and signed headers (signed by `standardwebhooks`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from contracts.run import RunResource
from standardwebhooks import Webhook


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def webhook_body(event: str, occurred_at: datetime, run: RunResource) -> str:
    """`{"type": "run.completed", "timestamp": …, "data": <the run resource>}`."""
    return json.dumps(
        {
            "type": f"run.{event}",
            "timestamp": rfc3339(occurred_at),
            "data": run.model_dump(mode="json", by_alias=True),
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def signed_headers(
    webhook_id: str, sent_at: datetime, body: str, secrets: Sequence[str]
) -> dict[str, str]:
    """One `v1,<signature>` per valid secret, space separated (rotation's grace period)."""
    if not secrets:
        raise ValueError("at least one signing secret is needed")
    stamp = sent_at.astimezone(UTC)
    signatures = " ".join(str(Webhook(s).sign(webhook_id, stamp, body)) for s in secrets)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }
