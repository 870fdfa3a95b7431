"""Run records, and the claims that make every change of a run safe against a second writer.

The orchestrator is the only writer of a run after creation, but during a rebalance two
consumers may briefly hold the same run. A change from revision ``r`` to ``r + 1`` costs two
round trips on every server we support:

1. insert ``run_claims/{runId}@{r+1}`` holding the new record and the actions it decided (its
   outbox). A unique ``_id`` insert is atomic everywhere, so of two writers deciding on top of
   the same revision exactly one wins; FerretDB's updates are read-then-write, so the claim is
   what makes us correct there.
2. update the run where ``{_id, revision: r}``: a writer deciding on a stale copy (its claim's
   ``_id`` may already have been removed) matches nothing, removes its own claim and re-reads.

After the actions are carried out the claim is removed (in batches, see ``release``). A claim
left behind by a writer that died is found by the next writer (its insert collides, or it
looks when it loads the run cold) or by the sweeper (``overdue_claims``), and is then rolled
forward or carried out again: every action is idempotent. So the claims collection holds only
changes in flight; nothing in it grows with history.

The run's pending timers live on the run itself (``timers``, and ``dueAt``, the earliest of
them), written in the same update as the state they belong to. The sweeper asks for live runs
whose ``dueAt`` has passed (``due_runs``): an index walk on MongoDB, and on FerretDB an indexed
equality on ``status`` narrowed by time; a finished run is never looked at again.
"""

from __future__ import annotations

import builtins
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.run import RerunOf
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.ids import time_ordered_id
from storage.mongo import Document

ID_CLOCK_MARGIN = timedelta(minutes=1)
"""How much later than its `createdAt` a run's id may have been minted: runs stored before
ids were minted from the creation time got theirs a moment after it, and a child run's
`createdAt` is the orchestrator's clock while its id comes from the ingress's."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

LIVE_STATUSES = ("queued", "running")
"""The statuses a run can have while something is still due for it."""


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    tenant_id: str
    workflow_id: str
    workflow_version: int
    status: str
    revision: int
    created_at: datetime
    state_json: str
    """The domain's run state, serialized: client JSON (inputs, outputs) is stored opaque."""
    metadata_json: str = "{}"
    assets_json: str = "{}"
    """s3 ref → asset description, for outputs of steps."""
    traceparent: str | None = None
    """The W3C `traceparent` the run started under: its hops that continue no message (timers,
    sweeper nudges, child runs, carry-outs after a restart) continue this trace."""
    webhook_json: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    timers_json: str = "[]"
    """The run's pending timers (``[{kind, nodeId, attempt, dueAt}]``)."""
    due_at: datetime | None = None
    """When the sweeper should look at the run: its earliest timer, or, while it is queued,
    when it should have started. None when nothing is due."""
    claim: str | None = None
    """The nonce of the claim that wrote this revision (tells a claim that was applied from
    one a stale writer left behind)."""
    rerun_of: RerunOf | None = None
    """The run (and node) this one reruns, if it is a rerun."""

    def evolve(self, **changes: Any) -> RunRecord:
        return replace(self, **changes)


def to_document(r: RunRecord) -> Document:
    return {
        "_id": r.run_id,
        "tenantId": r.tenant_id,
        "workflowId": r.workflow_id,
        "workflowVersion": r.workflow_version,
        "status": r.status,
        "revision": r.revision,
        "createdAt": r.created_at,
        "startedAt": r.started_at,
        "completedAt": r.completed_at,
        "state": r.state_json,
        "metadata": r.metadata_json,
        "assets": r.assets_json,
        "traceparent": r.traceparent,
        "webhook": r.webhook_json,
        "timers": r.timers_json,
        "dueAt": r.due_at,
        "claim": r.claim,
        "rerunOf": r.rerun_of.model_dump(by_alias=True) if r.rerun_of is not None else None,
    }


def from_document(d: Document) -> RunRecord:
    return RunRecord(
        run_id=d["_id"],
        tenant_id=d["tenantId"],
        workflow_id=d["workflowId"],
        workflow_version=d["workflowVersion"],
        status=d["status"],
        revision=d["revision"],
        created_at=d["createdAt"],
        started_at=d.get("startedAt"),
        completed_at=d.get("completedAt"),
        state_json=d["state"],
        metadata_json=d.get("metadata", "{}"),
        assets_json=d.get("assets", "{}"),
        traceparent=d.get("traceparent"),
        webhook_json=d.get("webhook"),
        timers_json=d.get("timers") or "[]",
        due_at=d.get("dueAt"),
        claim=d.get("claim"),
        rerun_of=RerunOf.model_validate(d["rerunOf"]) if d.get("rerunOf") else None,
    )


@dataclass(frozen=True)
class Claim:
    """A change of a run: the record it writes and the actions it must carry out."""

    run_id: str
    revision: int
    nonce: str
    record: RunRecord
    outbox_json: str
    due_at: datetime | None = None
    """Until then its writer may still be at work: nobody else rolls it forward."""

    @property
    def claim_id(self) -> str:
        return claim_id(self.run_id, self.revision)


def claim_id(run_id: str, revision: int) -> str:
    return f"{run_id}@{revision}"


def _claim_from(d: Document) -> Claim:
    return Claim(
        run_id=d["runId"],
        revision=d["revision"],
        nonce=d["nonce"],
        record=from_document({"_id": d["runId"], **d["record"]}),
        outbox_json=d["outbox"],
        due_at=d.get("dueAt"),
    )


def list_filter(
    *,
    tenant_id: str,
    workflow_id: str | None = None,
    status: str | None = None,
    before: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> Document:
    """The filter of `RunRepository.list`, walked newest first (`_id` descending).

    Equalities on top-level fields: FerretDB pushes exactly those down to PostgreSQL, where
    the GIN twin of `tenantId` (and of `workflowId`/`status`) selects the tenant's runs; on
    MongoDB the `tenant…_newest_first` indexes serve them and the sort. The time range is on
    `createdAt` itself (exact, to the millisecond dates are stored with), and
    `created_before` also bounds `_id`: a run's id is minted from its creation time (a child
    run's from its parent's, earlier still), so no id minted later than `created_before` plus
    `ID_CLOCK_MARGIN` can match, and MongoDB starts its index walk there instead of at the
    tenant's newest run."""
    query: Document = {"tenantId": tenant_id}
    if workflow_id is not None:
        query["workflowId"] = workflow_id
    if status is not None:
        query["status"] = status
    id_bounds = [before] if before is not None else []
    created: Document = {}
    if created_after is not None:
        created["$gte"] = created_after
    if created_before is not None:
        created["$lt"] = created_before
        if created_before < datetime.max.replace(tzinfo=UTC) - ID_CLOCK_MARGIN:
            ms = max((created_before + ID_CLOCK_MARGIN - EPOCH) // timedelta(milliseconds=1), -1)
            # The smallest id of the next millisecond: above every id minted up to then.
            id_bounds.append(time_ordered_id("run", ms + 1)[:16])
    if id_bounds:
        query["_id"] = {"$lt": min(id_bounds)}
    if created:
        query["createdAt"] = created
    return query


class RunRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._runs = db.runs
        self._claims = db.run_claims

    async def create(self, record: RunRecord) -> None:
        await self._runs.insert_one(to_document(record))

    async def get(self, run_id: str) -> RunRecord | None:
        doc = await self._runs.find_one({"_id": run_id})
        return from_document(doc) if doc else None

    async def get_for_tenant(self, run_id: str, tenant_id: str) -> RunRecord | None:
        record = await self.get(run_id)
        return record if record is not None and record.tenant_id == tenant_id else None

    async def list(
        self,
        *,
        tenant_id: str,
        workflow_id: str | None = None,
        status: str | None = None,
        before: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 20,
    ) -> list[RunRecord]:
        """Newest first: run ids are time-ordered, so `before` (a run id) is the cursor.
        `created_after` <= createdAt < `created_before` when given."""
        query = list_filter(
            tenant_id=tenant_id,
            workflow_id=workflow_id,
            status=status,
            before=before,
            created_after=created_after,
            created_before=created_before,
        )
        cursor = self._runs.find(query).sort("_id", -1).limit(limit)
        return [from_document(d) async for d in cursor]

    async def commit(
        self, record: RunRecord, *, base_revision: int, outbox_json: str, due_at: datetime
    ) -> Claim | None:
        """Write `record` over revision `base_revision`; None when another writer got there
        first (re-read the run, recover its claims and decide again). `due_at` is when the
        sweeper should look at a claim still not released by then."""
        nonce = secrets.token_hex(8)
        written = record.evolve(claim=nonce)
        claim = Claim(record.run_id, record.revision, nonce, written, outbox_json, due_at)
        doc = to_document(written)
        del doc["_id"]
        try:
            await self._claims.insert_one(
                {
                    "_id": claim.claim_id,
                    "runId": record.run_id,
                    "revision": record.revision,
                    "nonce": nonce,
                    "record": doc,
                    "outbox": outbox_json,
                    "dueAt": due_at,
                }
            )
        except DuplicateKeyError:
            return None
        if not await self._write(written, base_revision):
            # Another instance may have rolled our claim forward meanwhile: then the run is
            # ours and its actions are ours to carry out. Only a claim the run did not take
            # is withdrawn.
            current = await self._runs.find_one({"_id": record.run_id}, {"claim": 1})
            if current is not None and current.get("claim") == nonce:
                return claim
            await self._claims.delete_one({"_id": claim.claim_id, "nonce": nonce})
            return None
        return claim

    async def roll_forward(self, claim: Claim, base_revision: int) -> bool:
        """Write a claim's record that never reached the run (its writer died in between)."""
        return await self._write(claim.record, base_revision)

    async def _write(self, record: RunRecord, base_revision: int) -> bool:
        doc = to_document(record)
        del doc["_id"]
        result = await self._runs.update_one(
            {"_id": record.run_id, "revision": base_revision}, {"$set": doc}
        )
        return result.matched_count == 1

    async def claims(self, run_id: str) -> builtins.list[Claim]:
        """The run's claims not yet released, oldest first."""
        docs = await self._claims.find({"runId": run_id}).to_list()
        return sorted((_claim_from(d) for d in docs), key=lambda c: c.revision)

    async def release(self, claim_ids: builtins.list[str]) -> None:
        """Remove claims whose changes were written and carried out."""
        if len(claim_ids) == 1:
            await self._claims.delete_one({"_id": claim_ids[0]})
        elif claim_ids:
            await self._claims.delete_many({"_id": {"$in": claim_ids}})

    async def overdue_claims(
        self, now: datetime, *, limit: int = 200, skip: int = 0
    ) -> builtins.list[tuple[str, datetime]]:
        """Runs with a claim still held past its due time (a writer died or stalled),
        earliest first, page by page (`skip`)."""
        cursor = (
            self._claims.find({"dueAt": {"$lte": now}}, {"runId": 1, "dueAt": 1})
            .sort([("dueAt", 1), ("_id", 1)])
            .skip(skip)
            .limit(limit)
        )
        return [(d["runId"], d["dueAt"]) async for d in cursor]

    async def due_runs(
        self, now: datetime, *, limit: int = 200, skip: int = 0
    ) -> builtins.list[tuple[str, datetime]]:
        """Live runs whose due time has passed, with that time, earliest first, page by
        page (`skip`, per live status)."""
        due: builtins.list[tuple[str, datetime]] = []
        for status in LIVE_STATUSES:
            cursor = (
                self._runs.find({"status": status, "dueAt": {"$lte": now}}, {"dueAt": 1})
                .sort([("dueAt", 1), ("_id", 1)])
                .skip(skip)
                .limit(limit)
            )
            due += [(d["_id"], d["dueAt"]) async for d in cursor]
        return due
