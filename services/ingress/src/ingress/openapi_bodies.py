"""Request bodies that handlers read themselves (to answer 400/413/422 as problems) are
declared in the OpenAPI document here, from the same models that parse them."""

from __future__ import annotations

from typing import Any

from contracts.api import RunRequest
from fastapi import FastAPI
from pydantic import BaseModel
from workflow.definition import WorkflowDefinition

REF = "#/components/schemas/{model}"
BODIES: tuple[tuple[str, str, type[BaseModel]], ...] = (
    ("/v1/workflows/{workflow_id}", "put", WorkflowDefinition),
    ("/v1/workflows/{workflow_id}/run", "post", RunRequest),
)


def document_raw_bodies(app: FastAPI) -> None:
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
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}
                },
            }
        upload = doc["paths"]["/v1/assets"]["post"]
        upload["requestBody"] = {
            "required": True,
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
