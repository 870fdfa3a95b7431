"""Typed exceptions: one class per kind of answer, each carrying the RFC 9457 problem."""

from __future__ import annotations

from typing import Any

from contracts.api import ProblemItem


class WorkflowError(Exception):
    """Base of everything this package raises on purpose."""


class WorkflowAPIError(WorkflowError):
    """The API answered with a problem (`application/problem+json`), or could not be reached.

    `errors` lists `{path, message}` for validation problems, e.g. `/inputs/options/quality`.
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type: str = "about:blank",
        errors: list[ProblemItem] | None = None,
        retry_after: float | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.errors: list[ProblemItem] = errors or []
        self.retry_after = retry_after
        self.problem: dict[str, Any] = problem or {}
        super().__init__(self._message())

    @property
    def paths(self) -> list[str]:
        """The JSON pointers of the failing parts of the request."""
        return [e.path for e in self.errors]

    def _message(self) -> str:
        text = f"{self.status} {self.title}" if self.status else self.title
        if self.detail:
            text += f": {self.detail}"
        for e in self.errors:
            text += f"\n  {e.path}: {e.message}"
        return text


class BadRequest(WorkflowAPIError):
    """400 (malformed JSON), 413 (too large), 415 (unsupported upload type)."""


class Unauthorized(WorkflowAPIError):
    """401: a missing or wrong API key."""


class Forbidden(WorkflowAPIError):
    """403: the key lacks the scope the operation needs."""


class NotFound(WorkflowAPIError):
    """404: no such workflow, version or run (for this key's tenant)."""


class Conflict(WorkflowAPIError):
    """409, e.g. cancelling a run that already completed."""


class InvalidInput(WorkflowAPIError):
    """422: the inputs (or a definition) are invalid; `paths` names every failing part."""


class RateLimited(WorkflowAPIError):
    """429 after every retry: a rate limit or quota of the tenant; see `retry_after`."""


class Unavailable(WorkflowAPIError):
    """503 after every retry (MongoDB, Kafka or S3 unreachable behind the API)."""


class Unreachable(Unavailable):
    """The API itself could not be reached (connection refused, DNS, timeout)."""


class WaitTimeout(WorkflowError, TimeoutError):
    """The run had not ended when the wait's timeout passed; `run` is its last known state
    (None when the time ran out before the API answered at all, retries included)."""

    def __init__(self, run: Any = None) -> None:
        self.run = run
        if run is None:
            super().__init__("the timeout passed before the API answered")
        else:
            super().__init__(f"run {run.run_id} is still {run.status} after the wait")


class DownloadError(WorkflowError):
    """An output could not be downloaded or saved. The message and `url` name the URL without
    its query string: a presigned URL's query is its credential (`X-Amz-Signature`)."""

    def __init__(self, message: str, *, output: str, url: str, status: int | None = None) -> None:
        self.output = output
        self.url = url
        self.status = status
        super().__init__(message)


class WebhookVerificationError(WorkflowError):
    """A webhook delivery whose signature, id or timestamp does not verify."""


_BY_STATUS: dict[int, type[WorkflowAPIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    415: BadRequest,
    422: InvalidInput,
    429: RateLimited,
    503: Unavailable,
}


def error_for(status: int, body: Any, retry_after: float | None) -> WorkflowAPIError:
    """The exception for an answer of `status` with the (maybe problem) JSON `body`."""
    problem = body if isinstance(body, dict) else {}
    items: list[ProblemItem] = []
    for raw in problem.get("errors") or []:
        if isinstance(raw, dict) and "path" in raw:
            items.append(ProblemItem(path=str(raw["path"]), message=str(raw.get("message", ""))))
    cls = _BY_STATUS.get(status, WorkflowAPIError)
    detail = problem.get("detail")
    return cls(
        status,
        str(problem.get("title") or f"HTTP {status}"),
        str(detail) if detail is not None else None,
        type=str(problem.get("type") or "about:blank"),
        errors=items,
        retry_after=retry_after,
        problem=problem,
    )
