"""The real servers behave as the services rely on them to (DESIGN.md §6, §7, §9)."""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import urllib.request
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from devstack.api import Endpoints
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError
from storage import mongo
from storage.assets import AssetStore
from storage.settings import S3Settings

pytestmark = pytest.mark.integration


async def test_kafka_round_trip_with_acks_all_and_idempotence(stack: Endpoints) -> None:
    topic = f"test.roundtrip.{secrets.token_hex(4)}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        sent = {f"run_{i}".encode(): secrets.token_bytes(32) for i in range(10)}
        for key, value in sent.items():
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_bootstrap_servers,
        group_id=f"test-{secrets.token_hex(4)}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        received: dict[bytes, bytes] = {}
        async with asyncio.timeout(30):
            while len(received) < len(sent):
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    received.update({r.key: r.value for r in records if r.key})
    finally:
        await consumer.stop()
    assert received == sent


async def test_unique_index_rejects_duplicates_and_upsert_returns_the_new_document(
    stack: Endpoints,
) -> None:
    client = mongo.connect(stack.mongodb_url, app_name="tests")
    try:
        coll = client[stack.mongodb_database][f"test_{secrets.token_hex(4)}"]
        await coll.create_index([("tenantId", 1), ("key", 1)], unique=True)
        await coll.insert_one({"tenantId": "t", "key": "k", "n": 1})
        with pytest.raises(DuplicateKeyError):
            await coll.insert_one({"tenantId": "t", "key": "k", "n": 2})

        created = await coll.find_one_and_update(
            {"tenantId": "t", "key": "fresh"},
            {"$setOnInsert": {"createdBy": "test"}, "$inc": {"n": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert created is not None
        assert (created["key"], created["n"], created["createdBy"]) == ("fresh", 1, "test")
        again = await coll.find_one_and_update(
            {"tenantId": "t", "key": "fresh"},
            {"$setOnInsert": {"createdBy": "other"}, "$inc": {"n": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert again is not None
        assert (again["_id"], again["n"], again["createdBy"]) == (created["_id"], 2, "test")
        await coll.drop()
    finally:
        await client.close()


def _store(stack: Endpoints) -> AssetStore:
    settings = S3Settings(
        s3_endpoint=stack.s3_endpoint,
        s3_public_endpoint=stack.s3_public_endpoint,
        s3_access_key=stack.s3_access_key,
        s3_secret_key=stack.s3_secret_key,  # type: ignore[arg-type]
        s3_region=stack.s3_region,
    )
    return AssetStore(settings.s3_config())


async def test_presigned_get_over_http_returns_the_stored_bytes(stack: Endpoints) -> None:
    store = _store(stack)
    data = os.urandom(200_000)
    ref = await store.put(
        stack.s3_outputs_bucket,
        f"tests/{secrets.token_hex(6)}.bin",
        data,
        content_type="application/octet-stream",
    )
    url = store.presign(ref, expires=timedelta(minutes=5))
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
    assert body == data


async def test_a_wrong_secret_is_refused(stack: Endpoints) -> None:
    settings = S3Settings(
        s3_endpoint=stack.s3_endpoint,
        s3_access_key=stack.s3_access_key,
        s3_secret_key="not-the-secret",  # type: ignore[arg-type]
    )
    with pytest.raises(Exception, match=r"(?i)signature|denied|invalid|forbidden"):
        await AssetStore(settings.s3_config()).ping()


async def test_multipart_upload_of_12_mib_reads_back_whole(stack: Endpoints) -> None:
    from minio import Minio

    store = _store(stack)
    data = os.urandom(12 * 1024 * 1024)
    key = f"tests/multipart-{secrets.token_hex(6)}.bin"
    host = stack.s3_endpoint.split("://", 1)[1]
    client = Minio(
        host,
        access_key=stack.s3_access_key,
        secret_key=stack.s3_secret_key,
        secure=stack.s3_endpoint.startswith("https"),
        region=stack.s3_region,
    )
    # Unknown length with a 5 MiB part size forces the SDK into a multipart upload (3 parts).
    result = await asyncio.to_thread(
        client.put_object,
        stack.s3_outputs_bucket,
        key,
        io.BytesIO(data),
        -1,
        part_size=5 * 1024 * 1024,
    )
    assert result.etag.endswith("-3"), f"not a 3-part multipart upload: etag {result.etag}"
    assert await store.get(f"s3://{stack.s3_outputs_bucket}/{key}") == data


async def test_an_asset_of_another_tenant_reads_as_not_found(stack: Endpoints) -> None:
    from storage.assets import AssetNotFound, owned_by

    store = _store(stack)
    ref = await store.put(
        stack.s3_uploads_bucket,
        f"alpha/{secrets.token_hex(6)}.bin",
        b"secret",
        content_type="application/octet-stream",
        metadata=owned_by("alpha"),
    )
    assert await store.get(ref, tenant_id="alpha") == b"secret"
    with pytest.raises(AssetNotFound):
        await store.get(ref, tenant_id="beta")
