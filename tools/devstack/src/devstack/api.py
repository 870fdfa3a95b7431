"""The Python API for test fixtures and other tools."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from devstack import envfile, stack
from devstack.component import Say
from devstack.settings import Settings


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap_servers: str
    mongodb_url: str
    mongodb_database: str
    s3_endpoint: str
    s3_public_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    s3_region: str
    s3_outputs_bucket: str
    s3_uploads_bucket: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Endpoints:
        """From ``KAFKA_BOOTSTRAP_SERVERS``, ``MONGODB_URL``, ... (KeyError if one is missing)."""
        return cls(**{f.name: env[f.name.upper()] for f in dataclasses.fields(cls)})

    def as_env(self) -> dict[str, str]:
        return {f.name.upper(): str(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _quiet(_: str) -> None:
    return None


def ensure_up(partitions: int | None = None, say: Say = _quiet) -> Endpoints:
    """Bring the local stack up if needed (idempotent, ~1 s when it already runs).

    ``partitions`` overrides ``DEVSTACK_KAFKA_PARTITIONS`` for topics created now. Raises
    ``devstack.errors.StackError`` naming each component that failed.
    """
    settings = Settings.from_env()
    if partitions is not None:
        settings = dataclasses.replace(settings, partitions=partitions)
    stack.up(settings, say)
    return Endpoints.from_env(stack.endpoint_values(settings))


async def ensure_up_async(partitions: int | None = None) -> Endpoints:
    """``ensure_up`` without blocking the running event loop."""
    return await asyncio.to_thread(ensure_up, partitions)


def ensure_topics(prefix: str) -> list[str]:
    """Create the registry's topics in the namespace `prefix` (see `KAFKA_TOPIC_PREFIX`),
    with the stack's partition count; the names created."""
    from devstack.kafka import ensure_topics as create

    settings = Settings.from_env()
    return asyncio.run(create(settings, settings.partitions, prefix))


def read_env() -> dict[str, str]:
    """The ``.stack/env`` file as a dict ({} when the stack was never brought up)."""
    return envfile.read_env_file(Settings.from_env().env_file)


def stop(purge: bool = False) -> None:
    stack.down(Settings.from_env(), purge=purge, say=_quiet)
