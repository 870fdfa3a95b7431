"""The value every image operation returns, and the errors they raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ImageFormat = Literal["png", "jpeg", "webp"]


@dataclass(frozen=True, slots=True)
class ImageResult:
    """Encoded image bytes plus what a caller needs to store and describe them."""

    data: bytes
    content_type: str
    width: int
    height: int
    ext: str


class ImagingError(ValueError):
    """Base of the errors caused by the input (bad bytes or bad parameters); not retryable."""


class ImageDecodeError(ImagingError):
    """The bytes are not an image we accept, or the image is too large to decode."""


class ImageTooLarge(ImageDecodeError):
    """The image, or one an operation would produce, is over MAX_IMAGE_SIDE or
    MAX_IMAGE_PIXELS; refused before its pixels are allocated."""


class ImageOperationError(ImagingError):
    """The parameters do not make sense for this image (e.g. a crop box outside it)."""
