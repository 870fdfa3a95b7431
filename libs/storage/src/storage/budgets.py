"""The descendants budget of a root run: at most `limit` runs started below it, at every depth.

Runs below one root are handled concurrently by different orchestrator instances, so the count
must be shared and taken atomically. A conditional `$inc` is not atomic on every server we
support (FerretDB's updates are read-then-write, see `storage.runs`), so the budget is a set of
numbered slots, `run_budgets/{root}/{k}` for `k < limit`, each taken by inserting it: a unique
`_id` insert is atomic everywhere, so no more than `limit` slots can ever exist for a root,
however many writers race. A slot names the child run that took it, so taking again for the
same child (a redelivered action: child run ids are deterministic) takes nothing more.

The slots of a root share an `_id` prefix: counting and finding them walks the `_id` index, no
other index is needed.
"""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.mongo import Document


def _slots_of(root_run_id: str) -> Document:
    # "/" sorts just before "0": every `{root}/{k}` and nothing of another root.
    return {"_id": {"$gte": f"{root_run_id}/", "$lt": f"{root_run_id}0"}}


class RunBudgets:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._slots = db.run_budgets

    async def take(self, root_run_id: str, child_run_id: str, limit: int, now: datetime) -> bool:
        """Take a slot of `root_run_id`'s budget for `child_run_id`; False when all `limit`
        are taken (by other children). Idempotent per child."""
        slots = _slots_of(root_run_id)
        if await self._slots.find_one({**slots, "child": child_run_id}, {"_id": 1}):
            return True
        # Start at the count: slots below it are (nearly always) taken already.
        for k in range(await self._slots.count_documents(slots), limit):
            try:
                await self._slots.insert_one(
                    {"_id": f"{root_run_id}/{k}", "child": child_run_id, "takenAt": now}
                )
            except DuplicateKeyError:
                continue  # another child took slot k meanwhile: try the next
            return True
        return False

    async def taken(self, root_run_id: str) -> int:
        """Slots taken below `root_run_id` (runs started below it, or being started)."""
        return await self._slots.count_documents(_slots_of(root_run_id))
