"""fal's queue API: submit to `queue.fal.run/{model}`, follow the request with the official
`fal-client`'s request handle (status, result, cancel), copy each output image at once.

`fal-client` fixes its queue host when imported (`FAL_QUEUE_RUN_HOST`, https only), so the
submission, a single POST, is made here against the configured queue URL; everything after it
uses the URLs fal returns, as fal asks. A step canceled here cancels its request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import httpx
from fal_client.client import AsyncRequestHandle, FalClientHTTPError

from executor.imaging.result import ImageResult
from executor.providers.base import (
    Credentials,
    Generation,
    GenerationRequest,
    ProviderError,
    ProviderName,
    retry_after_of,
    status_error,
    transport_failure,
)
from executor.providers.clients import ProviderClients
from executor.providers.download import decode_b64, describe, fetch_image

log = logging.getLogger("executor.providers")

DEFAULT_MODEL: Final = "fal-ai/flux/schnell"
DEFAULT_QUEUE_URL: Final = "https://queue.fal.run"
CANCEL_TIMEOUT: Final = 10.0
CONTENT_POLICY_TYPES: Final = frozenset({"content_policy_violation"})


class FalQueue:
    name: ProviderName = "fal"

    def __init__(self, clients: ProviderClients) -> None:
        self._clients = clients

    async def generate(self, request: GenerationRequest, creds: Credentials) -> Generation:
        model = (request.model or creds.model or DEFAULT_MODEL).strip("/")
        http = self._clients.client(creds, headers={"Authorization": f"Key {creds.api_key}"})
        try:
            handle = await self._submit(http, creds, model, _arguments(request))
            try:
                result = await self._result(handle)
            except asyncio.CancelledError:
                await self._cancel(handle)
                raise
            images = await self._images(result, handle.request_id)
        finally:
            await http.aclose()
        return Generation(
            images=images,
            provider=self.name,
            model=model,
            request_id=handle.request_id,
        )

    async def _submit(
        self, http: httpx.AsyncClient, creds: Credentials, model: str, arguments: dict[str, Any]
    ) -> AsyncRequestHandle:
        url = f"{(creds.base_url or DEFAULT_QUEUE_URL).rstrip('/')}/{model}"
        try:
            response = await http.post(url, json=arguments)
        except httpx.TransportError as exc:
            raise transport_failure(exc, self.name, "submitting to the queue") from exc
        if response.status_code >= 400:
            raise _status(response.status_code, response.headers, _detail(response))
        data = response.json()
        return AsyncRequestHandle(
            request_id=data["request_id"],
            response_url=data["response_url"],
            status_url=data["status_url"],
            cancel_url=data["cancel_url"],
            client=http,
        )

    async def _result(self, handle: AsyncRequestHandle) -> Any:
        # The status only says COMPLETED (with an error line at best): the result endpoint
        # answers the model's own error, with its type, so that is where failures are read.
        try:
            return await handle.get(interval=self._clients.poll_interval)
        except FalClientHTTPError as exc:
            raise _status(
                exc.status_code, exc.response_headers, _describe_detail(exc.message), exc.response
            ) from exc
        except httpx.TransportError as exc:
            raise transport_failure(exc, self.name, f"following {handle.request_id}") from exc

    async def _cancel(self, handle: AsyncRequestHandle) -> None:
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT):
                await asyncio.shield(handle.cancel())
            log.info("fal request %s canceled", handle.request_id)
        except (FalClientHTTPError, httpx.HTTPError, TimeoutError) as exc:
            log.warning("fal request %s: cancel failed: %r", handle.request_id, exc)

    async def _images(self, result: Any, request_id: str) -> list[ImageResult]:
        if not isinstance(result, dict):
            raise ProviderError(
                "provider_bad_output",
                f"request {request_id}: the result is not an object",
                provider=self.name,
            )
        flagged = result.get("has_nsfw_concepts")
        if isinstance(flagged, list) and any(flagged):
            raise ProviderError(
                "content_policy",
                f"request {request_id}: fal's safety checker flagged the image",
                provider=self.name,
                request_id=request_id,
            )
        files = result.get("images")
        if not isinstance(files, list):
            files = [result["image"]] if isinstance(result.get("image"), dict) else []
        urls = [f["url"] for f in files if isinstance(f, dict) and isinstance(f.get("url"), str)]
        if not urls:
            raise ProviderError(
                "provider_bad_output",
                f"request {request_id}: no image in the result",
                provider=self.name,
                request_id=request_id,
            )
        limits = self._clients.limits
        images: list[ImageResult] = []
        async with self._clients.downloads() as downloads:
            for url in urls:
                if url.startswith("data:"):
                    # sync_mode answers data URIs instead of CDN files.
                    raw = decode_b64(url.partition(",")[2], provider=self.name, limits=limits)
                    images.append(describe(raw, limits, self.name))
                else:
                    images.append(
                        await fetch_image(downloads, url, provider=self.name, limits=limits)
                    )
        return images


def _arguments(request: GenerationRequest) -> dict[str, Any]:
    """Our params under the names fal's image models (FLUX, SDXL, …) use; `options` wins."""
    arguments: dict[str, Any] = {"prompt": request.prompt}
    if request.negative_prompt is not None:
        arguments["negative_prompt"] = request.negative_prompt
    if request.seed is not None:
        arguments["seed"] = request.seed
    if request.size_given:
        arguments["image_size"] = {"width": request.width, "height": request.height}
    if request.count > 1:
        arguments["num_images"] = request.count
    arguments.update(request.options)
    return arguments


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    return _describe_detail(body.get("detail", body) if isinstance(body, dict) else body)


def _describe_detail(detail: Any) -> str:
    """fal answers FastAPI-style: a string, or a list of {loc, msg, type}."""
    if isinstance(detail, list):
        parts = [
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')} ({d.get('type')})"
            if isinstance(d, dict)
            else str(d)
            for d in detail[:5]
        ]
        return "; ".join(parts)
    return str(detail)[:500]


def _status(
    status: int,
    headers: Any,
    detail: str,
    response: httpx.Response | None = None,
) -> ProviderError:
    return status_error(
        "fal",
        status,
        detail,
        retry_after=retry_after_of(dict(headers)),
        content_policy=any(t in detail for t in CONTENT_POLICY_TYPES),
    )
