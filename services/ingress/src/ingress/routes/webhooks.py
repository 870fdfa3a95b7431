"""Webhooks: the tenant's signing secret, a run's delivery log, redelivery, and the check of a
webhook URL when a run is requested."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated

from contracts.api import (
    ProblemItem,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookSecret,
)
from egress import EgressPolicy, EgressRefused, UnresolvableHost, check_url, resolve
from fastapi import APIRouter, Path
from storage.deliveries import Delivery, DeliveryConflict
from storage.tenants import SigningSecrets

from ingress.auth import TenantId
from ingress.problems import ProblemError
from ingress.runtime import RuntimeDep

router = APIRouter(tags=["webhooks"])

RESOLVE_SECONDS = 2.0
RunIdPath = Annotated[str, Path(pattern=r"^run_[0-9a-f]{28}$")]
DeliveryIdPath = Annotated[
    str, Path(pattern=r"^run_[0-9a-f]{28}:(started|completed|failed|canceled)$")
]


async def check_webhook_target(url: str, policy: EgressPolicy) -> None:
    """422 when the URL may not be delivered to. A name that does not resolve right now is
    let through: every attempt resolves and checks it again."""
    try:
        target = check_url(url, policy)
        async with asyncio.timeout(RESOLVE_SECONDS):
            await resolve(target, policy)
    except EgressRefused as exc:
        raise ProblemError(
            422,
            f"the webhook URL is refused: {exc.reason}",
            kind="webhook-refused",
            errors=[ProblemItem(path="/webhook", message=exc.reason)],
        ) from None
    except (UnresolvableHost, TimeoutError):
        pass


def _secret(secrets: SigningSecrets, now: datetime) -> WebhookSecret:
    return WebhookSecret(
        secret=secrets.current,
        created_at=secrets.created_at,
        previous_secret_expires_at=secrets.previous_valid_until
        if len(secrets.valid(now)) > 1
        else None,
    )


def _delivery(d: Delivery) -> WebhookDelivery:
    return WebhookDelivery(
        delivery_id=d.delivery_id,
        webhook_id=d.webhook_id,
        run_id=d.run_id,
        type=f"run.{d.event}",
        url=d.url,
        status=d.status.value,
        created_at=d.created_at,
        next_attempt_at=d.next_attempt_at,
        attempts=[
            WebhookAttempt(
                attempt=a.number,
                at=a.at,
                duration_ms=a.duration_ms,
                status_code=a.status_code,
                error=a.error,
                next_attempt_at=a.next_attempt_at,
            )
            for a in d.attempts
        ],
    )


@router.get("/v1/webhooks/secret", response_model=WebhookSecret, response_model_by_alias=True)
async def get_secret(tenant_id: TenantId, runtime: RuntimeDep) -> WebhookSecret:
    """Verify deliveries with it, e.g. `standardwebhooks.Webhook(secret).verify(body, headers)`."""
    now = datetime.now(UTC)
    return _secret(await runtime.tenants.signing_secrets(tenant_id, now=now), now)


@router.post(
    "/v1/webhooks/secret/rotate", response_model=WebhookSecret, response_model_by_alias=True
)
async def rotate_secret(tenant_id: TenantId, runtime: RuntimeDep) -> WebhookSecret:
    """A new secret. The previous one stays valid for the grace period (deliveries carry both
    signatures until it ends), so receivers can switch without losing a delivery."""
    now = datetime.now(UTC)
    grace = timedelta(seconds=runtime.settings.webhook_secret_grace_seconds)
    return _secret(await runtime.tenants.rotate(tenant_id, now=now, grace=grace), now)


@router.get(
    "/v1/runs/{run_id}/webhook-deliveries",
    response_model=WebhookDeliveryList,
    response_model_by_alias=True,
)
async def list_deliveries(
    run_id: RunIdPath, tenant_id: TenantId, runtime: RuntimeDep
) -> WebhookDeliveryList:
    """The run's webhook deliveries with every attempt."""
    if await runtime.runs.get_for_tenant(run_id, tenant_id) is None:
        raise ProblemError(404, f"no run {run_id!r}", kind="not-found")
    found = await runtime.deliveries.for_run(run_id)
    return WebhookDeliveryList(items=[_delivery(d) for d in found if d.tenant_id == tenant_id])


@router.post(
    "/v1/runs/{run_id}/webhook-deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=WebhookDelivery,
    response_model_by_alias=True,
    responses={409: {"description": "The delivery is still pending"}},
)
async def redeliver(
    run_id: RunIdPath, delivery_id: DeliveryIdPath, tenant_id: TenantId, runtime: RuntimeDep
) -> WebhookDelivery:
    """Send the delivery again now, with the same `webhook-id` (and a fresh round of retries).
    A delivery still pending is 409: it is being attempted already."""
    delivery = await runtime.deliveries.get(delivery_id)
    if delivery is None or delivery.run_id != run_id or delivery.tenant_id != tenant_id:
        raise ProblemError(404, f"no webhook delivery {delivery_id!r}", kind="not-found")
    try:
        updated = await runtime.deliveries.redeliver(delivery, now=datetime.now(UTC))
    except DeliveryConflict:
        raise ProblemError(
            409,
            f"delivery {delivery_id} is still pending; its next attempt is at "
            f"{delivery.next_attempt_at}",
            kind="delivery-pending",
        ) from None
    return _delivery(updated)
