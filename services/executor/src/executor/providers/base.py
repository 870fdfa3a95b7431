"""What every image provider takes and returns, and how its failures are described.

A provider turns a `GenerationRequest` into images; it never stores them (the node does) and
never decides retries (the orchestrator does, from the error's `retryable` and `retry_after`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, TypeVar

import httpx
from egress import EgressRefused
from egress.retry_after import parse_retry_after

from executor.imaging.result import ImageResult

ProviderName = Literal["offline", "openai", "replicate", "fal", "comfyui"]
PROVIDER_NAMES: Final[tuple[ProviderName, ...]] = (
    "offline",
    "openai",
    "replicate",
    "fal",
    "comfyui",
)


@dataclass(frozen=True)
class Credentials:
    """What a provider needs to reach its API: from the tenant's `PUT /v1/providers/{name}`,
    else from the executor's settings. `trusted` is False for a tenant's own base URL, which
    then goes through the egress guard like any user-given address."""

    api_key: str | None = None
    base_url: str | None = None
    model: str | None = None
    trusted: bool = True
    source: str = "settings"
    """Where they came from, for messages: "settings" or "tenant"."""


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    negative_prompt: str | None = None
    width: int = 1024
    height: int = 1024
    size_given: bool = False
    """Whether the node set width/height itself (many hosted models take their own size
    inputs, such as an aspect ratio, and are only sent ours when asked)."""
    seed: int | None = None
    quality: Literal["draft", "high"] = "high"
    count: int = 1
    model: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    """Provider-specific inputs, passed as they are and winning over ours."""
    graph: Mapping[str, Any] | None = None
    """A ComfyUI API-format graph, with `graph_inputs` placed into it."""
    graph_inputs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Generation:
    images: list[ImageResult]
    provider: ProviderName
    model: str
    request_id: str | None
    ignored: tuple[str, ...] = ()
    """Our params this provider has no equivalent for (e.g. a seed for OpenAI)."""

    def metadata(self, duration_seconds: float) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": self.provider,
            "model": self.model,
            "requestId": self.request_id,
            "durationSeconds": round(duration_seconds, 3),
        }
        if self.ignored:
            meta["ignoredParams"] = list(self.ignored)
        return meta


class ImageProvider(Protocol):
    name: ProviderName

    async def generate(self, request: GenerationRequest, creds: Credentials) -> Generation: ...


ErrorCode = Literal[
    "provider_not_configured",
    "provider_rate_limited",
    "provider_unavailable",
    "provider_timeout",
    "provider_unreachable",
    "provider_auth_failed",
    "provider_invalid_request",
    "provider_model_not_found",
    "content_policy",
    "provider_failed",
    "provider_canceled",
    "provider_output_expired",
    "provider_bad_output",
]

RETRYABLE: Final[frozenset[str]] = frozenset(
    {"provider_rate_limited", "provider_unavailable", "provider_timeout", "provider_unreachable"}
)


class ProviderError(Exception):
    """A generation failed. Retryable codes (RETRYABLE) may pass with time: the orchestrator
    tries again if the node's retry policy allows, not before `retry_after` seconds."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        provider: str,
        status_code: int | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{provider}: {message}")
        self.code = code
        self.provider = provider
        self.status_code = status_code
        self.retry_after = retry_after
        self.request_id = request_id

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE


def status_error(
    provider: str,
    status: int,
    message: str,
    *,
    retry_after: float | None = None,
    request_id: str | None = None,
    content_policy: bool = False,
) -> ProviderError:
    """The usual reading of an HTTP error status from a provider's API."""
    code: ErrorCode
    if content_policy:
        code = "content_policy"
    elif status == 429:
        code = "provider_rate_limited"
    elif status in (408, 504):
        code = "provider_timeout"
    elif status >= 500:
        code = "provider_unavailable"
    elif status in (401, 403):
        code = "provider_auth_failed"
    elif status == 404:
        code = "provider_model_not_found"
    else:
        code = "provider_invalid_request"
    return ProviderError(
        code,
        f"answered {status}: {message}" if message else f"answered {status}",
        provider=provider,
        status_code=status,
        retry_after=retry_after,
        request_id=request_id,
    )


MAX_RETRY_AFTER: Final = 86_400.0


def retry_after_of(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait, from OpenAI's `retry-after-ms` or the standard `Retry-After`; None when
    absent or unreadable (the node's backoff then applies alone)."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    millis = lower.get("retry-after-ms", "").strip()
    if millis.isascii() and millis.isdigit() and len(millis) <= 12:
        return min(int(millis) / 1000, MAX_RETRY_AFTER)
    seconds = parse_retry_after(lower.get("retry-after"), datetime.now(UTC))
    if seconds is None or not math.isfinite(seconds):
        return None if seconds is None else MAX_RETRY_AFTER
    return min(seconds, MAX_RETRY_AFTER)


E = TypeVar("E", bound=BaseException)


def find_cause(exc: BaseException, kind: type[E]) -> E | None:
    """The first exception of `kind` in `exc`'s chain: clients wrap transport failures (such
    as the egress guard's refusal) in their own errors."""
    seen: BaseException | None = exc
    for _ in range(20):
        if seen is None:
            return None
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def transport_failure(exc: httpx.TransportError, provider: str, what: str) -> BaseException:
    """A request that got no answer: the egress guard's refusal as it is (permanent, the
    address is not allowed), a timeout or a connection failure as retryable."""
    refused = find_cause(exc, EgressRefused)
    if refused is not None:
        return refused
    timed_out = isinstance(exc, httpx.TimeoutException)
    return ProviderError(
        "provider_timeout" if timed_out else "provider_unreachable",
        f"{what}{' timed out' if timed_out else ''}: {exc!r}",
        provider=provider,
    )
