from __future__ import annotations

import io

import pytest
from executor.imaging import (
    ImageOperationError,
    adjust,
    composite,
    convert,
    crop,
    resize,
    text,
)
from imaging_samples import image_bytes, mean, open_bytes
from PIL import Image, ImageChops


def _halves(size: tuple[int, int] = (40, 20)) -> bytes:
    """Left half red, right half blue."""
    img = Image.new("RGB", size, (255, 0, 0))
    img.paste((0, 0, 255), (size[0] // 2, 0, size[0], size[1]))
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


# resize


@pytest.mark.parametrize("fit", ["cover", "contain", "fill"])
@pytest.mark.parametrize("target", [(16, 16), (50, 10), (9, 30)])
def test_resize_outputs_exactly_the_requested_size(fit: str, target: tuple[int, int]) -> None:
    result = resize(_halves(), width=target[0], height=target[1], fit=fit)  # type: ignore[arg-type]
    assert (result.width, result.height) == target
    assert open_bytes(result.data).size == target


def test_resize_cover_crops_the_centre() -> None:
    out = open_bytes(resize(_halves((40, 20)), width=10, height=10, fit="cover").data)
    assert out.convert("RGB").getpixel((1, 5))[0] > 200  # type: ignore[index]
    assert out.convert("RGB").getpixel((8, 5))[2] > 200  # type: ignore[index]


def test_resize_contain_pads_with_the_background() -> None:
    result = resize(_halves((40, 20)), width=40, height=40, fit="contain", background="#00ff00")
    out = open_bytes(result.data).convert("RGB")
    assert out.getpixel((20, 2)) == (0, 255, 0)  # padding above
    assert out.getpixel((20, 37)) == (0, 255, 0)  # padding below
    assert out.getpixel((5, 20)) == (255, 0, 0)  # picture in the middle


def test_resize_contain_with_a_transparent_background_gives_alpha() -> None:
    result = resize(_halves(), width=40, height=40, fit="contain", background="#00000000")
    out = open_bytes(result.data)
    assert out.mode == "RGBA"
    assert out.getpixel((20, 1)) == (0, 0, 0, 0)


def test_resize_fill_stretches() -> None:
    out = open_bytes(resize(_halves((40, 20)), width=10, height=40, fit="fill").data)
    assert out.getpixel((1, 20))[0] > 200  # type: ignore[index]
    assert out.getpixel((8, 20))[2] > 200  # type: ignore[index]


def test_resize_rejects_bad_parameters() -> None:
    with pytest.raises(ImageOperationError, match="width and height"):
        resize(_halves(), width=0, height=10, fit="fill")
    with pytest.raises(ImageOperationError, match="unknown fit"):
        resize(_halves(), width=5, height=5, fit="stretch")  # type: ignore[arg-type]
    with pytest.raises(ImageOperationError, match="not a colour"):
        resize(_halves(), width=5, height=5, fit="contain", background="nope")


# crop


def test_crop_cuts_out_the_box() -> None:
    result = crop(_halves((40, 20)), x=25, y=5, width=10, height=8)
    out = open_bytes(result.data).convert("RGB")
    assert (result.width, result.height) == (10, 8)
    assert out.getcolors() == [(80, (0, 0, 255))]


@pytest.mark.parametrize(
    ("x", "y", "width", "height"),
    [(35, 0, 10, 10), (0, 15, 10, 10), (-1, 0, 5, 5), (0, 0, 41, 20), (100, 100, 1, 1)],
)
def test_crop_outside_the_image_says_the_image_size(
    x: int, y: int, width: int, height: int
) -> None:
    with pytest.raises(ImageOperationError, match="40x20 image"):
        crop(_halves((40, 20)), x=x, y=y, width=width, height=height)


def test_crop_rejects_empty_box() -> None:
    with pytest.raises(ImageOperationError, match="positive"):
        crop(_halves(), x=0, y=0, width=0, height=5)


# adjust


def test_adjust_temperature_warms_and_cools() -> None:
    grey = image_bytes(colour=(120, 120, 120))
    warm = open_bytes(adjust(grey, temperature=0.5).data)
    cool = open_bytes(adjust(grey, temperature=-0.5).data)
    assert mean(warm, "R") > 120 > mean(warm, "B")
    assert mean(cool, "R") < 120 < mean(cool, "B")
    assert mean(warm, "G") == mean(cool, "G") == 120


def test_adjust_with_defaults_leaves_pixels_untouched() -> None:
    source = _halves()
    out = open_bytes(adjust(source, temperature=0.0).data)
    assert (
        ImageChops.difference(out.convert("RGB"), open_bytes(source).convert("RGB")).getbbox()
        is None
    )


def test_adjust_brightness_contrast_saturation() -> None:
    source = image_bytes(colour=(200, 100, 50))
    assert mean(open_bytes(adjust(source, brightness=0.5).data), "R") == 100
    grey = open_bytes(adjust(source, saturation=0.0).data).convert("RGB")
    r, g, b = grey.getpixel((0, 0))  # type: ignore[misc]
    assert r == g == b
    flat = open_bytes(adjust(_halves(), contrast=0.0).data).convert("RGB")
    assert len(flat.getcolors() or []) == 1


def test_adjust_keeps_format_and_alpha() -> None:
    jpeg = adjust(image_bytes(format="JPEG"), brightness=1.2)
    assert jpeg.content_type == "image/jpeg"
    assert open_bytes(jpeg.data).format == "JPEG"
    gif = adjust(image_bytes(format="GIF", mode="P", colour=(1,)), brightness=1.2)
    assert gif.content_type == "image/png"
    rgba = adjust(image_bytes(mode="RGBA", colour=(100, 100, 100, 77)), brightness=2.0)
    assert open_bytes(rgba.data).getpixel((0, 0)) == (200, 200, 200, 77)


def test_adjust_rejects_out_of_range_values() -> None:
    with pytest.raises(ImageOperationError, match="temperature"):
        adjust(_halves(), temperature=1.5)
    with pytest.raises(ImageOperationError, match="brightness"):
        adjust(_halves(), brightness=-1)


# convert


@pytest.mark.parametrize(
    ("fmt", "content_type", "pil_format"),
    [("jpeg", "image/jpeg", "JPEG"), ("webp", "image/webp", "WEBP"), ("png", "image/png", "PNG")],
)
def test_convert_produces_a_decodable_image_of_that_format(
    fmt: str, content_type: str, pil_format: str
) -> None:
    result = convert(image_bytes(mode="RGBA", colour=(9, 9, 9, 128)), format=fmt, quality=80)  # type: ignore[arg-type]
    assert result.content_type == content_type
    decoded = open_bytes(result.data)
    assert decoded.format == pil_format
    assert decoded.size == (result.width, result.height) == (32, 24)


def test_convert_lower_quality_gives_smaller_jpeg() -> None:
    noisy = Image.effect_noise((64, 64), 60).convert("RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, "PNG")
    low = convert(buffer.getvalue(), format="jpeg", quality=10)
    high = convert(buffer.getvalue(), format="jpeg", quality=95)
    assert len(low.data) < len(high.data)


# composite


def test_composite_places_the_overlay() -> None:
    base = image_bytes((40, 30), (0, 0, 0))
    overlay = image_bytes((10, 5), (255, 255, 255))
    result = composite(base, overlay, x=12, y=20, opacity=1.0)
    out = open_bytes(result.data).convert("RGB")
    assert (result.width, result.height) == (40, 30)
    assert ImageChops.difference(out, Image.new("RGB", (40, 30))).getbbox() == (12, 20, 22, 25)


def test_composite_blends_with_opacity_and_overlay_alpha() -> None:
    base = image_bytes((10, 10), (0, 0, 0))
    half = open_bytes(composite(base, image_bytes((10, 10), (200, 200, 200)), opacity=0.5).data)
    assert half.getpixel((5, 5)) == (100, 100, 100)
    transparent = image_bytes((10, 10), (255, 255, 255, 0), mode="RGBA")
    untouched = open_bytes(composite(base, transparent).data)
    assert untouched.getpixel((5, 5)) == (0, 0, 0)


def test_composite_clips_overlay_at_negative_offsets() -> None:
    base = image_bytes((10, 10), (0, 0, 0))
    out = open_bytes(composite(base, image_bytes((6, 6), (255, 0, 0)), x=-3, y=-3).data)
    assert ImageChops.difference(out.convert("RGB"), Image.new("RGB", (10, 10))).getbbox() == (
        0,
        0,
        3,
        3,
    )


def test_composite_overlay_entirely_outside_is_an_error() -> None:
    with pytest.raises(ImageOperationError, match="entirely outside the 10x10 base"):
        composite(image_bytes((10, 10)), image_bytes((4, 4)), x=10, y=0)


# text


def test_text_changes_pixels_only_near_where_it_is_drawn() -> None:
    base = image_bytes((200, 100), (0, 0, 0))
    out = open_bytes(text(base, text="Hi", x=50, y=30, size=24, color="#ffffff").data)
    bbox = ImageChops.difference(out.convert("RGB"), Image.new("RGB", (200, 100))).getbbox()
    assert bbox is not None
    left, top, right, bottom = bbox
    assert 50 <= left < 60
    assert 30 <= top < 50
    assert right <= 50 + 40
    assert bottom <= 30 + 30


def test_text_renders_at_the_requested_size() -> None:
    def ink_height(size: int) -> int:
        base = image_bytes((400, 200), (0, 0, 0))
        out = open_bytes(text(base, text="H", x=10, y=10, size=size, color="white").data)
        bbox = ImageChops.difference(out.convert("RGB"), Image.new("RGB", (400, 200))).getbbox()
        assert bbox is not None
        return bbox[3] - bbox[1]

    small, large = ink_height(20), ink_height(100)
    assert 4.0 < large / small < 6.0
    assert 60 < large <= 100  # a capital's height is most of the em size


def test_text_keeps_size_and_rejects_bad_colour() -> None:
    base = image_bytes((30, 20))
    result = text(base, text="x", x=0, y=0, size=10, color="red")
    assert (result.width, result.height) == (30, 20)
    with pytest.raises(ImageOperationError, match="not a colour"):
        text(base, text="x", x=0, y=0, size=10, color="reddish")
