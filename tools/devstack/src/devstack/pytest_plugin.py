"""Pytest fixtures that give tests the real servers.

The stack is resolved once per session, in this order:
1. endpoints given by environment variables (KAFKA_BOOTSTRAP_SERVERS, MONGODB_URL, S3_ENDPOINT,
   S3_ACCESS_KEY, S3_SECRET_KEY; the rest have defaults);
2. testcontainers, when a Docker engine answers;
3. the local stack of `python -m devstack up`.
A stack that cannot start is an error, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from devstack.api import Endpoints, ensure_up

REQUIRED = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "MONGODB_URL",
    "S3_ENDPOINT",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
)


def _from_environment() -> Endpoints | None:
    env = os.environ
    if not all(env.get(k) for k in REQUIRED):
        return None
    return Endpoints(
        kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
        mongodb_url=env["MONGODB_URL"],
        mongodb_database=env.get("MONGODB_DATABASE", "workflow"),
        s3_endpoint=env["S3_ENDPOINT"],
        s3_public_endpoint=env.get("S3_PUBLIC_ENDPOINT", env["S3_ENDPOINT"]),
        s3_access_key=env["S3_ACCESS_KEY"],
        s3_secret_key=env["S3_SECRET_KEY"],
        s3_region=env.get("S3_REGION", "us-east-1"),
        s3_outputs_bucket=env.get("S3_OUTPUTS_BUCKET", "workflow-outputs"),
        s3_uploads_bucket=env.get("S3_UPLOADS_BUCKET", "workflow-uploads"),
    )


def docker_engine_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        probe = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@contextlib.contextmanager
def _containers() -> Iterator[Endpoints]:  # pragma: no cover - needs a Docker engine
    from testcontainers.kafka import KafkaContainer
    from testcontainers.minio import MinioContainer
    from testcontainers.mongodb import MongoDbContainer

    with (
        KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka,
        MongoDbContainer("mongo:8") as mongo,
        MinioContainer("minio/minio:RELEASE.2025-04-22T22-12-26Z") as minio,
    ):
        cfg = minio.get_config()
        s3 = f"http://{cfg['endpoint']}"
        yield Endpoints(
            kafka_bootstrap_servers=kafka.get_bootstrap_server(),
            mongodb_url=mongo.get_connection_url(),
            mongodb_database="workflow",
            s3_endpoint=s3,
            s3_public_endpoint=s3,
            s3_access_key=cfg["access_key"],
            s3_secret_key=cfg["secret_key"],
            s3_region="us-east-1",
            s3_outputs_bucket="workflow-outputs",
            s3_uploads_bucket="workflow-uploads",
        )


@pytest.fixture(scope="session")
def stack() -> Iterator[Endpoints]:
    """The real Kafka, MongoDB and S3 servers for this test session."""
    given = _from_environment()
    if given is not None:
        yield given
    elif docker_engine_answers():  # pragma: no cover - needs a Docker engine
        with _containers() as endpoints:
            yield endpoints
    else:
        yield ensure_up()
