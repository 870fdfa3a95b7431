"""The workflow definition document, as the canvas exports it and the registry stores it."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from workflow.limits import Limits

NODE_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"

NodeId = Annotated[str, Field(pattern=NODE_ID_PATTERN)]


def documented_maximum(limit: str, keyword: str = "maximum") -> dict[str, Any]:
    """A configurable limit's default, stated in the JSON Schema (and so the OpenAPI document)
    but not enforced by the model: `validation` enforces the configured value."""
    return {keyword: Limits.model_fields[limit].default}


class DefinitionModel(BaseModel):
    """Frozen, strict, camelCase on the wire."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )


class Backoff(DefinitionModel):
    """Delay before attempt n+1: min(initial * factor**(n-1), max)."""

    initial_seconds: float = Field(1.0, gt=0, le=3600)
    factor: float = Field(2.0, ge=1, le=10)
    max_seconds: float = Field(300.0, gt=0, le=86400)


class RetryPolicy(DefinitionModel):
    max_attempts: int = Field(1, ge=1, le=20)
    backoff: Backoff = Backoff()


class NodeSpec(DefinitionModel):
    id: NodeId
    type: str = Field(min_length=1)
    params: dict[str, Any] = {}
    retry: RetryPolicy | None = None
    timeout_seconds: float | None = Field(
        None, gt=0, allow_inf_nan=False, json_schema_extra=documented_maximum("max_timeout_seconds")
    )


def _object_schema() -> dict[str, Any]:
    return {"type": "object"}


class WorkflowDefinition(DefinitionModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=_object_schema)
    # At most MAX_NODES: a configured limit, so `validation.parse_definition` checks it (on the
    # raw document, before this model is built) and the schema only states its default.
    nodes: list[NodeSpec] = Field(
        min_length=1, json_schema_extra=documented_maximum("max_nodes", "maxItems")
    )
    outputs: dict[str, str] = {}
    """Output name → template string, e.g. ``{{ nodes.square.image }}``."""
    timeout_seconds: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        json_schema_extra=documented_maximum("max_run_timeout_seconds"),
    )

    def node(self, node_id: str) -> NodeSpec | None:
        return next((node for node in self.nodes if node.id == node_id), None)


def canonical_json(defn: WorkflowDefinition) -> str:
    """One spelling per meaning: camelCase keys, sorted, no whitespace, defaults left out.

    Leaving defaults out (rather than only ``None``) makes ``"params": {}`` and a missing
    ``params`` hash the same, as they mean the same.
    """
    document = defn.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def definition_hash(defn: WorkflowDefinition) -> str:
    return hashlib.sha256(canonical_json(defn).encode()).hexdigest()
