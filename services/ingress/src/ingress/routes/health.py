"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bus.startup import kafka_ready
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from storage import mongo

from ingress.auth import require_metrics
from ingress.problems import problem_response
from ingress.runtime import RuntimeDep

log = logging.getLogger("ingress.health")
router = APIRouter(tags=["health"])

CHECK_TIMEOUT = 3.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


async def _check(name: str, check: Callable[[], Awaitable[object]]) -> str | None:
    # The answer names the dependency and what kind of failure, never the exception's text
    # (it can carry addresses and credentials); the log has it.
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await check()
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g} s"
    except Exception as exc:
        log.warning("readiness: %s failed: %s: %s", name, type(exc).__name__, exc)
        return "unreachable"
    return None


@router.get(
    "/readyz", response_model=None, responses={503: {"description": "A dependency is not ready"}}
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Kafka, MongoDB and S3 answer; 503 naming the failing dependency otherwise."""
    names = ("kafka", "mongodb", "s3")
    results = await asyncio.gather(
        _check("kafka", lambda: kafka_ready(runtime.broker, within=CHECK_TIMEOUT)),
        _check("mongodb", lambda: mongo.ping(runtime.db)),
        _check("s3", runtime.store.ping),
    )
    checks = {n: (r or "ok") for n, r in zip(names, results, strict=True)}
    failing = [n for n, r in zip(names, results, strict=True) if r]
    if failing:
        detail = "; ".join(f"{n}: {checks[n]}" for n in failing)
        return problem_response(
            503,
            f"not ready: {detail}",
            kind="not-ready",
            headers={"Retry-After": str(runtime.settings.dependency_retry_after_seconds)},
        )
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics", dependencies=[Depends(require_metrics)])
async def metrics() -> Response:
    """Prometheus metrics: `Authorization: Bearer` the metrics token or the admin key."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
