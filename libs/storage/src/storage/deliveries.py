"""Webhook deliveries: the attempt log, the durable retry schedule and attempt claims.

- `webhook_deliveries`: one document per run and event type, `_id` = `{runId}:{event}`, so a
  duplicate event cannot create a second delivery and a run's deliveries are found by probing
  the four possible ids. It holds the attempt log.
- `webhook_schedule`: only deliveries with an attempt still to make (`_id` = deliveryId,
  `dueAt`). It stays small, so the notifier's poll may scan it.
- `webhook_claims`: `_id` = `{deliveryId}@{attempt}#{n}`. Inserting one is the atomic claim of
  an attempt on every MongoDB-compatible server; it carries a lease (`until`). When a claimant
  dies, its lease runs out and the next claimant takes slot `n + 1`.

Every access except the poll is by `_id`.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.mongo import Document

WEBHOOK_EVENTS = ("started", "completed", "failed", "canceled")


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    GONE = "gone"


def delivery_id(run_id: str, event: str) -> str:
    return f"{run_id}:{event}"


def endpoint_host(url: str) -> str:
    """`host:port` of an endpoint: the unit of per-host concurrency."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{(parts.hostname or '').lower()}:{port}"


@dataclass(frozen=True)
class Attempt:
    number: int
    at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    run_id: str
    tenant_id: str
    event: str
    url: str
    status: DeliveryStatus
    created_at: datetime
    occurred_at: datetime
    next_attempt_at: datetime | None = None
    attempts: tuple[Attempt, ...] = field(default_factory=tuple)

    @property
    def webhook_id(self) -> str:
        """The `webhook-id` header: the same on every attempt and redelivery."""
        return self.delivery_id


@dataclass(frozen=True)
class Due:
    """A scheduled attempt."""

    delivery_id: str
    due_at: datetime
    attempt: int
    """Number of the attempt to make, counted over the delivery's whole life (from 1)."""
    position: int
    """Its position in the retry schedule (0 = first try of a round; redelivery starts one)."""
    host: str
    """The endpoint's host:port, for per-host concurrency without reading the delivery."""


@dataclass(frozen=True)
class Claim:
    claim_id: str
    due: Due


def _attempt_doc(a: Attempt) -> Document:
    return {
        "number": a.number,
        "at": a.at,
        "durationMs": a.duration_ms,
        "statusCode": a.status_code,
        "error": a.error,
        "nextAttemptAt": a.next_attempt_at,
    }


def _attempt(d: Document) -> Attempt:
    return Attempt(
        number=d["number"],
        at=d["at"],
        duration_ms=d["durationMs"],
        status_code=d.get("statusCode"),
        error=d.get("error"),
        next_attempt_at=d.get("nextAttemptAt"),
    )


def _to_doc(d: Delivery) -> Document:
    return {
        "_id": d.delivery_id,
        "runId": d.run_id,
        "tenantId": d.tenant_id,
        "event": d.event,
        "url": d.url,
        "status": d.status.value,
        "createdAt": d.created_at,
        "occurredAt": d.occurred_at,
        "nextAttemptAt": d.next_attempt_at,
        "attempts": [_attempt_doc(a) for a in d.attempts],
    }


def _from_doc(d: Document) -> Delivery:
    return Delivery(
        delivery_id=d["_id"],
        run_id=d["runId"],
        tenant_id=d["tenantId"],
        event=d["event"],
        url=d["url"],
        status=DeliveryStatus(d["status"]),
        created_at=d["createdAt"],
        occurred_at=d["occurredAt"],
        next_attempt_at=d.get("nextAttemptAt"),
        attempts=tuple(_attempt(a) for a in d.get("attempts", [])),
    )


def _due(d: Document) -> Due:
    return Due(
        delivery_id=d["_id"],
        due_at=d["dueAt"],
        attempt=d["attempt"],
        position=d["position"],
        host=d["host"],
    )


class DeliveryConflict(Exception):
    pass


class DeliveryRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._deliveries = db.webhook_deliveries
        self._schedule = db.webhook_schedule
        self._claims = db.webhook_claims

    async def create(self, delivery: Delivery) -> bool:
        """Store a new delivery and schedule its first attempt at `delivery.next_attempt_at`.

        False when it exists already (a duplicate event). A crash between the two writes is
        finished by the duplicate that redelivering the event produces.
        """
        assert delivery.next_attempt_at is not None
        created = True
        try:
            await self._deliveries.insert_one(_to_doc(delivery))
        except DuplicateKeyError:
            created = False
            existing = await self.get(delivery.delivery_id)
            if existing is None or existing.status != DeliveryStatus.PENDING or existing.attempts:
                return False
        await self._schedule.update_one(
            {"_id": delivery.delivery_id},
            {
                "$setOnInsert": {
                    "dueAt": delivery.next_attempt_at,
                    "attempt": 1,
                    "position": 0,
                    "host": endpoint_host(delivery.url),
                }
            },
            upsert=True,
        )
        return created

    async def get(self, delivery_id: str) -> Delivery | None:
        doc = await self._deliveries.find_one({"_id": delivery_id})
        return _from_doc(doc) if doc else None

    async def for_run(self, run_id: str) -> list[Delivery]:
        """A run's deliveries, probing each possible id (no scan)."""
        found = [await self.get(delivery_id(run_id, e)) for e in WEBHOOK_EVENTS]
        return [d for d in found if d is not None]

    async def due(
        self, now: datetime, *, limit: int, skip_hosts: Collection[str] = ()
    ) -> list[Due]:
        """Scheduled attempts due by `now`, earliest first, leaving out hosts that are busy
        (a scan of a small collection)."""
        query: Document = {"dueAt": {"$lte": now}}
        if skip_hosts:
            query["host"] = {"$nin": sorted(skip_hosts)}
        cursor = self._schedule.find(query).sort("dueAt", 1).limit(limit)
        return [_due(d) async for d in cursor]

    async def claim(self, due: Due, *, owner: str, now: datetime, lease: timedelta) -> Claim | None:
        """The exclusive right to make `due`'s attempt until the lease ends, or None when a
        live claim is held elsewhere."""
        for n in itertools.count():
            claim_id = f"{due.delivery_id}@{due.attempt}#{n}"
            try:
                await self._claims.insert_one(
                    {"_id": claim_id, "owner": owner, "until": now + lease}
                )
            except DuplicateKeyError:
                held = await self._claims.find_one({"_id": claim_id})
                if held is not None and held["until"] > now:
                    return None
                # That claimant's lease ran out (it died): remove its claim so claims do not
                # pile up, and take the next slot.
                if held is not None:
                    await self._claims.delete_one({"_id": claim_id, "until": held["until"]})
                continue
            # Not due for others while we hold it; due again if we die holding it.
            await self._schedule.update_one(
                {"_id": due.delivery_id}, {"$set": {"dueAt": now + lease}}
            )
            return Claim(claim_id, due)
        raise AssertionError("unreachable")  # pragma: no cover

    async def release(self, claim: Claim) -> None:
        await self._claims.delete_one({"_id": claim.claim_id})

    async def record_attempt(
        self, delivery_id: str, attempt: Attempt, *, status: DeliveryStatus
    ) -> None:
        """Append to the log and set the outcome: the write that makes an attempt count."""
        await self._deliveries.update_one(
            {"_id": delivery_id},
            {
                "$push": {"attempts": _attempt_doc(attempt)},
                "$set": {"status": status.value, "nextAttemptAt": attempt.next_attempt_at},
            },
        )

    async def reschedule(self, due: Due, *, at: datetime) -> None:
        """Schedule the attempt after `due`."""
        await self._schedule.update_one(
            {"_id": due.delivery_id},
            {"$set": {"dueAt": at, "attempt": due.attempt + 1, "position": due.position + 1}},
        )

    async def unschedule(self, delivery_id: str) -> None:
        await self._schedule.delete_one({"_id": delivery_id})

    async def redeliver(self, delivery: Delivery, *, now: datetime) -> Delivery:
        """Start a new round of attempts now (same `webhook-id`). Only a finished delivery
        can be redelivered; a pending one raises `DeliveryConflict`."""
        if delivery.status == DeliveryStatus.PENDING:
            raise DeliveryConflict(delivery.delivery_id)
        # Schedule first: a crash before the status write still makes the attempt, and the
        # attempt's own write sets the status.
        await self._schedule.update_one(
            {"_id": delivery.delivery_id},
            {
                "$set": {
                    "dueAt": now,
                    "attempt": len(delivery.attempts) + 1,
                    "position": 0,
                    "host": endpoint_host(delivery.url),
                }
            },
            upsert=True,
        )
        await self._deliveries.update_one(
            {"_id": delivery.delivery_id},
            {"$set": {"status": DeliveryStatus.PENDING.value, "nextAttemptAt": now}},
        )
        updated = await self.get(delivery.delivery_id)
        assert updated is not None
        return updated
