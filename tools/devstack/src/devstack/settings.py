"""Ports, credentials and timeouts of the local stack, read from ``DEVSTACK_*`` variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devstack.paths import cache_dir, state_dir

HOST = "127.0.0.1"
ACCESS_KEY = "devstack"
SECRET_KEY = "devstack-secret-key"  # dev only
REGION = "us-east-1"
DATABASE = "workflow"
OUTPUTS_BUCKET = "workflow-outputs"
UPLOADS_BUCKET = "workflow-uploads"


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    cache_dir: Path
    kafka_port: int = 39092
    kafka_controller_port: int = 39093
    mongodb_port: int = 37017
    postgres_port: int = 37432
    s3_port: int = 38333
    partitions: int = 6
    health_timeout: float = 120.0
    stop_timeout: float = 30.0
    mongodb_backend: str = "auto"  # auto | mongod | ferretdb
    s3_backend: str = "auto"  # auto | minio | seaweedfs
    host: str = HOST
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION
    database: str = DATABASE
    outputs_bucket: str = OUTPUTS_BUCKET
    uploads_bucket: str = UPLOADS_BUCKET

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def env_file(self) -> Path:
        return self.state_dir / "env"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        kafka_port = _int(env, "DEVSTACK_KAFKA_PORT", 39092)
        return cls(
            state_dir=state_dir(),
            cache_dir=cache_dir(),
            kafka_port=kafka_port,
            kafka_controller_port=_int(env, "DEVSTACK_KAFKA_CONTROLLER_PORT", kafka_port + 1),
            mongodb_port=_int(env, "DEVSTACK_MONGODB_PORT", 37017),
            postgres_port=_int(env, "DEVSTACK_POSTGRES_PORT", 37432),
            s3_port=_int(env, "DEVSTACK_S3_PORT", 38333),
            partitions=_int(env, "DEVSTACK_KAFKA_PARTITIONS", 6),
            health_timeout=float(_int(env, "DEVSTACK_HEALTH_TIMEOUT", 120)),
            stop_timeout=float(_int(env, "DEVSTACK_STOP_TIMEOUT", 30)),
            mongodb_backend=_choice(env, "DEVSTACK_MONGODB_BACKEND", ("mongod", "ferretdb")),
            s3_backend=_choice(env, "DEVSTACK_S3_BACKEND", ("minio", "seaweedfs")),
        )


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower() or "auto"
    if raw != "auto" and raw not in choices:
        raise ValueError(f"{name} must be one of auto, {', '.join(choices)}; got {raw!r}")
    return raw
