"""RFC 9457 problem details: the one error shape of the API."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus

import urllib3.exceptions
from aiokafka.errors import KafkaError
from bus import metrics
from contracts.api import Problem, ProblemItem
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure, ExecutionTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingress.allow import allow_header

log = logging.getLogger("ingress")

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://docs.sprello.dev/workflow-api/problems/"


class ProblemError(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        errors: Sequence[ProblemItem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.errors = list(errors) if errors is not None else None
        self.headers = headers


def problem_response(
    status: int,
    detail: str | None,
    *,
    kind: str | None = None,
    errors: list[ProblemItem] | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=TYPE_BASE + kind if kind else "about:blank",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=instance,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(mode="json", by_alias=True, exclude_none=True),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def _pointer(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return "/" + "/".join(parts)


# A dependency that is down or does not answer: the caller's request was fine and may be
# retried as is, so 503 with Retry-After, naming the dependency but never the exception's text
# (addresses, credentials in URLs); the log has the details.
UNAVAILABLE: tuple[tuple[type[Exception], str], ...] = (
    (ConnectionFailure, "MongoDB"),  # unreachable, timed out, no primary
    (ExecutionTimeout, "MongoDB"),
    (KafkaError, "Kafka"),
    (urllib3.exceptions.HTTPError, "S3"),  # the minio SDK's connection and retry errors
    (TimeoutError, "a dependency"),
)


def install(app: FastAPI, *, retry_after_seconds: int = 5) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        if exc.status == 429:  # every rate-limit and quota refusal passes here
            metrics.RATE_LIMITED.labels(exc.kind).inc()
        return problem_response(
            exc.status,
            exc.detail,
            kind=exc.kind,
            errors=exc.errors,
            instance=request.url.path,
            headers=exc.headers,
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [ProblemItem(path=_pointer(e["loc"]), message=e["msg"]) for e in exc.errors()]
        return problem_response(
            422,
            "the request does not have the expected shape",
            kind="invalid-request",
            errors=errors,
            instance=request.url.path,
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405 and headers is not None:
            # Every method of the path, not only the first matching route's (see ingress.allow).
            headers["Allow"] = allow_header(request, headers.get("Allow")) or ""
        return problem_response(
            exc.status_code,
            str(exc.detail),
            instance=request.url.path,
            headers=headers,
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Our failure, never the caller's: logged with the request, answered as a problem.
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return problem_response(
            500,
            "an internal error occurred; it has been logged, please retry",
            kind="internal",
            instance=request.url.path,
        )

    async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
        name = next((n for t, n in UNAVAILABLE if isinstance(exc, t)), "a dependency")
        log.warning(
            "%s %s: %s unavailable: %s: %s",
            request.method,
            request.url.path,
            name,
            type(exc).__name__,
            exc,
        )
        return problem_response(
            503,
            f"{name} is unavailable at the moment; retry after the seconds in Retry-After",
            kind="unavailable",
            instance=request.url.path,
            headers={"Retry-After": str(retry_after_seconds)},
        )

    for exc_type, _ in UNAVAILABLE:
        app.add_exception_handler(exc_type, on_unavailable)
    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
