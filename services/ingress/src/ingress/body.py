"""Reading a JSON body with a size limit, so every malformed or oversized request gets a
problem a person can act on (400 / 413 / 422) instead of a framework default."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from itertools import accumulate
from typing import Any, TypeVar

from contracts.api import ProblemItem
from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from workflow.limits import Limits, exceeded

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


async def read_json(request: Request, limits: Limits) -> Any:
    """The body as JSON, within ``limits``: every JSON body the ingress reads comes here."""
    raw = await read_limited(request, limits.max_body_bytes)
    if not raw.strip():
        raise ProblemError(400, "the body is empty; send a JSON object", kind="malformed-json")
    if len(raw) > _INLINE_BYTES:
        # A large body takes a noticeable time to scan and parse: off the event loop.
        return await run_in_threadpool(loads_limited, raw, limits)
    return loads_limited(raw, limits)


_INLINE_BYTES = 64 * 1024
"""Bodies up to this size are parsed on the event loop (well under a millisecond)."""


class _Refused(ValueError):
    """Raised from inside the JSON parser's hooks to stop at the first refused literal."""


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:[dD][89a-fA-F]|0000)")
_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")


def loads_limited(raw: bytes, limits: Limits) -> Any:
    """Parse JSON refusing (400) what would cost unbounded work or fail later with a 500.

    * nesting deeper than MAX_JSON_DEPTH: counted on the text before parsing, without
      recursion (``json.loads`` itself recurses and ends in ``RecursionError`` near 1,000);
    * a number literal longer than MAX_NUMBER_CHARS (int() of 5,000 digits raises, and a
      huge exponent turns into infinity), NaN and ±Infinity (not JSON; Python accepts them);
    * a lone surrogate such as ``"\\ud800"``, which no UTF-8 encoder (Kafka, MongoDB) takes,
      and U+0000, which PostgreSQL (under FerretDB) cannot store in any string.
    """
    try:
        text = raw.decode(json.detect_encoding(raw))
    except UnicodeDecodeError as exc:
        raise ProblemError(
            400, f"the body is not valid JSON: {exc}", kind="malformed-json"
        ) from exc
    depth = _max_depth(text, limits.max_json_depth)
    if depth > limits.max_json_depth:
        raise ProblemError(
            400,
            f"the body nests arrays and objects deeper than"
            f" {exceeded('max_json_depth', limits.max_json_depth)}",
            kind="malformed-json",
        )
    try:
        value = json.loads(
            text,
            parse_int=_number_parser(int, limits.max_number_chars),
            parse_float=_number_parser(float, limits.max_number_chars),
            parse_constant=_refuse_constant,
        )
    except _Refused as exc:
        raise ProblemError(400, str(exc), kind="malformed-json") from exc
    except json.JSONDecodeError as exc:
        raise ProblemError(
            400,
            f"the body is not valid JSON at line {exc.lineno} column {exc.colno}: {exc}",
            kind="malformed-json",
        ) from exc
    if _UNSTORABLE_ESCAPE.search(text):
        where = _unstorable(value)
        if where is not None:
            # Well-formed JSON whose text cannot be stored: unprocessable content (422).
            raise ProblemError(
                422,
                f"the body has a lone UTF-16 surrogate (\\ud800 to \\udfff) or U+0000 at"
                f" {where or '/'}; text must be valid Unicode without NUL characters",
                kind="invalid-text",
            )
    return value


def _max_depth(text: str, limit: int) -> int:
    """The nesting depth of JSON text; linear, no recursion.

    Strings are cut out first (brackets inside them do not count), then only brackets remain.
    A malformed text gives some number: the parser that runs next reports what is wrong.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if len(brackets) <= limit:
        return len(brackets) // 2
    # Running sum of +1/-1 per bracket, in C (map, accumulate, max): no Python-level loop.
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _number_parser(convert: Callable[[str], float], max_chars: int) -> Callable[[str], Any]:
    def parse_number(literal: str) -> Any:
        if len(literal) > max_chars:
            raise _Refused(
                f"a number in the body has {len(literal)} characters, over"
                f" {exceeded('max_number_chars', max_chars)}"
            )
        number = convert(literal)
        if not math.isfinite(number):
            raise _Refused(f"the number {literal} is too large to represent")
        return number

    return parse_number


def _refuse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number; send a finite number or null")


def _unstorable(value: Any) -> str | None:
    """The JSON pointer of a key or string holding a lone surrogate or NUL, if any (iterative)."""
    pending: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while pending:
        current, path = pending.pop()
        if isinstance(current, str):
            if _UNSTORABLE.search(current):
                return pointer(path)
        elif isinstance(current, dict):
            for key, item in current.items():
                if _UNSTORABLE.search(key):
                    return pointer(path)
                pending.append((item, (*path, key)))
        elif isinstance(current, list):
            pending.extend((item, (*path, index)) for index, item in enumerate(current))
    return None


def pointer(loc: tuple[int | str, ...]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in loc)


def parse(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise ProblemError(422, "the body must be a JSON object", kind="invalid-request")
    try:
        # Strict: JSON `true` is no integer and `1.5` no string, as the OpenAPI document says.
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        errors = [ProblemItem(path=pointer(e["loc"]), message=e["msg"]) for e in exc.errors()]
        raise ProblemError(
            422, "the request body is not valid", kind="invalid-request", errors=errors
        ) from exc
