"""Reading a JSON body with a size limit, so every malformed or oversized request gets a
problem a person can act on (400 / 413 / 422) instead of a framework default."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from contracts.api import ProblemItem
from fastapi import Request
from pydantic import BaseModel, ValidationError

from ingress.problems import ProblemError

M = TypeVar("M", bound=BaseModel)


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProblemError(413, f"the body is larger than {limit} bytes", kind="body-too-large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, f"the body is larger than {limit} bytes", kind="body-too-large")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> Any:
    raw = await read_limited(request, limit)
    if not raw.strip():
        raise ProblemError(400, "the body is empty; send a JSON object", kind="malformed-json")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = (
            f" at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise ProblemError(
            400, f"the body is not valid JSON{where}: {exc}", kind="malformed-json"
        ) from exc


def pointer(loc: tuple[int | str, ...]) -> str:
    return "/" + "/".join(str(p) for p in loc)


def parse(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise ProblemError(422, "the body must be a JSON object", kind="invalid-request")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [ProblemItem(path=pointer(e["loc"]), message=e["msg"]) for e in exc.errors()]
        raise ProblemError(
            422, "the request body is not valid", kind="invalid-request", errors=errors
        ) from exc
