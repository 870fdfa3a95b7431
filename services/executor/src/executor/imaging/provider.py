"""Image generation providers: one interface, an offline stand-in and an HTTP model endpoint."""

from __future__ import annotations

import asyncio
from typing import Final, Protocol

import httpx
from egress import ACCEPT_ENCODING, BodyTooLarge, UndecodableBody, read_bounded

from executor.imaging.codec import (
    CONTENT_TYPES,
    DEFAULT_LIMITS,
    EXTENSIONS,
    ImageLimits,
    check_size,
    encode,
    open_image,
)
from executor.imaging.placeholder import Quality, generate
from executor.imaging.result import ImageDecodeError, ImageResult, ImageTooLarge

MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024


class ProviderError(Exception):
    """Generation failed. `retryable` says whether trying again later may succeed."""

    def __init__(self, message: str, *, retryable: bool, status_code: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code


class ImageProvider(Protocol):
    async def generate(
        self,
        *,
        prompt: str,
        negative_prompt: str | None,
        width: int,
        height: int,
        seed: int | None,
        quality: Quality,
    ) -> ImageResult: ...


class OfflineProvider:
    """The built-in stand-in (see `executor.imaging.placeholder`); not a model. It ignores
    `negative_prompt`."""

    async def generate(
        self,
        *,
        prompt: str,
        negative_prompt: str | None,
        width: int,
        height: int,
        seed: int | None,
        quality: Quality,
    ) -> ImageResult:
        return await asyncio.to_thread(
            generate, prompt=prompt, width=width, height=height, seed=seed, quality=quality
        )


class HttpProvider:
    """Calls an external model endpoint: POSTs JSON
    {prompt, negativePrompt, width, height, seed, quality} to `url` and expects the image bytes
    back with an image/* Content-Type.

    Errors: 5xx, 408, 429, timeouts and connection failures are retryable; other 4xx, a non-image
    or undecodable response are not. png/jpeg/webp responses are returned as sent; other image
    formats are re-encoded as png. The size reported is the image's real size.
    """

    def __init__(
        self,
        url: str,
        timeout: float,
        client: httpx.AsyncClient,
        limits: ImageLimits = DEFAULT_LIMITS,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.client = client
        self.limits = limits

    async def generate(
        self,
        *,
        prompt: str,
        negative_prompt: str | None,
        width: int,
        height: int,
        seed: int | None,
        quality: Quality,
    ) -> ImageResult:
        check_size(width, height, self.limits, what="the image to generate")
        payload = {
            "prompt": prompt,
            "negativePrompt": negative_prompt,
            "width": width,
            "height": height,
            "seed": seed,
            "quality": quality,
        }
        try:
            async with self.client.stream(
                "POST",
                self.url,
                json=payload,
                timeout=self.timeout,
                headers={"Accept-Encoding": ACCEPT_ENCODING},
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _status_error(response)
                content_type = response.headers.get("content-type", "")
                if not content_type.lower().startswith("image/"):
                    raise ProviderError(
                        f"image provider answered {response.status_code} with "
                        f"Content-Type {content_type or '(none)'!r}, expected an image",
                        retryable=False,
                        status_code=response.status_code,
                    )
                # Counted on the wire and after decoding: an encoded answer cannot expand.
                try:
                    body = await read_bounded(response, MAX_RESPONSE_BYTES)
                except (BodyTooLarge, UndecodableBody) as exc:
                    raise ProviderError(
                        f"image provider response: {exc}",
                        retryable=False,
                        status_code=response.status_code,
                    ) from exc
        except httpx.TimeoutException as exc:
            raise ProviderError(
                f"image provider timed out after {self.timeout}s: {exc!r}", retryable=True
            ) from exc
        except httpx.TransportError as exc:
            raise ProviderError(f"image provider unreachable: {exc!r}", retryable=True) from exc
        return await asyncio.to_thread(_describe, body, self.limits)


def _status_error(response: httpx.Response) -> ProviderError:
    status = response.status_code
    retryable = status >= 500 or status in (408, 429)
    detail = response.text[:300].strip()
    return ProviderError(
        f"image provider answered {status} {response.reason_phrase}"
        + (f": {detail}" if detail else ""),
        retryable=retryable,
        status_code=status,
    )


def _describe(data: bytes, limits: ImageLimits) -> ImageResult:
    try:
        img, fmt = open_image(data, limits)
    except ImageTooLarge:
        raise  # the provider's image is over our limits: the same failure as any input's
    except ImageDecodeError as exc:
        raise ProviderError(
            f"image provider returned an undecodable image: {exc}", retryable=False
        ) from exc
    if not _is_passthrough(data):
        return encode(img, "png")
    return ImageResult(
        data=data,
        content_type=CONTENT_TYPES[fmt],
        width=img.width,
        height=img.height,
        ext=EXTENSIONS[fmt],
    )


def _is_passthrough(data: bytes) -> bool:
    """png, jpeg and webp bytes can be stored as sent."""
    return (
        data.startswith(b"\x89PNG\r\n\x1a\n")
        or data.startswith(b"\xff\xd8\xff")
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
    )
