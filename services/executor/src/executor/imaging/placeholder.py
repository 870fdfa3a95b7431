"""The offline stand-in image provider: NOT a generative model.

`generate` paints a deterministic abstract picture (a multi-stop gradient with soft shapes) whose
colours and layout come from sha256(prompt, seed), and captions it with the prompt's first words
and the words "offline placeholder", so anyone looking at it can tell it is a stand-in derived
from the prompt. Same inputs give byte-identical output; it lets the whole system run offline.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import random
from typing import Final, Literal

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from executor.imaging.codec import encode
from executor.imaging.ops import scalable_font
from executor.imaging.result import ImageOperationError, ImageResult

Quality = Literal["draft", "high"]
QUALITIES: Final[tuple[Quality, ...]] = ("draft", "high")

MAX_GENERATE_SIDE: Final = 4096
PLACEHOLDER_LABEL: Final = "offline placeholder"

_GRADIENT_CELLS: Final = 48  # gradient computed on a tiny grid, then smoothly upscaled
_DRAFT_SIDE: Final = 384  # draft paints its background at most this large, then upscales
_CAPTION_WORDS: Final = 8

Rgb = tuple[int, int, int]


def generate(
    *,
    prompt: str,
    width: int,
    height: int,
    seed: int | None = None,
    quality: Quality = "high",
) -> ImageResult:
    """Render the deterministic placeholder picture for `prompt`/`seed` as a `width`x`height` png.

    draft paints the background at a lower resolution and upscales it; high paints it at full
    resolution with a few extra crisp details. The caption is always drawn at full resolution.
    """
    if not (1 <= width <= MAX_GENERATE_SIDE and 1 <= height <= MAX_GENERATE_SIDE):
        raise ImageOperationError(
            f"width and height must be between 1 and {MAX_GENERATE_SIDE}, got {width}x{height}"
        )
    if quality not in QUALITIES:
        raise ImageOperationError(f"unknown quality {quality!r}; use one of {QUALITIES}")
    rng = random.Random(_digest(prompt, seed))
    palette = _palette(rng)

    scale = 1.0 if quality == "high" else min(1.0, _DRAFT_SIDE / max(width, height))
    inner = (max(1, round(width * scale)), max(1, round(height * scale)))
    canvas = _gradient(rng, palette, inner)
    _soft_shapes(rng, palette, canvas, count=5 if quality == "draft" else 7)
    if canvas.size != (width, height):
        canvas = canvas.resize((width, height), Image.Resampling.BICUBIC)
    if quality == "high":
        _crisp_details(rng, palette, canvas)
    _caption(canvas, prompt)
    return encode(canvas, "png")


def _digest(prompt: str, seed: int | None) -> int:
    material = f"{prompt}\x00{'none' if seed is None else seed}".encode()
    return int.from_bytes(hashlib.sha256(material).digest(), "big")


def _palette(rng: random.Random) -> list[Rgb]:
    """Four to five related colours: a base hue plus analogous / complementary neighbours."""
    base = rng.random()
    offsets = rng.choice([(0.0, 0.08, 0.16, 0.5), (0.0, 0.33, 0.66, 0.1), (0.0, 0.5, 0.58, 0.92)])
    colours = []
    for i, offset in enumerate((*offsets, rng.uniform(0.0, 1.0))):
        saturation = rng.uniform(0.45, 0.85)
        value = rng.uniform(0.35, 0.95) if i else rng.uniform(0.2, 0.5)
        r, g, b = colorsys.hsv_to_rgb((base + offset) % 1.0, saturation, value)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours


def _mix(a: Rgb, b: Rgb, t: float) -> Rgb:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _gradient(rng: random.Random, palette: list[Rgb], size: tuple[int, int]) -> Image.Image:
    """A linear multi-stop gradient at a random angle, smoothstepped between stops."""
    stops = palette[:4]
    rng.shuffle(stops)
    angle = rng.uniform(0.0, 2 * math.pi)
    dx, dy = math.cos(angle), math.sin(angle)
    aspect = size[0] / size[1]
    gw = max(2, round(_GRADIENT_CELLS * min(1.0, aspect)))
    gh = max(2, round(_GRADIENT_CELLS * min(1.0, 1 / aspect)))
    span = abs(dx) * aspect + abs(dy)
    pixels: list[Rgb] = []
    for j in range(gh):
        v = j / (gh - 1) - 0.5
        for i in range(gw):
            u = (i / (gw - 1) - 0.5) * aspect
            t = min(1.0, max(0.0, (u * dx + v * dy) / span + 0.5)) * (len(stops) - 1)
            k = min(int(t), len(stops) - 2)
            f = t - k
            pixels.append(_mix(stops[k], stops[k + 1], f * f * (3 - 2 * f)))
    small = Image.new("RGB", (gw, gh))
    small.putdata(pixels)
    return small.resize(size, Image.Resampling.BICUBIC)


def _soft_shapes(
    rng: random.Random, palette: list[Rgb], canvas: Image.Image, *, count: int
) -> None:
    """Blurred translucent ellipses, painted on one quarter-resolution layer (they are soft, so
    upscaling loses nothing) and composited onto the canvas once."""
    w, h = canvas.size
    lw, lh = max(1, w // 4), max(1, h // 4)
    short = min(lw, lh)
    layer = Image.new("RGBA", (lw, lh), (0, 0, 0, 0))
    for _ in range(count):
        cx, cy = rng.uniform(0.1, 0.9) * lw, rng.uniform(0.1, 0.9) * lh
        rx, ry = rng.uniform(0.12, 0.35) * short, rng.uniform(0.12, 0.35) * short
        lighten = rng.uniform(-0.3, 0.5)
        colour = rng.choice(palette)
        colour = _mix(colour, (255, 255, 255) if lighten > 0 else (0, 0, 0), abs(lighten))
        mask = Image.new("L", (lw, lh), 0)
        ImageDraw.Draw(mask).ellipse(
            (cx - rx, cy - ry, cx + rx, cy + ry), fill=round(rng.uniform(90, 190))
        )
        shape = Image.new("RGBA", (lw, lh), colour)
        shape.putalpha(mask.filter(ImageFilter.GaussianBlur(max(rx, ry) * rng.uniform(0.25, 0.5))))
        layer.alpha_composite(shape)
    full = layer.resize((w, h), Image.Resampling.BILINEAR)
    canvas.paste(full, (0, 0), full)


def _crisp_details(rng: random.Random, palette: list[Rgb], canvas: Image.Image) -> None:
    """A few thin translucent rings, drawn at full resolution (high quality only)."""
    w, h = canvas.size
    draw = ImageDraw.Draw(canvas, "RGBA")
    short = min(w, h)
    stroke = max(1, short // 256)
    for _ in range(3):
        cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
        r = rng.uniform(0.05, 0.2) * short
        colour = _mix(rng.choice(palette), (255, 255, 255), 0.6)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(*colour, 110), width=stroke)


def _caption(canvas: Image.Image, prompt: str) -> None:
    """A translucent band at the bottom with the prompt's first words and the placeholder label."""
    w, h = canvas.size
    size = max(8, round(min(w, h) * 0.05))
    label_size = max(6, round(size * 0.6))
    margin = max(2, size // 2)
    band = margin * 2 + size + label_size + margin // 2
    draw = ImageDraw.Draw(canvas, "RGBA")
    draw.rectangle((0, h - band, w, h), fill=(0, 0, 0, 140))
    font = scalable_font(size)
    words = prompt.split()
    caption = _fit_words(words, font, w - 2 * margin) if words else "(no prompt)"
    top = h - band + margin
    draw.text((margin, top), caption, font=font, fill=(255, 255, 255, 255))
    draw.text(
        (margin, top + size + margin // 2),
        PLACEHOLDER_LABEL,
        font=scalable_font(label_size),
        fill=(255, 255, 255, 190),
    )


def _fit_words(words: list[str], font: ImageFont.FreeTypeFont, max_width: int) -> str:
    shown = words[:_CAPTION_WORDS]
    while shown:
        line = " ".join(shown) + ("…" if len(shown) < len(words) else "")
        if font.getlength(line) <= max_width:
            return line
        shown = shown[:-1]
    return words[0][:12] + "…"
