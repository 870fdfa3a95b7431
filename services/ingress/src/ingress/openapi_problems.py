"""The problem answers of every operation, documented from what the operation is rather than
route by route, so a route added later is documented too.

FastAPI documents only what it infers (the success response and its own 422). The server
answers more: every error is an RFC 9457 problem (`application/problem+json`), and which
errors an operation can give follows from its shape:

- an API key (`security`): 401 (no or unknown key), 403 (a scope or the admin key missing),
  429 (rate limit or quota, with `Retry-After` and the `RateLimit` fields) and 503 (a
  dependency is down, with `Retry-After`);
- a path parameter: 404 (nothing by that id, or not yours);
- a request body: 400 (not JSON, empty, too deep, a number too long), 413 (too large);
  a body of other media types than JSON (an upload): 415 (a media type it does not take);
- any parameter or body: 422 (the request does not have the expected shape).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from contracts.api import Problem

from ingress.problems import MEDIA_TYPE

REF = "#/components/schemas/{model}"
PROBLEM_REF = {"$ref": REF.format(model=Problem.__name__)}
METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})

_RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 0},
}
_RATELIMIT = {
    "RateLimit-Policy": {
        "description": 'The limits that apply, e.g. `"requests";q=20;w=2` '
        "(draft-ietf-httpapi-ratelimit-headers).",
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'What is left of each, e.g. `"requests";r=19;t=1`.',
        "schema": {"type": "string"},
    },
}

WHY: dict[int, str] = {
    400: "The body is not JSON, is empty, nests too deep or has a number literal too long "
    "(NaN and Infinity are refused too).",
    401: "No API key, or one that is not valid (revoked keys included).",
    403: "The API key lacks the scope this operation needs (or it needs the admin key).",
    404: "Nothing by that id, or it belongs to another tenant.",
    413: "The body is larger than the limit named in the problem.",
    415: "The body's Content-Type is not one this operation takes.",
    422: "The request does not have the expected shape, or exceeds a limit named in the "
    "problem; `errors` points at each problem.",
    429: "A rate limit or quota is exceeded: retry after `Retry-After` seconds.",
    503: "A dependency (Kafka, MongoDB or S3) is unavailable: retry after `Retry-After` seconds.",
}

HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": 'Always `Bearer realm="workflow-api"`.',
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {"Retry-After": {**_RETRY_AFTER, "required": True}, **_RATELIMIT},
    503: {"Retry-After": {**_RETRY_AFTER, "required": True}},
}


def statuses_of(path: str, op: dict[str, Any]) -> set[int]:
    """The problem statuses an operation can answer, from its shape."""
    found: set[int] = set()
    params = op.get("parameters", [])
    if op.get("security"):
        found |= {401, 403, 429, 503}
    if any(p.get("in") == "path" for p in params) or "{" in path:
        found.add(404)
    body = op.get("requestBody", {}).get("content", {})
    if body:
        found |= {400, 413}
    if set(body) - {"application/json"}:
        found.add(415)  # JSON bodies are read whatever their Content-Type says
    if params or "application/json" in body:
        found.add(422)
    return found


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description or WHY.get(status) or HTTPStatus(status).phrase,
        "content": {MEDIA_TYPE: {"schema": PROBLEM_REF}},
    }
    if status in HEADERS:
        response["headers"] = HEADERS[status]
    return response


def _is_problem(status: str) -> bool:
    return status.isdigit() and int(status) >= 400


def document_problems(doc: dict[str, Any]) -> None:
    """Add the problem answers to every operation of `doc` (in place), and the Problem schema.

    A problem a route documents itself (e.g. 409 with its own description) keeps its
    description; its content becomes the problem's, which is what the server sends."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(by_alias=True, ref_template=REF)
    schemas.update(problem.pop("$defs", {}))
    schemas[Problem.__name__] = problem
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            responses: dict[str, Any] = op.setdefault("responses", {})
            for code in sorted(statuses_of(path, op)):
                responses.setdefault(str(code), {})
            for status, response in responses.items():
                if _is_problem(status):
                    # FastAPI's own 422 description ("Validation Error") says less than ours.
                    described = response.get("description")
                    if described in (None, "", "Validation Error"):
                        described = None
                    responses[status] = problem_response(int(status), described)
            _fill_empty_successes(responses)
            if op.get("security"):
                # Every answer to a request with a valid key carries the limits checked on it.
                for status, response in responses.items():
                    if status != "401":
                        response["headers"] = {**_RATELIMIT, **response.get("headers", {})}
    # FastAPI's validation error shape is never sent: every 422 is a problem.
    if not _referenced(doc, "HTTPValidationError"):
        schemas.pop("HTTPValidationError", None)
    if not _referenced(doc, "ValidationError"):
        schemas.pop("ValidationError", None)


def _fill_empty_successes(responses: dict[str, Any]) -> None:
    """A 2xx documented without content (e.g. `200: {"description": …}` beside a 201 with a
    model) sends the same body as its sibling: document it."""
    content = next(
        (
            r["content"]
            for s, r in sorted(responses.items())
            if s.startswith("2") and r.get("content")
        ),
        None,
    )
    if content is None:
        return
    for status, response in responses.items():
        if status.startswith("2") and status != "204" and not response.get("content"):
            response["content"] = content


def _referenced(node: Any, model: str) -> bool:
    target = REF.format(model=model)
    if isinstance(node, dict):
        if node.get("$ref") == target:
            return True
        return any(_referenced(v, model) for v in node.values())
    if isinstance(node, list):
        return any(_referenced(v, model) for v in node)
    return False
