"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bus.startup import kafka_ready
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from storage import mongo

from ingress.problems import problem_response
from ingress.runtime import RuntimeDep

router = APIRouter(tags=["health"])

CHECK_TIMEOUT = 3.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


async def _check(check: Callable[[], Awaitable[object]]) -> str | None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await check()
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g} s"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@router.get("/readyz", response_model=None)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Kafka, MongoDB and S3 answer; 503 naming the failing dependency otherwise."""
    names = ("kafka", "mongodb", "s3")
    results = await asyncio.gather(
        _check(lambda: kafka_ready(runtime.broker, within=CHECK_TIMEOUT)),
        _check(lambda: mongo.ping(runtime.db)),
        _check(runtime.store.ping),
    )
    checks = {n: (r or "ok") for n, r in zip(names, results, strict=True)}
    failing = [n for n, r in zip(names, results, strict=True) if r]
    if failing:
        detail = "; ".join(f"{n}: {checks[n]}" for n in failing)
        response = problem_response(503, f"not ready: {detail}", kind="not-ready")
        return response
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
