from __future__ import annotations

import pytest
from executor.imaging import ImageOperationError, generate, placeholder
from imaging_samples import open_bytes
from PIL import ImageChops, ImageStat


def test_generate_is_deterministic_to_the_byte() -> None:
    first = generate(prompt="a red fox in snow", width=96, height=64, seed=7, quality="high")
    again = generate(prompt="a red fox in snow", width=96, height=64, seed=7, quality="high")
    assert first == again


@pytest.mark.parametrize(
    "other",
    [
        {"prompt": "a blue whale at dusk", "seed": 7},
        {"prompt": "a red fox in snow", "seed": 8},
        {"prompt": "a red fox in snow", "seed": None},
    ],
)
def test_generate_differs_visibly_for_other_inputs(other: dict[str, object]) -> None:
    base = generate(prompt="a red fox in snow", width=96, height=96, seed=7, quality="draft")
    changed = generate(width=96, height=96, quality="draft", **other)  # type: ignore[arg-type]
    diff = ImageChops.difference(open_bytes(base.data), open_bytes(changed.data))
    # Mean absolute difference over the picture, not just a few pixels of the caption.
    assert sum(ImageStat.Stat(diff).mean) / 3 > 8


@pytest.mark.parametrize("quality", ["draft", "high"])
@pytest.mark.parametrize("size", [(64, 64), (120, 40), (30, 90)])
def test_generate_returns_a_png_of_the_requested_size(quality: str, size: tuple[int, int]) -> None:
    result = generate(prompt="x", width=size[0], height=size[1], seed=1, quality=quality)  # type: ignore[arg-type]
    assert (result.width, result.height, result.content_type, result.ext) == (
        *size,
        "image/png",
        "png",
    )
    decoded = open_bytes(result.data)
    assert decoded.format == "PNG"
    assert decoded.size == size


def test_generate_captions_the_prompt_at_the_bottom(monkeypatch: pytest.MonkeyPatch) -> None:
    # Same hash (so the same background), different caption text.
    monkeypatch.setattr(placeholder, "_digest", lambda prompt, seed: 12345)
    a = open_bytes(generate(prompt="alpha words", width=200, height=200, seed=1).data)
    b = open_bytes(generate(prompt="other caption", width=200, height=200, seed=1).data)
    bbox = ImageChops.difference(a, b).getbbox()
    assert bbox is not None
    assert bbox[1] > 150  # only the caption band near the bottom differs


def test_generate_says_it_is_a_placeholder() -> None:
    assert "not a generative model" in (placeholder.__doc__ or "").lower()
    assert placeholder.PLACEHOLDER_LABEL == "offline placeholder"


def test_generate_rejects_bad_parameters() -> None:
    with pytest.raises(ImageOperationError, match="width and height"):
        generate(prompt="x", width=0, height=10, seed=None, quality="draft")
    with pytest.raises(ImageOperationError, match="quality"):
        generate(prompt="x", width=10, height=10, seed=None, quality="ultra")  # type: ignore[arg-type]
