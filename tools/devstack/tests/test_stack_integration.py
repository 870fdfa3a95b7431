"""The local stack comes up (or is already up) and every server is really healthy."""

from __future__ import annotations

import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from bus.topics import Topic
from devstack import stack
from devstack.api import Endpoints, ensure_up, read_env
from devstack.mongodb import MongoDB
from devstack.settings import Settings
from minio import Minio
from pymongo import MongoClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def endpoints() -> Endpoints:
    return ensure_up()


def test_every_component_reports_healthy_with_a_version(endpoints: Endpoints) -> None:
    settings = Settings.from_env()
    statuses = stack.status(settings)
    expected = ["kafka", "mongodb", "s3"]
    if MongoDB(settings).backend() == "ferretdb":
        expected.insert(1, "postgres")
    assert [s.name for s in statuses] == expected
    for status in statuses:
        assert status.healthy, f"{status.name}: {status.detail}"
        assert status.pid is not None
        assert status.version not in ("", "-")


def test_the_env_file_matches_the_returned_endpoints(endpoints: Endpoints) -> None:
    env = read_env()
    assert Endpoints.from_env(env) == endpoints
    assert env["MONGODB_DATABASE"] == "workflow"
    assert env["S3_REGION"] == "us-east-1"


def test_a_second_ensure_up_is_quick_and_changes_nothing(endpoints: Endpoints) -> None:
    started = time.monotonic()
    assert ensure_up() == endpoints
    assert time.monotonic() - started < 15


async def test_kafka_has_every_registry_topic(endpoints: Endpoints) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=endpoints.kafka_bootstrap_servers)
    await admin.start()
    try:
        topics = set(await admin.list_topics())
    finally:
        await admin.close()
    assert {t.value for t in Topic} <= topics


def test_mongodb_answers_ping(endpoints: Endpoints) -> None:
    client: MongoClient[dict[str, object]] = MongoClient(
        endpoints.mongodb_url, serverSelectionTimeoutMS=5000
    )
    try:
        assert client.admin.command("ping")["ok"] == 1.0
    finally:
        client.close()


def test_s3_lists_both_buckets_with_the_credentials(endpoints: Endpoints) -> None:
    client = Minio(
        endpoints.s3_endpoint.removeprefix("http://"),
        access_key=endpoints.s3_access_key,
        secret_key=endpoints.s3_secret_key,
        region=endpoints.s3_region,
        secure=False,
    )
    names = {b.name for b in client.list_buckets()}
    assert {endpoints.s3_outputs_bucket, endpoints.s3_uploads_bucket} <= names
