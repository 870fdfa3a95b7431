"""A workflow's own OpenAPI document: valid OpenAPI 3.1, its inputs the workflow's input schema,
its outputs the definition's, ready for client generators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ingress.routes.runs import CANCEL_AFTER_PATTERN
from ingress.workflow_openapi import CANCEL_AFTER_PATTERN as DOCUMENTED_CANCEL_AFTER
from ingress.workflow_openapi import pascal, workflow_document
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from workflow.definition import WorkflowDefinition

ROOT = Path(__file__).resolve().parents[3]
DEMO = WorkflowDefinition.model_validate_json(
    (ROOT / "examples" / "studio-portrait.json").read_text()
)
RUN_PATH = "/v1/workflows/studio-portrait/run"

# References into `$defs`, into the root (recursion) and to a property; a property named like
# a keyword; a `$schema`.
WITH_DEFS: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["customer", "size"],
    "additionalProperties": False,
    "properties": {
        "customer": {"$ref": "#/$defs/person"},
        "size": {"enum": ["s", "m", "l"]},
        "same": {"$ref": "#/properties/size"},
        "enum": {"type": "string", "default": "#/$defs/person"},
        "next": {"$ref": "#"},
    },
    "$defs": {
        "person": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "address": {"$ref": "#/$defs/postal-address"},
            },
        },
        "postal-address": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _definition(input_schema: dict[str, Any], outputs: dict[str, str] | None = None) -> Any:
    return WorkflowDefinition.model_validate(
        {
            "name": "Greeting",
            "inputSchema": input_schema,
            "nodes": [
                {"id": "greet", "type": "text.template", "params": {"template": "hi"}},
            ],
            "outputs": outputs or {"text": "{{ nodes.greet.text }}"},
        }
    )


def _doc(
    definition: WorkflowDefinition = DEMO,
    *,
    workflow_id: str = "studio-portrait",
    version: int = 1,
    pinned: bool = False,
) -> dict[str, Any]:
    return workflow_document(
        workflow_id=workflow_id,
        version=version,
        definition=definition,
        base_url="http://api.example:38000/",
        pinned=pinned,
    )


def _operation(doc: dict[str, Any]) -> dict[str, Any]:
    (item,) = doc["paths"].values()
    op: dict[str, Any] = item["post"]
    return op


def _schemas(doc: dict[str, Any]) -> dict[str, Any]:
    schemas: dict[str, Any] = doc["components"]["schemas"]
    return schemas


def _validator(doc: dict[str, Any], component: str) -> Draft202012Validator:
    """A validator of one component, resolving references against the whole document, as a
    generator or a server reading the document does."""
    root = {"$ref": f"#/components/schemas/{component}", "components": doc["components"]}
    return Draft202012Validator(root)


def test_the_document_is_valid_openapi_3_1() -> None:
    for doc in (
        _doc(),
        _doc(pinned=True, version=4),
        _doc(_definition(WITH_DEFS), workflow_id="3d-order.v2"),
        _doc(_definition({"type": "object"})),
    ):
        validate(doc)
        assert doc["openapi"] == "3.1.0"


def test_the_run_request_inputs_are_exactly_the_workflows_input_schema() -> None:
    doc = _doc()
    request = _schemas(doc)["StudioPortraitRunRequest"]
    assert request["properties"]["inputs"]["$ref"] == "#/components/schemas/StudioPortraitInputs"
    inputs = dict(_schemas(doc)["StudioPortraitInputs"])
    assert inputs.pop("title") == "StudioPortraitInputs"
    assert inputs == DEMO.input_schema
    # The rest of the run request is the API's.
    assert {"inputs", "version", "webhook", "webhookEvents", "metadata", "timeoutSeconds"} == set(
        request["properties"]
    )
    assert request["additionalProperties"] is False
    assert request["required"] == ["inputs"]  # `prompt` is required: `{}` would be refused


def test_inputs_may_be_left_out_when_empty_inputs_are_valid() -> None:
    request = _schemas(_doc(_definition({"type": "object"}), workflow_id="g"))["GRunRequest"]
    assert "inputs" not in request.get("required", [])


def test_input_schema_definitions_become_components_and_references_follow_them() -> None:
    doc = _doc(_definition(WITH_DEFS), workflow_id="order")
    schemas = _schemas(doc)
    assert {"OrderInputs", "OrderPerson", "OrderPostalAddress"} <= set(schemas)
    inputs = schemas["OrderInputs"]
    assert "$defs" not in inputs
    assert "$schema" not in inputs
    assert inputs["properties"]["customer"] == {"$ref": "#/components/schemas/OrderPerson"}
    assert inputs["properties"]["next"] == {"$ref": "#/components/schemas/OrderInputs"}
    # A reference into a schema: what it points at is a component of its own.
    assert inputs["properties"]["same"] == {"$ref": "#/components/schemas/OrderInputsSize"}
    assert schemas["OrderInputsSize"]["enum"] == ["s", "m", "l"]
    # Data is left as it is, even when it looks like a reference.
    assert inputs["properties"]["enum"]["default"] == "#/$defs/person"

    validator = _validator(doc, "OrderInputs")
    good = {
        "customer": {"name": "Ada", "address": {"city": "Paris"}},
        "size": "m",
        "same": "l",
        "next": {"customer": {"name": "Bob"}, "size": "s"},
    }
    assert list(validator.iter_errors(good)) == []
    assert not validator.is_valid({**good, "customer": {"name": ""}})
    assert not validator.is_valid({**good, "same": "xl"})
    assert not validator.is_valid({**good, "next": {"size": "s"}})
    assert not validator.is_valid({**good, "customer": {"name": "A", "address": {"city": 1}}})


def test_a_completed_runs_outputs_are_named_by_the_definitions_outputs() -> None:
    doc = _doc()
    ok = _operation(doc)["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/StudioPortraitRun"}
    run = _schemas(doc)["StudioPortraitRun"]
    assert run["properties"]["outputs"]["items"] == {
        "$ref": "#/components/schemas/StudioPortraitOutput"
    }
    names = _schemas(doc)["StudioPortraitOutputName"]
    assert names["enum"] == sorted(DEMO.outputs)
    assert names["enum"] == ["square", "story"]

    # A completed run as the API answers it (README: Using it) fits; another output name not.
    completed = {
        "runId": "run_01",
        "workflowId": "studio-portrait",
        "workflowVersion": 1,
        "status": "completed",
        "outputs": [
            {"name": "square", "type": "image", "ref": "s3://b/k", "url": "http://s/k",
             "contentType": "image/png", "bytes": 3, "width": 512, "height": 512},
            {"name": "story", "type": "image", "ref": "s3://b/l", "url": "http://s/l",
             "contentType": "image/png", "bytes": 3, "width": 540, "height": 960},
        ],
        "error": None,
        "metadata": {},
        "steps": [],
        "createdAt": "2026-11-29T22:00:00Z",
        "startedAt": "2026-11-29T22:00:00Z",
        "completedAt": "2026-11-29T22:00:01Z",
    }  # fmt: skip
    validator = _validator(doc, "StudioPortraitRun")
    assert list(validator.iter_errors(completed)) == []
    other = {**completed, "outputs": [{"name": "banner", "type": "text", "value": "x"}]}
    assert not validator.is_valid(other)


def test_a_version_specific_document_differs_when_versions_differ() -> None:
    v1 = _definition({"type": "object", "properties": {"name": {"type": "string"}}})
    v2 = _definition(
        {"type": "object", "required": ["name", "age"], "properties": {
            "name": {"type": "string"}, "age": {"type": "integer"}}},
        outputs={"text": "{{ nodes.greet.text }}", "again": "{{ nodes.greet.text }}"},
    )  # fmt: skip
    first = _doc(v1, workflow_id="greet", version=1, pinned=True)
    second = _doc(v2, workflow_id="greet", version=2, pinned=True)
    assert first != second
    assert first["info"]["version"] == "1"
    assert second["info"]["version"] == "2"
    assert (
        _schemas(first)["GreetInputs"]["properties"]
        != _schemas(second)["GreetInputs"]["properties"]
    )
    assert _schemas(first)["GreetOutputName"]["enum"] == ["text"]
    assert _schemas(second)["GreetOutputName"]["enum"] == ["again", "text"]
    # A request made from a version's document runs that version: it has to name it.
    for doc, version in ((first, 1), (second, 2)):
        request = _schemas(doc)["GreetRunRequest"]
        assert "version" in request["required"]
        assert request["properties"]["version"]["const"] == version
    latest = _schemas(_doc(v2, workflow_id="greet", version=2))["GreetRunRequest"]
    assert "version" not in latest["required"]


def test_generators_find_unique_operation_ids_and_titled_schemas() -> None:
    for doc in (_doc(), _doc(_definition(WITH_DEFS), workflow_id="order")):
        ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
        assert len(ids) == len(set(ids))
        assert all(ids)
        for name, schema in _schemas(doc).items():
            assert schema.get("title"), name
    assert _operation(_doc())["operationId"] == "runStudioPortrait"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_reference_names_a_whole_component() -> None:
    # openapi-python-client, for one, resolves nothing else.
    for doc in (_doc(), _doc(_definition(WITH_DEFS), workflow_id="order")):
        schemas = _schemas(doc)
        for ref in _refs(doc):
            assert ref.startswith("#/components/schemas/"), ref
            assert ref.removeprefix("#/components/schemas/") in schemas, ref


def test_the_server_is_the_requests_base_url_and_the_key_a_bearer_token() -> None:
    doc = _doc()
    assert doc["servers"] == [{"url": "http://api.example:38000"}]
    assert RUN_PATH in doc["paths"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer wfk_…`",
    }
    assert _operation(doc)["security"] == [{"HTTPBearer": []}]


def test_every_error_answer_is_a_problem_and_202_says_where_the_run_is() -> None:
    doc = _doc()
    responses = _operation(doc)["responses"]
    assert {"200", "202", "400", "401", "403", "404", "413", "422", "429", "503"} == set(responses)
    for status, response in responses.items():
        if int(status) >= 400:
            assert response["content"] == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }, status
    assert responses["202"]["headers"]["Location"]["required"] is True
    assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    assert _schemas(doc)["Problem"]["properties"]["status"]["type"] == "integer"


def test_the_headers_are_checked_as_the_run_route_checks_them() -> None:
    assert DOCUMENTED_CANCEL_AFTER == CANCEL_AFTER_PATTERN
    headers = {p["name"] for p in _operation(_doc())["parameters"]}
    assert headers == {"Prefer", "Idempotency-Key", "Cancel-After"}


def test_workflow_ids_become_class_names() -> None:
    assert pascal("studio-portrait") == "StudioPortrait"
    assert pascal("3d-order.v2") == "Workflow3dOrderV2"
    assert pascal("a_b") == "AB"


def test_the_document_is_json() -> None:
    doc = _doc(_definition(WITH_DEFS), workflow_id="order")
    assert json.loads(json.dumps(doc)) == doc
