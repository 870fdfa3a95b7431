"""The descendants budget of a root run: at most `limit` runs started below it, at every depth.

Runs below one root are handled concurrently by different orchestrator instances, so the count
must be shared and taken atomically. A conditional `$inc` is not atomic on every server we
support (FerretDB's updates are read-then-write, see `storage.runs`), so the budget is a set of
numbered slots, `run_budgets/{root}/{k}` for `k < limit`, each taken by inserting it: a unique
`_id` insert is atomic everywhere, so no more than `limit` slots can ever exist for a root,
however many writers race. A slot names the child run that took it, so taking again for the
same child (a redelivered action: child run ids are deterministic) takes nothing more.

A root's slots are found by an equality on `root` (index `run_budgets.root`): FerretDB serves
equalities from indexes but filters ranges after fetching, so an `_id` prefix range would read
every slot of every root. One query reads a root's slots (at most `limit`, a few bytes each).
"""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.mongo import Document


class RunBudgets:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._slots = db.run_budgets

    async def take(self, root_run_id: str, child_run_id: str, limit: int, now: datetime) -> bool:
        """Take a slot of `root_run_id`'s budget for `child_run_id`; False when all `limit`
        are taken (by other children). Idempotent per child."""
        taken = await self._slots.find({"root": root_run_id}, {"child": 1}).to_list()
        if any(slot.get("child") == child_run_id for slot in taken):
            return True
        # Start at the count: slots below it are taken already (slots are only ever added,
        # each after every lower one was found taken).
        for k in range(len(taken), limit):
            try:
                await self._slots.insert_one(
                    {
                        "_id": f"{root_run_id}/{k}",
                        "root": root_run_id,
                        "child": child_run_id,
                        "takenAt": now,
                    }
                )
            except DuplicateKeyError:
                continue  # another child took slot k meanwhile: try the next
            return True
        return False

    async def taken(self, root_run_id: str) -> int:
        """Slots taken below `root_run_id` (runs started below it, or being started)."""
        return await self._slots.count_documents({"root": root_run_id})
