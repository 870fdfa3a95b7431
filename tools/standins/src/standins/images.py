"""Deterministic images for the stand-ins: a two-colour gradient whose colours come from a
seed, at the requested size, encoded as PNG (or JPEG/WebP where a provider lets the caller
choose). The same (size, seed, format) always gives the same bytes."""

from __future__ import annotations

import functools
import hashlib
import io

from PIL import Image, ImageOps

MAX_SIDE = 4096
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def normalise_format(fmt: str) -> str:
    """ "jpg" and "jpeg" are one format; unknown formats fall back to PNG."""
    fmt = fmt.lower()
    if fmt == "jpg":
        return "jpeg"
    return fmt if fmt in _PIL_FORMATS else "png"


def seed_colours(seed: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    digest = hashlib.sha256(str(seed).encode()).digest()
    return (digest[0], digest[1], digest[2]), (digest[3], digest[4], digest[5])


@functools.lru_cache(maxsize=64)
def render(width: int, height: int, seed: int, fmt: str = "png") -> bytes:
    """A `width` x `height` gradient between two seed-derived colours, encoded as `fmt`."""
    width = max(1, min(int(width), MAX_SIDE))
    height = max(1, min(int(height), MAX_SIDE))
    fmt = normalise_format(fmt)
    start, end = seed_colours(seed)
    ramp = Image.linear_gradient("L").rotate(seed % 4 * 90).resize((width, height))
    image = ImageOps.colorize(ramp, black=start, white=end)
    out = io.BytesIO()
    if fmt == "png":
        image.save(out, "PNG", compress_level=1)
    else:
        image.save(out, _PIL_FORMATS[fmt], quality=90)
    return out.getvalue()


def content_type(fmt: str) -> str:
    return CONTENT_TYPES[normalise_format(fmt)]
