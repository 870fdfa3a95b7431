"""The built-in offline renderer (`executor.imaging.placeholder`): a deterministic picture from
the prompt and seed, drawn here without a network. It is not a model; steps it runs say so
(`provider.name` "offline", `provider.model` "placeholder")."""

from __future__ import annotations

import asyncio
from typing import Final

from executor.imaging.placeholder import generate
from executor.providers.base import Credentials, Generation, GenerationRequest, ProviderName

MODEL: Final = "placeholder"


class Offline:
    name: ProviderName = "offline"

    async def generate(self, request: GenerationRequest, creds: Credentials) -> Generation:
        images = [
            await asyncio.to_thread(
                generate,
                prompt=request.prompt,
                width=request.width,
                height=request.height,
                # Each image of a batch differs, as a model's would.
                seed=None if request.seed is None else (request.seed + i) % 2**63,
                quality=request.quality,
            )
            for i in range(request.count)
        ]
        return Generation(
            images=images,
            provider=self.name,
            model=MODEL,
            request_id=None,
            ignored=("negativePrompt",) if request.negative_prompt is not None else (),
        )
