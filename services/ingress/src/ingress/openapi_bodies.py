"""What the OpenAPI document says beyond what FastAPI infers: the request bodies that handlers
read themselves (to answer 400/413/422 as problems), declared from the same models that parse
them; the media types an upload takes, from the settings; and the problem answers of every
operation (`openapi_problems`)."""

from __future__ import annotations

from typing import Any

from contracts.api import RerunRequest, RunRequest
from fastapi import FastAPI
from pydantic import BaseModel
from workflow.catalog import CATALOG
from workflow.definition import WorkflowDefinition
from workflow.limits import Limits

from ingress.openapi_problems import document_problems
from ingress.routes.assets import allowed_types
from ingress.routes.providers import ProviderCredentialsRequest

REF = "#/components/schemas/{model}"
BODIES: tuple[tuple[str, str, type[BaseModel]], ...] = (
    ("/v1/workflows/{workflow_id}", "put", WorkflowDefinition),
    ("/v1/workflows/{workflow_id}/run", "post", RunRequest),
    ("/v1/providers/{name}", "put", ProviderCredentialsRequest),
    ("/v1/runs/{run_id}/rerun", "post", RerunRequest),
)
OPTIONAL_BODIES = frozenset({"/v1/runs/{run_id}/rerun"})
"""Operations whose body may be left out (every field is optional): a rerun."""
METRICS_MEDIA_TYPE = "text/plain"
PREFER = {
    "name": "Prefer",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "`respond-async`: answer 202 at once. `wait=N`: wait at most N seconds for "
    "the end (never more than the server's maximum).",
}


def _upload_body(limits: Limits) -> dict[str, Any]:
    # The file is the raw body: any bytes of the types the settings allow, never empty.
    binary = {"type": "string", "format": "binary", "minLength": 1}
    text = {"type": "string", "minLength": 1}
    content = {
        media: {
            "schema": {}
            if media == "application/json"
            else text
            if media.startswith("text/")
            else binary
        }
        for media in allowed_types(limits.upload_content_types)
    }
    return {"required": True, "content": content}


def _bound_number(prop: dict[str, Any] | None, maximum: float) -> None:
    """`maximum` on the number (or the number branch of a nullable number)."""
    if prop is None:
        return
    for branch in [prop, *prop.get("anyOf", [])]:
        if branch.get("type") == "number":
            branch["maximum"] = maximum


def _tighten(schemas: dict[str, Any], limits: Limits) -> None:
    """What the server checks that the models leave open, so that a request the document
    allows is not refused for it: the node types of the catalog, at least one output, and the
    limits of this server's settings."""
    definition = schemas.get("WorkflowDefinition", {})
    props = definition.get("properties", {})
    node = schemas.get("NodeSpec", {}).get("properties", {})
    if "type" in node:
        node["type"]["enum"] = sorted(CATALOG)
    _bound_number(node.get("timeoutSeconds"), limits.max_timeout_seconds)
    if "nodes" in props:
        props["nodes"]["maxItems"] = limits.max_nodes
    if "outputs" in props:
        props["outputs"]["minProperties"] = 1
        definition["required"] = sorted({*definition.get("required", []), "outputs"})
    _bound_number(props.get("timeoutSeconds"), limits.max_run_timeout_seconds)
    for request in ("RunRequest", "RerunRequest"):
        run = schemas.get(request, {}).get("properties", {})
        _bound_number(run.get("timeoutSeconds"), limits.max_run_timeout_seconds)


def document_raw_bodies(app: FastAPI, limits: Limits) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = build()
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for path, method, model in BODIES:
            schema = model.model_json_schema(by_alias=True, ref_template=REF)
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
            doc["paths"][path][method]["requestBody"] = {
                "required": path not in OPTIONAL_BODIES,
                "content": {
                    "application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}
                },
            }
        _tighten(schemas, limits)
        # Read by the handler itself (`ingress.prefer`), so FastAPI cannot know it.
        for starts_a_run in ("/v1/workflows/{workflow_id}/run", "/v1/runs/{run_id}/rerun"):
            doc["paths"][starts_a_run]["post"].setdefault("parameters", []).append(PREFER)
        doc["paths"]["/v1/assets"]["post"]["requestBody"] = _upload_body(limits)
        metrics = doc["paths"].get("/metrics", {}).get("get")
        if metrics is not None:
            metrics["responses"]["200"]["content"] = {
                METRICS_MEDIA_TYPE: {"schema": {"type": "string"}}
            }
        document_problems(doc)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
