"""Decoding untrusted bytes into a normalised Pillow image, and encoding it back."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

from PIL import Image, ImageOps, UnidentifiedImageError
from workflow.limits import Limits, exceeded

from executor.imaging.result import (
    ImageDecodeError,
    ImageFormat,
    ImageOperationError,
    ImageResult,
    ImageTooLarge,
)


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """MAX_IMAGE_SIDE and MAX_IMAGE_PIXELS (workflow.limits), for every image decoded or
    produced. A plain value (not the settings object) so tests may use tiny limits."""

    side: int = Limits.model_fields["max_image_side"].default
    pixels: int = Limits.model_fields["max_image_pixels"].default

    @classmethod
    def of(cls, limits: Limits) -> ImageLimits:
        return cls(side=limits.max_image_side, pixels=limits.max_image_pixels)


DEFAULT_LIMITS: Final = ImageLimits()
MAX_PIXELS: Final = DEFAULT_LIMITS.pixels
MAX_SIDE: Final = DEFAULT_LIMITS.side


def configure_pillow(limits: ImageLimits) -> None:
    """Make Pillow's own decompression-bomb check (a warning above MAX_IMAGE_PIXELS, an error
    at twice it) agree with ours; `open_image` turns both into `ImageTooLarge`. Pillow keeps
    this in a global, so a service calls this once at startup."""
    Image.MAX_IMAGE_PIXELS = limits.pixels


def check_size(width: int, height: int, limits: ImageLimits, *, what: str = "the image") -> None:
    """Refuse a size over the limits, before anything of that size is allocated."""
    if max(width, height) > limits.side:
        raise ImageTooLarge(
            f"{what} is {width}x{height}: a side over {exceeded('max_image_side', limits.side)}"
        )
    if width * height > limits.pixels:
        raise ImageTooLarge(
            f"{what} is {width}x{height} ({width * height:,} pixels), over "
            f"{exceeded('max_image_pixels', limits.pixels)}"
        )


FORMATS: Final[tuple[ImageFormat, ...]] = ("png", "jpeg", "webp")

CONTENT_TYPES: Final[dict[ImageFormat, str]] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
}
EXTENSIONS: Final[dict[ImageFormat, str]] = {"png": "png", "jpeg": "jpg", "webp": "webp"}

# zlib level 4 encodes about twice as fast as the default 6 for ~10 % larger files.
_PNG_COMPRESS_LEVEL: Final = 4

# Only raster formats with plain decoders: notably not EPS (which runs Ghostscript).
_READABLE: Final = ("PNG", "JPEG", "MPO", "WEBP", "GIF", "BMP", "TIFF", "AVIF")
_KEEPS_FORMAT: Final[dict[str, ImageFormat]] = {
    "PNG": "png",
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "WEBP": "webp",
}


def open_image(
    data: bytes, limits: ImageLimits = DEFAULT_LIMITS
) -> tuple[Image.Image, ImageFormat]:
    """Decode like `decode`, and also say which output format keeps the input's format.

    png, jpeg and webp inputs keep their format; anything else (gif, bmp, tiff, …) becomes png.
    The size the header declares is checked against `limits` before any pixel is decoded, so a
    decompression bomb (a tiny file declaring 100,000 x 100,000) costs nothing.
    """
    if not data:
        raise ImageDecodeError("empty input: not an image or an unsupported format")
    Image.init()
    readable: list[str] = [name for name in _READABLE if name in Image.OPEN]
    try:
        img = Image.open(io.BytesIO(data), formats=readable)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"the image is {_bomb_size(exc)}, over {_pixels(limits)}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError("not an image or an unsupported format") from exc
    with img:
        check_size(img.width, img.height, limits)
        source = _KEEPS_FORMAT.get(img.format or "", "png")
        try:
            img.load()  # first frame of an animation
            check_size(img.width, img.height, limits)  # a frame may differ from the header
            upright = ImageOps.exif_transpose(img)
            normalised = _normalise_mode(upright)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLarge(f"the image is {_bomb_size(exc)}, over {_pixels(limits)}") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageDecodeError(f"not an image or an unsupported format ({exc})") from exc
    return normalised, source


def _pixels(limits: ImageLimits) -> str:
    return exceeded("max_image_pixels", limits.pixels)


def _bomb_size(exc: Exception) -> str:
    # Pillow says "Image size (N pixels) exceeds limit of …"; keep its count, not its wording.
    text = str(exc)
    start = text.find("(")
    return text[start + 1 : text.find(")", start)] if start >= 0 else "too large"


def decode(data: bytes, limits: ImageLimits = DEFAULT_LIMITS) -> Image.Image:
    """Decode image bytes into an RGB or RGBA image, upright per its EXIF orientation.

    Raises `ImageDecodeError` for anything that is not an accepted image, `ImageTooLarge` (one
    of them) for one over `limits`.
    """
    return open_image(data, limits)[0]


def _normalise_mode(img: Image.Image) -> Image.Image:
    has_alpha = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info
    )
    target = "RGBA" if has_alpha else "RGB"
    if img.mode == target:
        return img.copy()
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale into 8 bits instead of clipping at 255.
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    return img.convert(target)


def check_format(format: str) -> ImageFormat:
    """Return `format` as an `ImageFormat`, or raise `ImageOperationError`."""
    for known in FORMATS:
        if format == known:
            return known
    raise ImageOperationError(f"unsupported output format {format!r}; use one of {FORMATS}")


def encode(img: Image.Image, format: ImageFormat = "png", quality: int = 90) -> ImageResult:
    """Encode `img` as png, jpeg or webp. jpeg cannot hold alpha: transparency goes onto white.

    `quality` (1..100) applies to jpeg and webp.
    """
    fmt = check_format(format)
    if isinstance(quality, bool) or not 1 <= quality <= 100:
        raise ImageOperationError(f"quality must be between 1 and 100, got {quality!r}")
    if img.mode not in ("RGB", "RGBA", "L"):
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    buffer = io.BytesIO()
    if fmt == "jpeg":
        if img.mode == "RGBA":
            flat = Image.new("RGB", img.size, (255, 255, 255))
            flat.paste(img, mask=img.getchannel("A"))
            img = flat
        img.save(buffer, "JPEG", quality=quality, optimize=False)
    elif fmt == "webp":
        img.save(buffer, "WEBP", quality=quality, method=4)
    else:
        img.save(buffer, "PNG", compress_level=_PNG_COMPRESS_LEVEL)
    return ImageResult(
        data=buffer.getvalue(),
        content_type=CONTENT_TYPES[fmt],
        width=img.width,
        height=img.height,
        ext=EXTENSIONS[fmt],
    )
