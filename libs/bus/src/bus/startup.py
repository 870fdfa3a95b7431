"""Failing fast at service start: a dependency that does not answer stops the process with a
message naming it, instead of a service that looks alive and does nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from faststream.kafka import KafkaBroker

log = logging.getLogger("startup")


class DependencyUnavailable(RuntimeError):
    pass


async def require(
    name: str, where: str, check: Callable[[], Awaitable[object]], within: float
) -> None:
    try:
        async with asyncio.timeout(within):
            await check()
    except Exception as exc:
        reason = f"no answer within {within:.0f} s" if isinstance(exc, TimeoutError) else exc
        raise DependencyUnavailable(f"{name} unreachable at {where}: {reason}") from exc
    log.info("%s reachable at %s", name, where)


async def kafka_ready(broker: KafkaBroker, within: float = 5.0) -> None:
    """Raise unless the Kafka cluster answers a metadata request within `within` seconds."""
    await broker.connect()
    if not await broker.ping(timeout=within):
        raise ConnectionError("cluster metadata request failed")
