"""Image operations: pure functions from input bytes and plain parameters to an `ImageResult`.

Each decodes its input (see `codec.decode`), works on an RGB/RGBA image and encodes the result in
the input's format when that is png, jpeg or webp, and as png otherwise (`convert` excepted).
"""

from __future__ import annotations

from typing import Final, Literal

from PIL import Image, ImageColor, ImageDraw, ImageEnhance, ImageFont, ImageOps

from executor.imaging.codec import (
    DEFAULT_LIMITS,
    ImageLimits,
    check_format,
    check_size,
    encode,
    open_image,
)
from executor.imaging.result import ImageFormat, ImageOperationError, ImageResult

Fit = Literal["cover", "contain", "fill"]
FITS: Final[tuple[Fit, ...]] = ("cover", "contain", "fill")

MAX_TEMPERATURE_GAIN: Final = 0.2
"""At temperature ±1 one of red/blue is scaled by 1.2 and the other by 0.8."""

MAX_FONT_SIZE: Final = 2048


def adjust(
    data: bytes,
    *,
    brightness: float = 1.0,
    contrast: float = 1.0,
    saturation: float = 1.0,
    temperature: float = 0.0,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> ImageResult:
    """Change brightness, contrast and saturation (factors, 1.0 = unchanged, 0 = black/grey/
    greyscale) and colour temperature (-1 cool … 0 unchanged … 1 warm). Alpha is kept as is."""
    for name, factor in (
        ("brightness", brightness),
        ("contrast", contrast),
        ("saturation", saturation),
    ):
        if not 0.0 <= factor <= 10.0:
            raise ImageOperationError(f"{name} must be between 0 and 10, got {factor}")
    if not -1.0 <= temperature <= 1.0:
        raise ImageOperationError(f"temperature must be between -1 and 1, got {temperature}")
    img, fmt = open_image(data, limits)
    alpha = img.getchannel("A") if img.mode == "RGBA" else None
    rgb = img.convert("RGB") if alpha is not None else img
    if brightness != 1.0:
        rgb = ImageEnhance.Brightness(rgb).enhance(brightness)
    if contrast != 1.0:
        rgb = ImageEnhance.Contrast(rgb).enhance(contrast)
    if saturation != 1.0:
        rgb = ImageEnhance.Color(rgb).enhance(saturation)
    if temperature != 0.0:
        rgb = _shift_temperature(rgb, temperature)
    if alpha is not None:
        rgb.putalpha(alpha)
    return encode(rgb, fmt)


def _shift_temperature(rgb: Image.Image, temperature: float) -> Image.Image:
    red_gain = 1.0 + MAX_TEMPERATURE_GAIN * temperature
    blue_gain = 1.0 - MAX_TEMPERATURE_GAIN * temperature
    identity = list(range(256))
    lut = (
        [min(255, round(v * red_gain)) for v in identity]
        + identity
        + [min(255, round(v * blue_gain)) for v in identity]
    )
    return rgb.point(lut)


def resize(
    data: bytes,
    *,
    width: int,
    height: int,
    fit: Fit = "cover",
    background: str = "#000000",
    limits: ImageLimits = DEFAULT_LIMITS,
) -> ImageResult:
    """Resize to exactly `width`x`height`.

    cover: scale to fill, then crop the centre; contain: scale to fit, pad with `background`
    (any CSS colour Pillow knows; "#RRGGBBAA" with alpha < FF makes the padding transparent);
    fill: stretch, ignoring the aspect ratio.
    """
    if not (width >= 1 and height >= 1):
        raise ImageOperationError(f"width and height must be positive, got {width}x{height}")
    check_size(width, height, limits, what="the resized image")
    if fit not in FITS:
        raise ImageOperationError(f"unknown fit {fit!r}; use one of {FITS}")
    img, fmt = open_image(data, limits)
    size = (width, height)
    if fit == "cover":
        out = ImageOps.fit(img, size, Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    elif fit == "fill":
        out = img.resize(size, Image.Resampling.LANCZOS)
    else:
        colour = _colour(background, "background")
        mode = "RGBA" if img.mode == "RGBA" or colour[3] < 255 else "RGB"
        fitted = ImageOps.contain(img, size, Image.Resampling.LANCZOS).convert(mode)
        out = Image.new(mode, size, colour if mode == "RGBA" else colour[:3])
        offset = ((width - fitted.width) // 2, (height - fitted.height) // 2)
        if mode == "RGBA":
            out.alpha_composite(fitted, offset)
        else:
            out.paste(fitted, offset)
    return encode(out, fmt)


def crop(
    data: bytes,
    *,
    x: int,
    y: int,
    width: int,
    height: int,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> ImageResult:
    """Cut out the `width`x`height` box whose top-left corner is (`x`, `y`).

    The box must lie inside the image; otherwise `ImageOperationError` says the image's size.
    """
    if width < 1 or height < 1:
        raise ImageOperationError(f"crop size must be positive, got {width}x{height}")
    img, fmt = open_image(data, limits)
    if x < 0 or y < 0 or x + width > img.width or y + height > img.height:
        raise ImageOperationError(
            f"crop box x={x}, y={y}, {width}x{height} does not fit inside the "
            f"{img.width}x{img.height} image"
        )
    return encode(img.crop((x, y, x + width, y + height)), fmt)


def text(
    data: bytes,
    *,
    text: str,
    x: int,
    y: int,
    size: int = 32,
    color: str = "#ffffff",
    limits: ImageLimits = DEFAULT_LIMITS,
) -> ImageResult:
    """Draw `text` (may hold newlines) with its top-left near (`x`, `y`), `size` pixels tall
    (the font's em size), in `color` (a CSS colour; "#RRGGBBAA" blends).

    The font is Pillow's bundled Aileron (Latin script); text past the edge is clipped.
    """
    if not 1 <= size <= MAX_FONT_SIZE:
        raise ImageOperationError(f"font size must be between 1 and {MAX_FONT_SIZE}, got {size}")
    colour = _colour(color, "color")
    img, fmt = open_image(data, limits)
    if not text:
        return encode(img, fmt)
    font = scalable_font(size)
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).text((x, y), text, font=font, fill=colour)
    mode = img.mode
    out = img.convert("RGBA")
    out.alpha_composite(layer)
    return encode(out if mode == "RGBA" else out.convert("RGB"), fmt)


def scalable_font(size: float) -> ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font at `size` pixels (needs Pillow built with FreeType)."""
    font = ImageFont.load_default(size=size)
    if not isinstance(font, ImageFont.FreeTypeFont):
        raise ImageOperationError("drawing text needs Pillow built with FreeType")
    return font


def composite(
    base: bytes,
    overlay: bytes,
    *,
    x: int = 0,
    y: int = 0,
    opacity: float = 1.0,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> ImageResult:
    """Alpha-composite `overlay` onto `base` with the overlay's top-left at (`x`, `y`) (may be
    negative: the part outside the base is dropped), its alpha scaled by `opacity` (0..1).

    The result has the base's size and format; it keeps an alpha channel only if the base has one.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ImageOperationError(f"opacity must be between 0 and 1, got {opacity}")
    base_img, fmt = open_image(base, limits)
    over = open_image(overlay, limits)[0].convert("RGBA")
    if x >= base_img.width or y >= base_img.height or x + over.width <= 0 or y + over.height <= 0:
        raise ImageOperationError(
            f"overlay ({over.width}x{over.height} at x={x}, y={y}) lies entirely outside the "
            f"{base_img.width}x{base_img.height} base image"
        )
    if opacity < 1.0:
        over.putalpha(over.getchannel("A").point(lambda a: a * opacity))
    layer = Image.new("RGBA", base_img.size, (0, 0, 0, 0))
    layer.paste(over, (x, y))
    mode = base_img.mode
    out = base_img.convert("RGBA")
    out.alpha_composite(layer)
    return encode(out if mode == "RGBA" else out.convert("RGB"), fmt)


def convert(
    data: bytes, *, format: ImageFormat, quality: int = 90, limits: ImageLimits = DEFAULT_LIMITS
) -> ImageResult:
    """Re-encode as png, jpeg or webp (`quality` 1..100 for jpeg/webp; jpeg flattens alpha
    onto white)."""
    fmt = check_format(format)
    img, _ = open_image(data, limits)
    return encode(img, fmt, quality)


def _colour(value: str, name: str) -> tuple[int, int, int, int]:
    try:
        rgba = ImageColor.getcolor(value, "RGBA")
    except (ValueError, AttributeError) as exc:
        raise ImageOperationError(f"{name} {value!r} is not a colour") from exc
    assert isinstance(rgba, tuple)
    r, g, b, a = rgba
    return r, g, b, a
