"""Bringing a provider's output home: its URL read through the egress guard, within limits,
and its bytes checked to be an image before they are stored."""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Final

import httpx
from egress import ACCEPT_ENCODING, BodyTooLarge, UndecodableBody, read_bounded

from executor.imaging.codec import CONTENT_TYPES, EXTENSIONS, ImageLimits, encode, open_image
from executor.imaging.result import ImageDecodeError, ImageResult, ImageTooLarge
from executor.providers.base import ProviderError, status_error, transport_failure

MAX_IMAGE_BYTES: Final = 64 * 1024 * 1024
GONE: Final = frozenset({403, 404, 410})
"""What a CDN answers for an output past its retention (Replicate deletes API outputs after an
hour; fal's follow each request's lifecycle setting)."""


async def fetch_image(
    http: httpx.AsyncClient, url: str, *, provider: str, limits: ImageLimits
) -> ImageResult:
    """The image at `url`. An output that is gone fails for good (the step must run again to
    make a new one); a CDN that fails or cannot be reached may pass with time."""
    try:
        async with http.stream(
            "GET", url, headers={"Accept-Encoding": ACCEPT_ENCODING}
        ) as response:
            if response.status_code in GONE:
                raise ProviderError(
                    "provider_output_expired",
                    f"the output at {_short(url)} is gone (HTTP {response.status_code}); "
                    "provider outputs expire, so they are copied at once: run the step again",
                    provider=provider,
                    status_code=response.status_code,
                )
            if response.status_code >= 400:
                await response.aread()
                raise status_error(provider, response.status_code, f"downloading {_short(url)}")
            try:
                data = await read_bounded(response, MAX_IMAGE_BYTES)
            except (BodyTooLarge, UndecodableBody) as exc:
                raise ProviderError(
                    "provider_bad_output", f"output {_short(url)}: {exc}", provider=provider
                ) from exc
    except httpx.TransportError as exc:
        raise transport_failure(exc, provider, f"downloading {_short(url)}") from exc
    return await asyncio.to_thread(describe, data, limits, provider)


def decode_b64(value: str, *, provider: str, limits: ImageLimits) -> bytes:
    if len(value) > (MAX_IMAGE_BYTES * 4) // 3 + 4:
        raise ProviderError(
            "provider_bad_output", "a base64 image over the size limit", provider=provider
        )
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProviderError(
            "provider_bad_output", f"undecodable base64 image: {exc}", provider=provider
        ) from exc


def describe(data: bytes, limits: ImageLimits, provider: str) -> ImageResult:
    """png, jpeg and webp are kept as sent; other image formats are stored as png. The size
    reported is the image's real size, whatever the provider claimed."""
    try:
        img, fmt = open_image(data, limits)
    except ImageTooLarge:
        raise  # over our limits: the same failure as any input image's
    except ImageDecodeError as exc:
        raise ProviderError(
            "provider_bad_output", f"returned an undecodable image: {exc}", provider=provider
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
    return (
        data.startswith(b"\x89PNG\r\n\x1a\n")
        or data.startswith(b"\xff\xd8\xff")
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
    )


def _short(url: str) -> str:
    """Signed CDN URLs carry tokens in their query: never in messages."""
    return url.split("?", 1)[0][:200]
