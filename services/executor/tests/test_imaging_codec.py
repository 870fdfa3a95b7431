from __future__ import annotations

import io

import pytest
from executor.imaging import (
    ImageDecodeError,
    ImageFormat,
    ImageLimits,
    ImageOperationError,
    ImageTooLarge,
    decode,
    encode,
)
from imaging_samples import image_bytes, open_bytes
from PIL import Image


@pytest.mark.parametrize(
    "garbage",
    [b"", b"hello, not an image", b"\x89PNG\r\n\x1a\n truncated", b"%!PS-Adobe-3.0 EPSF-3.0\n"],
)
def test_decode_rejects_bytes_that_are_not_an_accepted_image(garbage: bytes) -> None:
    with pytest.raises(ImageDecodeError, match="not an image or an unsupported format"):
        decode(garbage)


def test_decode_refuses_images_over_the_pixel_limit() -> None:
    with pytest.raises(
        ImageTooLarge, match=r"20x20 \(400 pixels\), over the limit MAX_IMAGE_PIXELS \(100\)"
    ):
        decode(image_bytes((20, 20)), ImageLimits(side=64, pixels=100))


def test_decode_gives_rgb_or_rgba() -> None:
    assert decode(image_bytes(mode="L", colour=(10,))).mode == "RGB"
    assert decode(image_bytes(mode="RGBA", colour=(1, 2, 3, 4))).mode == "RGBA"
    assert decode(image_bytes(format="GIF", mode="P", colour=(3,))).mode == "RGB"


def test_decode_keeps_transparency_of_palette_images() -> None:
    img = Image.new("P", (4, 4), 0)
    img.info["transparency"] = 0
    buffer = io.BytesIO()
    img.save(buffer, "PNG", transparency=0)
    decoded = decode(buffer.getvalue())
    assert decoded.mode == "RGBA"
    assert decoded.getpixel((0, 0)) == (0, 0, 0, 0)


def test_decode_scales_16_bit_greyscale_instead_of_clipping() -> None:
    buffer = io.BytesIO()
    Image.new("I;16", (4, 4), 65535).save(buffer, "PNG")
    assert decode(buffer.getvalue()).getpixel((0, 0)) == (255, 255, 255)


def test_decode_applies_exif_orientation() -> None:
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", exif=exif)
    assert decode(buffer.getvalue()).size == (20, 40)


@pytest.mark.parametrize(
    ("fmt", "content_type", "ext", "pil_format"),
    [
        ("png", "image/png", "png", "PNG"),
        ("jpeg", "image/jpeg", "jpg", "JPEG"),
        ("webp", "image/webp", "webp", "WEBP"),
    ],
)
def test_encode_describes_what_it_wrote(
    fmt: ImageFormat, content_type: str, ext: str, pil_format: str
) -> None:
    result = encode(Image.new("RGB", (7, 5), (1, 2, 3)), fmt)
    assert (result.content_type, result.ext, result.width, result.height) == (
        content_type,
        ext,
        7,
        5,
    )
    assert open_bytes(result.data).format == pil_format


def test_encode_jpeg_puts_transparency_on_white() -> None:
    result = encode(Image.new("RGBA", (8, 8), (255, 0, 0, 0)), "jpeg")
    r, g, b = open_bytes(result.data).getpixel((4, 4))  # type: ignore[misc]
    assert min(r, g, b) > 245


def test_encode_rejects_unknown_format_and_bad_quality() -> None:
    img = Image.new("RGB", (2, 2))
    with pytest.raises(ImageOperationError, match="unsupported output format"):
        encode(img, "gif")  # type: ignore[arg-type]
    with pytest.raises(ImageOperationError, match="quality"):
        encode(img, "jpeg", quality=0)
