"""Image operations of the executor: pure functions over bytes, plus generation providers.

The functions are CPU-bound and synchronous; callers run them in a thread pool.
"""

from executor.imaging.codec import MAX_PIXELS, decode, encode
from executor.imaging.ops import Fit, adjust, composite, convert, crop, resize, text
from executor.imaging.placeholder import Quality, generate
from executor.imaging.provider import HttpProvider, ImageProvider, OfflineProvider, ProviderError
from executor.imaging.result import (
    ImageDecodeError,
    ImageFormat,
    ImageOperationError,
    ImageResult,
    ImagingError,
)

__all__ = [
    "MAX_PIXELS",
    "Fit",
    "HttpProvider",
    "ImageDecodeError",
    "ImageFormat",
    "ImageOperationError",
    "ImageProvider",
    "ImageResult",
    "ImagingError",
    "OfflineProvider",
    "ProviderError",
    "Quality",
    "adjust",
    "composite",
    "convert",
    "crop",
    "decode",
    "encode",
    "generate",
    "resize",
    "text",
]
