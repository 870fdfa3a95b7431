"""Replicate predictions through the official `replicate` client.

A prediction is created for a model (`owner/name`, its latest version), a version
(`owner/name:version` or a bare version id) or a deployment (`deployments/owner/name`), with
`Prefer: wait` so that a fast model answers at once; a prediction still running when the wait
ends is polled. Outputs are URLs that Replicate deletes an hour after an API prediction, so
each is copied at once. A step canceled here cancels its prediction.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from typing import Any, Final

import httpx
from replicate.client import Client
from replicate.exceptions import ReplicateError
from replicate.prediction import Prediction

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
from executor.providers.download import fetch_image

log = logging.getLogger("executor.providers")

DEFAULT_MODEL: Final = "black-forest-labs/flux-schnell"
SYNC_WAIT_SECONDS: Final = 60
"""Replicate holds a `Prefer: wait` request up to 60 s."""
CANCEL_TIMEOUT: Final = 10.0
VERSION_ID = re.compile(r"^[0-9a-f]{64}$")
THROTTLED = re.compile(r"resets in ~?(\d{1,6})\s*s")
NSFW = re.compile(r"\bnsfw\b|safety|content polic", re.IGNORECASE)


class ReplicatePredictions:
    name: ProviderName = "replicate"

    def __init__(self, clients: ProviderClients, *, sync_wait: int = SYNC_WAIT_SECONDS) -> None:
        self._clients = clients
        self._sync_wait = sync_wait

    async def generate(self, request: GenerationRequest, creds: Credentials) -> Generation:
        model = request.model or creds.model or DEFAULT_MODEL
        throttled: dict[str, float | None] = {}

        async def remember_retry_after(response: httpx.Response) -> None:
            # The client's errors keep only the body: the header is read here.
            if response.status_code in (429, 503):
                throttled["retry_after"] = retry_after_of(response.headers)

        transport = self._clients.transport(creds)
        client = Client(
            api_token=creds.api_key,
            base_url=creds.base_url,
            timeout=httpx.Timeout(self._clients.timeout, connect=10.0),
            transport=transport,
            event_hooks={"response": [remember_retry_after]},
        )
        client.poll_interval = self._clients.poll_interval
        try:
            prediction = await self._create(client, model, _input(request), throttled)
            try:
                await prediction.async_wait()
            except asyncio.CancelledError:
                await self._cancel(prediction)
                raise
            except ReplicateError as exc:
                raise _error(exc, throttled.get("retry_after")) from exc
            images = await self._images(prediction)
        finally:
            await transport.aclose()
        return Generation(
            images=images,
            provider=self.name,
            model=prediction.model or model,
            request_id=prediction.id,
        )

    async def _create(
        self,
        client: Client,
        model: str,
        inputs: dict[str, Any],
        throttled: dict[str, float | None],
    ) -> Prediction:
        # Each namespace is called directly: the client's generic `predictions.async_create`
        # drops `wait` when it hands a model or deployment over (replicate 1.0.7).
        wait = self._sync_wait
        prediction: Prediction
        try:
            if model.startswith("deployments/"):
                prediction = await client.deployments.predictions.async_create(
                    deployment=model.removeprefix("deployments/"), input=inputs, wait=wait
                )
            elif VERSION_ID.match(model) or ":" in model:
                prediction = await client.predictions.async_create(
                    version=model.rpartition(":")[2], input=inputs, wait=wait
                )
            else:
                prediction = await client.models.predictions.async_create(
                    model=model, input=inputs, wait=wait
                )
            return prediction
        except ReplicateError as exc:
            raise _error(exc, throttled.get("retry_after")) from exc
        except httpx.TransportError as exc:
            raise transport_failure(exc, self.name, "creating the prediction") from exc

    async def _cancel(self, prediction: Prediction) -> None:
        """Stop paying for a prediction nobody waits for; a failure here is only logged."""
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT):
                await asyncio.shield(prediction.async_cancel())
            log.info("replicate prediction %s canceled", prediction.id)
        except (ReplicateError, httpx.HTTPError, TimeoutError) as exc:
            log.warning("replicate prediction %s: cancel failed: %r", prediction.id, exc)

    async def _images(self, prediction: Prediction) -> list[ImageResult]:
        if prediction.status == "failed":
            message = prediction.error or "the prediction failed"
            raise ProviderError(
                "content_policy" if NSFW.search(str(message)) else "provider_failed",
                f"prediction {prediction.id} failed: {message}",
                provider=self.name,
                request_id=prediction.id,
            )
        if prediction.status == "canceled":
            raise ProviderError(
                "provider_canceled",
                f"prediction {prediction.id} was canceled at Replicate",
                provider=self.name,
                request_id=prediction.id,
            )
        urls = list(_urls(prediction.output))
        if not urls:
            raise ProviderError(
                "provider_bad_output",
                f"prediction {prediction.id} succeeded without an output URL "
                f"(data removed: {getattr(prediction, 'data_removed', None)})",
                provider=self.name,
                request_id=prediction.id,
            )
        limits = self._clients.limits
        async with self._clients.downloads() as downloads:
            return [
                await fetch_image(downloads, url, provider=self.name, limits=limits) for url in urls
            ]


def _input(request: GenerationRequest) -> dict[str, Any]:
    """Our params under the names most of Replicate's image models use; `options` wins, and is
    where a model's own inputs (aspect_ratio, guidance, …) go."""
    inputs: dict[str, Any] = {"prompt": request.prompt}
    if request.negative_prompt is not None:
        inputs["negative_prompt"] = request.negative_prompt
    if request.seed is not None:
        inputs["seed"] = request.seed
    if request.size_given:
        inputs["width"], inputs["height"] = request.width, request.height
    if request.count > 1:
        inputs["num_outputs"] = request.count
    inputs.update(request.options)
    return inputs


def _urls(output: Any) -> Iterator[str]:
    """A model's output is a URL, a list of them, or an object holding them."""
    if isinstance(output, str):
        if output.startswith(("https://", "http://")):
            yield output
    elif isinstance(output, list):
        for item in output:
            yield from _urls(item)
    elif isinstance(output, dict):
        for item in output.values():
            yield from _urls(item)


def _error(exc: ReplicateError, retry_after: float | None) -> ProviderError:
    detail = exc.detail or exc.title or str(exc)
    status = exc.status or 500
    if status == 429 and retry_after is None:
        # Replicate says when in words: "Your rate limit resets in ~30s."
        match = THROTTLED.search(detail)
        retry_after = float(match.group(1)) if match else None
    return status_error(
        "replicate",
        status,
        detail,
        retry_after=retry_after,
        content_policy=status in (400, 422) and bool(NSFW.search(detail)),
    )
