"""Streamed uploads: one part in memory at a time, nothing stored when the stream fails."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from devstack.api import Endpoints
from storage.assets import PART_SIZE, AssetNotFound, AssetStore, S3Config, _StreamReader

MIB = 1024 * 1024


class Refused(Exception):
    pass


async def chunks(
    total: int, *, chunk: int = 64 * 1024, fail_after: int | None = None
) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        if fail_after is not None and sent >= fail_after:
            raise Refused(f"refused after {sent} bytes")
        size = min(chunk, total - sent)
        yield bytes([sent // chunk % 256]) * size
        sent += size


async def test_the_reader_fills_each_read_from_the_event_loop() -> None:
    reader = _StreamReader(chunks(300_000, chunk=1000), asyncio.get_running_loop())

    def read_all() -> list[int]:
        sizes = []
        while data := reader.read(128 * 1024):
            sizes.append(len(data))
        return sizes

    assert await asyncio.to_thread(read_all) == [131_072, 131_072, 37_856]
    assert reader.count == 300_000


async def test_the_readers_source_failing_reaches_the_reading_thread() -> None:
    reader = _StreamReader(chunks(10_000, chunk=100, fail_after=5_000), asyncio.get_running_loop())
    with pytest.raises(Refused):
        await asyncio.to_thread(reader.read, 10_000)


@pytest.fixture
async def store(stack: Endpoints) -> AssetStore:
    s = AssetStore(
        S3Config(
            endpoint=stack.s3_endpoint,
            public_endpoint=stack.s3_public_endpoint,
            access_key=stack.s3_access_key,
            secret_key=stack.s3_secret_key,
            region=stack.s3_region,
        )
    )
    await s.ensure_bucket(stack.s3_uploads_bucket)
    return s


@pytest.mark.integration
@pytest.mark.parametrize("length_known", [True, False])
async def test_a_streamed_upload_of_several_parts_is_stored_whole(
    store: AssetStore, stack: Endpoints, length_known: bool
) -> None:
    total = 2 * PART_SIZE + 12_345
    key = f"tests/{secrets.token_hex(6)}.bin"
    ref, size = await store.put_stream(
        stack.s3_uploads_bucket,
        key,
        chunks(total),
        length=total if length_known else None,
        content_type="application/octet-stream",
    )
    assert size == total
    data = await store.get(ref)
    assert len(data) == total
    assert data[:1] == b"\x00"
    assert data[-1:] == bytes([(total - 1) // (64 * 1024) % 256])


@pytest.mark.integration
@pytest.mark.parametrize("fail_after", [1 * MIB, PART_SIZE + MIB])
async def test_a_stream_that_fails_stores_nothing(
    store: AssetStore, stack: Endpoints, fail_after: int
) -> None:
    # Before the first part is complete (a single PUT never sent) and after it (a multipart
    # upload started, then aborted).
    key = f"tests/{secrets.token_hex(6)}.bin"
    with pytest.raises(Refused):
        await store.put_stream(
            stack.s3_uploads_bucket,
            key,
            chunks(3 * PART_SIZE, fail_after=fail_after),
            length=None,
            content_type="application/octet-stream",
        )
    with pytest.raises(AssetNotFound):
        await store.get(f"s3://{stack.s3_uploads_bucket}/{key}")
