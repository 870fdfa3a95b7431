"""OpenAI's Images API (`POST /v1/images/generations`) through the official `openai` client, at
api.openai.com or any OpenAI-compatible base URL (Azure OpenAI's v1 API, local servers).

The call is synchronous: one request holds until the images exist. GPT image models always
answer base64; DALL·E answers URLs (valid an hour) unless asked for base64, and those are
downloaded at once. The client's own retries are off: a 429 or 5xx fails the step retryably
with the server's Retry-After, and the node's retry policy decides.
"""

from __future__ import annotations

import inspect
from typing import Any, Final

import openai
from egress import EgressRefused
from openai.resources.images import AsyncImages

from executor.imaging.result import ImageResult
from executor.providers.base import (
    Credentials,
    Generation,
    GenerationRequest,
    ProviderError,
    ProviderName,
    find_cause,
    retry_after_of,
    status_error,
)
from executor.providers.clients import ProviderClients
from executor.providers.download import decode_b64, describe, fetch_image

DEFAULT_MODEL: Final = "gpt-image-1"
CONTENT_POLICY_CODES: Final = frozenset({"content_policy_violation", "moderation_blocked"})
KNOWN_PARAMS: Final = frozenset(inspect.signature(AsyncImages.generate).parameters) - {
    "self",
    "extra_headers",
    "extra_query",
    "extra_body",
    "timeout",
    "stream",
}


class OpenAIImages:
    name: ProviderName = "openai"

    def __init__(self, clients: ProviderClients) -> None:
        self._clients = clients

    async def generate(self, request: GenerationRequest, creds: Credentials) -> Generation:
        model = request.model or creds.model or DEFAULT_MODEL
        params, extra, ignored = _params(request, model)
        http = self._clients.client(creds)
        try:
            client = openai.AsyncOpenAI(
                api_key=creds.api_key,
                base_url=creds.base_url,
                http_client=http,
                max_retries=0,
                timeout=self._clients.timeout,
            )
            try:
                response = await client.images.generate(**params, extra_body=extra or None)
            except openai.APIStatusError as exc:
                raise _status(exc) from exc
            except openai.APITimeoutError as exc:
                raise ProviderError(
                    "provider_timeout",
                    f"no answer within {self._clients.timeout:g}s",
                    provider=self.name,
                ) from exc
            except openai.APIConnectionError as exc:
                refused = find_cause(exc, EgressRefused)
                if refused is not None:
                    raise refused from exc
                raise ProviderError(
                    "provider_unreachable", f"{exc.message} ({exc.__cause__!r})", provider=self.name
                ) from exc
            images = await self._images(response.data or [])
        finally:
            await http.aclose()
        return Generation(
            images=images,
            provider=self.name,
            model=model,
            request_id=response._request_id,
            ignored=ignored,
        )

    async def _images(self, data: list[Any]) -> list[ImageResult]:
        limits = self._clients.limits
        images: list[ImageResult] = []
        async with self._clients.downloads() as downloads:
            for item in data:
                if item.b64_json:
                    raw = decode_b64(item.b64_json, provider=self.name, limits=limits)
                    images.append(describe(raw, limits, self.name))
                elif item.url:
                    images.append(
                        await fetch_image(downloads, item.url, provider=self.name, limits=limits)
                    )
        if not images:
            raise ProviderError(
                "provider_bad_output", "answered without images", provider=self.name
            )
        return images


def _params(
    request: GenerationRequest, model: str
) -> tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]:
    params: dict[str, Any] = {
        "model": model,
        "prompt": request.prompt,
        "n": request.count,
        "size": f"{request.width}x{request.height}",
    }
    quality = _quality(model, request.quality)
    if quality is not None:
        params["quality"] = quality
    extra: dict[str, Any] = {}
    for key, value in request.options.items():
        (params if key in KNOWN_PARAMS else extra)[key] = value
    # The Images API has neither: say so in the step's metadata rather than drop them silently.
    ignored = tuple(
        name
        for name, value in (("negativePrompt", request.negative_prompt), ("seed", request.seed))
        if value is not None
    )
    return params, extra, ignored


def _quality(model: str, quality: str) -> str | None:
    if model.startswith("dall-e-2"):
        return None
    if model.startswith("dall-e-3"):
        return "hd" if quality == "high" else "standard"
    return "high" if quality == "high" else "low"


def _status(exc: openai.APIStatusError) -> ProviderError:
    code = exc.code if isinstance(exc.code, str) else None
    return status_error(
        "openai",
        exc.status_code,
        _message(exc),
        retry_after=retry_after_of(exc.response.headers),
        request_id=exc.request_id,
        content_policy=code in CONTENT_POLICY_CODES,
    )


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            code = inner.get("code")
            return f"{inner['message']}" + (f" ({code})" if isinstance(code, str) else "")
    return exc.message
