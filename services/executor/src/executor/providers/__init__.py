"""Image generation providers: OpenAI, Replicate, fal, ComfyUI and the offline renderer.

`Providers.resolve` picks a node's provider and credentials; each provider turns a
`GenerationRequest` into images and raises `ProviderError` (or `EgressRefused`) when it cannot.
"""

from executor.providers.base import (
    PROVIDER_NAMES,
    Credentials,
    Generation,
    GenerationRequest,
    ImageProvider,
    ProviderError,
    ProviderName,
)
from executor.providers.clients import ProviderClients
from executor.providers.comfyui import ComfyUI, GraphError
from executor.providers.fal_queue import FalQueue
from executor.providers.offline import Offline
from executor.providers.openai_images import OpenAIImages
from executor.providers.registry import Providers, TenantCredentials
from executor.providers.replicate_predictions import ReplicatePredictions

__all__ = [
    "PROVIDER_NAMES",
    "ComfyUI",
    "Credentials",
    "FalQueue",
    "Generation",
    "GenerationRequest",
    "GraphError",
    "ImageProvider",
    "Offline",
    "OpenAIImages",
    "ProviderClients",
    "ProviderError",
    "ProviderName",
    "Providers",
    "ReplicatePredictions",
    "TenantCredentials",
]
