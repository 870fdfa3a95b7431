"""The offline renderer as a provider: the same picture as the pure function, several images
differing by seed, and every step saying it was not a model."""

from __future__ import annotations

from executor.imaging import generate
from executor.providers import Credentials, GenerationRequest, Offline


async def test_offline_provider_matches_the_pure_function_and_says_it_is_no_model() -> None:
    request = GenerationRequest(
        prompt="a lighthouse", negative_prompt="blurry", width=48, height=32, seed=3
    )
    generation = await Offline().generate(request, Credentials())
    assert generation.images == [
        generate(prompt="a lighthouse", width=48, height=32, seed=3, quality="high")
    ]
    meta = generation.metadata(duration_seconds=1.0)
    assert (meta["name"], meta["model"], meta["requestId"]) == ("offline", "placeholder", None)
    assert meta["ignoredParams"] == ["negativePrompt"]
    assert meta["durationSeconds"] == 1.0  # the step's caller times it


async def test_offline_batches_differ_image_by_image() -> None:
    request = GenerationRequest(prompt="a lighthouse", width=32, height=32, seed=3, count=3)
    images = (await Offline().generate(request, Credentials())).images
    assert len(images) == 3
    assert len({i.data for i in images}) == 3
