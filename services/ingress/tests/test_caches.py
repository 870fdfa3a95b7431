"""What ingress reads on every request is read once: keys and the latest version for a while,
versions for good, and a registration through this process is seen at once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ingress.caches import CachedKeys, CachedWorkflows
from storage.keys import KeyGrant
from storage.workflows import WorkflowRecord


def _record(version: int) -> WorkflowRecord:
    return WorkflowRecord(
        tenant_id="t",
        workflow_id="w",
        version=version,
        name="w",
        definition_json="{}",
        definition_hash=f"h{version}",
        created_at=datetime.now(UTC),
    )


class Workflows:
    def __init__(self) -> None:
        self.latest_version = 1
        self.reads = 0

    async def get(self, tenant_id: str, workflow_id: str, version: int) -> Any:
        self.reads += 1
        return _record(version) if version <= self.latest_version else None

    async def latest(self, tenant_id: str, workflow_id: str) -> Any:
        self.reads += 1
        return _record(self.latest_version)


class Keys:
    def __init__(self) -> None:
        self.reads = 0

    async def grant(self, key: str) -> KeyGrant | None:
        self.reads += 1
        return KeyGrant("t", "key_1", frozenset({"runs:read"})) if key == "good" else None


async def test_a_key_and_an_unknown_key_are_read_once_per_ttl() -> None:
    keys = Keys()
    cached = CachedKeys(keys, ttl=60)  # type: ignore[arg-type]
    assert [await cached.tenant_of("good") for _ in range(3)] == ["t", "t", "t"]
    assert keys.reads == 1
    # A client retrying a wrong key costs one read per TTL, not one per request. (A key
    # just created cannot have been tried before, so it still works at once.)
    assert await cached.tenant_of("bad") is None
    assert await cached.tenant_of("bad") is None
    assert keys.reads == 2


async def test_a_key_whose_entry_expires_while_it_is_looked_up_is_read_again() -> None:
    # The clock moves on every look at it: an entry that a membership test finds alive can
    # be expired by the time it is read (schemathesis saw that as a 500).
    now = [0.0]

    def clock() -> float:
        now[0] += 0.6
        return now[0]

    keys = Keys()
    cached = CachedKeys(keys, ttl=1, timer=clock)  # type: ignore[arg-type]
    for _ in range(20):
        assert await cached.tenant_of("good") == "t"
        assert await cached.tenant_of("bad") is None


async def test_versions_are_read_once_and_a_new_version_is_seen_after_forget() -> None:
    repo = Workflows()
    cached = CachedWorkflows(repo, ttl=60)  # type: ignore[arg-type]
    first = await cached.latest("t", "w")
    assert first is not None
    assert first.version == 1
    assert await cached.get("t", "w", 1) == first, "the latest version is also kept by number"
    assert repo.reads == 1
    repo.latest_version = 2
    cached.forget("t", "w")  # what registering through this process does
    second = await cached.latest("t", "w")
    assert second is not None
    assert second.version == 2
    assert await cached.get("t", "w", 3) is None
    assert await cached.get("t", "w", 3) is None
    assert repo.reads == 4, "a missing version is not remembered as missing"
