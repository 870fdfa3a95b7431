"""Small in-memory images for the imaging tests."""

from __future__ import annotations

import io

from PIL import Image, ImageStat

Colour = tuple[int] | tuple[int, int, int] | tuple[int, int, int, int]


def image_bytes(
    size: tuple[int, int] = (32, 24),
    colour: Colour = (128, 128, 128),
    *,
    mode: str = "RGB",
    format: str = "PNG",
) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format)
    return buffer.getvalue()


def open_bytes(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def mean(img: Image.Image, band: str) -> float:
    return float(ImageStat.Stat(img.convert("RGB").getchannel(band)).mean[0])
