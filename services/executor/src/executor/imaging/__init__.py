"""Image operations of the executor: pure functions over bytes (providers: executor.providers).

The functions are CPU-bound and synchronous; callers run them in a thread pool.
"""

from executor.imaging.codec import MAX_PIXELS, ImageLimits, check_size, decode, encode
from executor.imaging.ops import Fit, adjust, composite, convert, crop, resize, text
from executor.imaging.placeholder import Quality, generate
from executor.imaging.result import (
    ImageDecodeError,
    ImageFormat,
    ImageOperationError,
    ImageResult,
    ImageTooLarge,
    ImagingError,
)

__all__ = [
    "MAX_PIXELS",
    "Fit",
    "ImageDecodeError",
    "ImageFormat",
    "ImageLimits",
    "ImageOperationError",
    "ImageResult",
    "ImageTooLarge",
    "ImagingError",
    "Quality",
    "adjust",
    "check_size",
    "composite",
    "convert",
    "crop",
    "decode",
    "encode",
    "generate",
    "resize",
    "text",
]
