"""Decoding untrusted bytes into a normalised Pillow image, and encoding it back."""

from __future__ import annotations

import io
from typing import Final

from PIL import Image, ImageOps, UnidentifiedImageError

from executor.imaging.result import ImageDecodeError, ImageFormat, ImageOperationError, ImageResult

MAX_PIXELS: Final = 64_000_000
"""Largest image (width x height) we decode; guards against decompression bombs."""

MAX_SIDE: Final = 16_384
"""Largest width or height an operation may produce."""

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


def open_image(data: bytes) -> tuple[Image.Image, ImageFormat]:
    """Decode like `decode`, and also say which output format keeps the input's format.

    png, jpeg and webp inputs keep their format; anything else (gif, bmp, tiff, …) becomes png.
    """
    if not data:
        raise ImageDecodeError("empty input: not an image or an unsupported format")
    Image.init()
    readable: list[str] = [name for name in _READABLE if name in Image.OPEN]
    try:
        img = Image.open(io.BytesIO(data), formats=readable)
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"image too large: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError("not an image or an unsupported format") from exc
    with img:
        pixels = img.width * img.height
        if pixels > MAX_PIXELS:
            raise ImageDecodeError(
                f"image too large: {img.width}x{img.height} is {pixels:,} pixels, "
                f"the limit is {MAX_PIXELS:,}"
            )
        source = _KEEPS_FORMAT.get(img.format or "", "png")
        try:
            img.load()  # first frame of an animation
            upright = ImageOps.exif_transpose(img)
            normalised = _normalise_mode(upright)
        except Image.DecompressionBombError as exc:
            raise ImageDecodeError(f"image too large: {exc}") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageDecodeError(f"not an image or an unsupported format ({exc})") from exc
    return normalised, source


def decode(data: bytes) -> Image.Image:
    """Decode image bytes into an RGB or RGBA image, upright per its EXIF orientation.

    Raises `ImageDecodeError` for anything that is not an accepted image or exceeds `MAX_PIXELS`.
    """
    return open_image(data)[0]


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
