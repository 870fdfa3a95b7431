"""The node catalog: every node type, its params model (which is its schema) and its outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from workflow.definition import RetryPolicy, documented_maximum
from workflow.limits import Limits

ASSET_REF_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$"
COLOR_PATTERN = r"^#[0-9a-fA-F]{6}$"

AssetRef = Annotated[str, Field(pattern=ASSET_REF_PATTERN)]
"""An object in S3-compatible storage: ``s3://bucket/key``."""

Color = Annotated[str, Field(pattern=COLOR_PATTERN)]
"""An RGB colour as ``#rrggbb``."""


class NodeKind(StrEnum):
    EXECUTABLE = "executable"
    """Run by an executor; the orchestrator only dispatches it."""
    CONTROL = "control"
    """Interpreted by the orchestrator itself (chaining, fan-out, waiting)."""


class OutputKind(StrEnum):
    IMAGE = "image"
    TEXT = "text"
    JSON = "json"
    NUMBER = "number"


@dataclass(frozen=True)
class NodeType:
    name: str
    kind: NodeKind
    params_model: type[BaseModel]
    outputs: Mapping[str, OutputKind]
    item_scope: frozenset[str] = field(default_factory=frozenset)
    """Params in which ``{{ item.… }}`` may be used, as dotted paths (``node.params`` for a map:
    its template's params and everything inside them); empty for most."""
    dynamic_outputs: bool = False
    """Outputs are only known at run time (a chained workflow's): any output name may be
    referenced, and none is required."""
    literal_params: frozenset[str] = field(default_factory=frozenset)
    """Params that must be written out literally: no ``{{ … }}`` reference allowed."""

    @property
    def first_output(self) -> str | None:
        return next(iter(self.outputs), None)


class NodeParams(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )


ImageProviderName = Literal["offline", "openai", "replicate", "fal", "comfyui"]
MAX_IMAGES_PER_STEP = 10
MAX_PROVIDER_OPTIONS = 100
MAX_GRAPH_NODES = 1000


class GenerateParams(NodeParams):
    prompt: str = Field(min_length=1, max_length=4000)
    """What to draw."""
    negative_prompt: str | None = Field(None, max_length=4000)
    """What to keep out of the picture."""
    width: int = Field(1024, ge=64, le=4096)
    height: int = Field(1024, ge=64, le=4096)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    """Same prompt and seed give the same picture; unset means the provider picks one."""
    quality: Literal["draft", "high"] = "high"
    provider: ImageProviderName | None = None
    """Who draws it: ``openai``, ``replicate``, ``fal``, ``comfyui`` or ``offline`` (the built-in
    renderer, not a model). Unset means the deployment's default (IMAGE_PROVIDER)."""
    model: str | None = Field(None, min_length=1, max_length=256)
    """The provider's model: ``gpt-image-1``; ``owner/name``, ``owner/name:version`` or
    ``deployments/owner/name`` on Replicate; ``fal-ai/flux/dev`` on fal. Unset means the
    tenant's or the deployment's default."""
    count: int = Field(1, ge=1, le=MAX_IMAGES_PER_STEP)
    """How many images to make; the first is ``image``, all are ``images``."""
    options: dict[str, Any] = Field(default_factory=dict, max_length=MAX_PROVIDER_OPTIONS)
    """Inputs of the provider's own, sent as they are and winning over ours (e.g.
    ``{"aspect_ratio": "16:9"}`` on Replicate, ``{"background": "transparent"}`` on OpenAI)."""
    graph: dict[str, Any] | None = Field(None, max_length=MAX_GRAPH_NODES)
    """comfyui only: the workflow in ComfyUI's API format ("Save (API)")."""
    graph_asset: AssetRef | None = None
    """comfyui only: the same graph stored as a JSON asset (``POST /v1/assets``)."""
    graph_inputs: dict[str, Any] = Field(default_factory=dict, max_length=MAX_PROVIDER_OPTIONS)
    """comfyui only: values placed into the graph, keyed ``<node id or title>.<input>``, e.g.
    ``{"Positive prompt.text": "{{ inputs.prompt }}", "3.seed": 42}``."""

    @model_validator(mode="after")
    def _graph_for_comfyui_only(self) -> GenerateParams:
        has_graph = self.graph is not None or self.graph_asset is not None
        if self.provider == "comfyui" and not has_graph:
            raise ValueError("provider comfyui needs `graph` or `graphAsset`")
        if self.graph is not None and self.graph_asset is not None:
            raise ValueError("give `graph` or `graphAsset`, not both")
        if self.provider not in (None, "comfyui") and (has_graph or self.graph_inputs):
            raise ValueError("`graph`, `graphAsset` and `graphInputs` are for provider comfyui")
        return self


class AdjustParams(NodeParams):
    image: AssetRef
    brightness: float = Field(1.0, ge=0, le=4)
    """1 leaves brightness unchanged, 0 is black."""
    contrast: float = Field(1.0, ge=0, le=4)
    """1 leaves contrast unchanged, 0 is flat grey."""
    saturation: float = Field(1.0, ge=0, le=4)
    """1 leaves colour unchanged, 0 is greyscale."""
    temperature: float = Field(0.0, ge=-1, le=1)
    """Negative is cooler (bluer), positive warmer (more orange)."""


class ResizeParams(NodeParams):
    image: AssetRef
    width: int = Field(ge=1, le=8192)
    height: int = Field(ge=1, le=8192)
    fit: Literal["cover", "contain", "fill"] = "cover"
    """cover crops to fill the box, contain letterboxes, fill stretches."""
    background: Color = "#000000"
    """Letterbox colour, used by ``contain``."""


class CropParams(NodeParams):
    image: AssetRef
    x: int = Field(ge=0)
    """Left edge of the crop box, in pixels."""
    y: int = Field(ge=0)
    """Top edge of the crop box, in pixels."""
    width: int = Field(ge=1, le=8192)
    height: int = Field(ge=1, le=8192)


class TextParams(NodeParams):
    image: AssetRef
    text: str = Field(min_length=1, max_length=2000)
    x: int = 0
    """Left edge of the text, in pixels."""
    y: int = 0
    """Top edge of the text, in pixels."""
    size: int = Field(32, ge=4, le=512)
    """Font size in pixels."""
    color: Color = "#ffffff"


class CompositeParams(NodeParams):
    image: AssetRef
    """The base picture."""
    overlay: AssetRef
    """The picture drawn on top of the base."""
    x: int = 0
    """Where the overlay's left edge goes on the base, in pixels."""
    y: int = 0
    """Where the overlay's top edge goes on the base, in pixels."""
    opacity: float = Field(1.0, ge=0, le=1)


class ConvertParams(NodeParams):
    image: AssetRef
    format: Literal["png", "jpeg", "webp"]
    quality: int = Field(90, ge=1, le=100)
    """Encoder quality for jpeg and webp; png ignores it."""


class TemplateParams(NodeParams):
    template: str = Field(max_length=100_000)
    """Text with ``{{ … }}`` references, interpolated by the orchestrator before dispatch."""


class HttpRequestParams(NodeParams):
    url: str = Field(min_length=1, max_length=8192, pattern=r"^https?://")
    """The target; it must pass the executor's egress policy (no private addresses)."""
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    """Sent as JSON when set."""


WAIT_MAX_SECONDS: float = Limits.model_fields["max_wait_node_seconds"].default
"""The default of MAX_WAIT_NODE_SECONDS: the bound on a resolved ``seconds`` (a configured
lower limit is checked at registration, where the value is literal)."""
MAP_MAX_CONCURRENCY: int = Limits.model_fields["max_map_concurrency"].default


class WaitParams(NodeParams):
    seconds: float = Field(ge=0, le=WAIT_MAX_SECONDS)
    """How long to wait before the node succeeds (at most 7 days)."""


class WorkflowRunParams(NodeParams):
    workflow_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    """The workflow to run as a child run; written literally, never a reference."""
    version: int | None = Field(None, ge=1)
    """The version to run; unset means the latest one when the child starts."""
    inputs: dict[str, Any] = {}
    """The child run's inputs; references are resolved before the child starts."""


class MapTemplate(NodeParams):
    """The node run once per item: an executable type, with ``{{ item.… }}`` in its params."""

    type: str = Field(min_length=1)
    params: dict[str, Any] = {}
    retry: RetryPolicy | None = None
    """Each item is retried on its own with this policy."""
    timeout_seconds: float | None = Field(
        None, gt=0, allow_inf_nan=False, json_schema_extra=documented_maximum("max_timeout_seconds")
    )


class MapParams(NodeParams):
    items: Any
    """The list to map over, usually a reference such as ``{{ inputs.formats }}``."""
    concurrency: int = Field(4, ge=1, le=MAP_MAX_CONCURRENCY)
    """How many items run at once."""
    node: MapTemplate


_IMAGE = MappingProxyType({"image": OutputKind.IMAGE})


def _executable(name: str, params: type[BaseModel], outputs: Mapping[str, OutputKind]) -> NodeType:
    return NodeType(name=name, kind=NodeKind.EXECUTABLE, params_model=params, outputs=outputs)


CATALOG: Mapping[str, NodeType] = MappingProxyType(
    {
        node_type.name: node_type
        for node_type in (
            NodeType(
                name="image.generate",
                kind=NodeKind.EXECUTABLE,
                params_model=GenerateParams,
                outputs=MappingProxyType(
                    {
                        "image": OutputKind.IMAGE,
                        "images": OutputKind.JSON,
                        "provider": OutputKind.JSON,
                    }
                ),
                literal_params=frozenset({"provider"}),
            ),
            _executable("image.adjust", AdjustParams, _IMAGE),
            _executable("image.resize", ResizeParams, _IMAGE),
            _executable("image.crop", CropParams, _IMAGE),
            _executable("image.text", TextParams, _IMAGE),
            _executable("image.composite", CompositeParams, _IMAGE),
            _executable("image.convert", ConvertParams, _IMAGE),
            _executable(
                "http.request",
                HttpRequestParams,
                MappingProxyType(
                    {
                        "status": OutputKind.NUMBER,
                        "body": OutputKind.JSON,
                        "headers": OutputKind.JSON,
                    }
                ),
            ),
            _executable(
                "text.template", TemplateParams, MappingProxyType({"text": OutputKind.TEXT})
            ),
            NodeType(
                name="wait",
                kind=NodeKind.CONTROL,
                params_model=WaitParams,
                outputs=MappingProxyType({"waited": OutputKind.NUMBER}),
            ),
            NodeType(
                name="workflow.run",
                kind=NodeKind.CONTROL,
                params_model=WorkflowRunParams,
                outputs=MappingProxyType({}),
                dynamic_outputs=True,
                literal_params=frozenset({"workflowId", "version"}),
            ),
            NodeType(
                name="map",
                kind=NodeKind.CONTROL,
                params_model=MapParams,
                outputs=MappingProxyType({"results": OutputKind.JSON, "outputs": OutputKind.JSON}),
                item_scope=frozenset({"node.params"}),
            ),
        )
    }
)


def get_node_type(name: str) -> NodeType | None:
    return CATALOG.get(name)
