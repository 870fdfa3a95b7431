"""A workflow's own OpenAPI document: valid OpenAPI 3.1, its inputs the workflow's input schema,
its outputs the definition's, ready for client generators."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from ingress.routes import workflows as workflows_routes
from ingress.routes.runs import CANCEL_AFTER_PATTERN
from ingress.routes.workflows import DocumentCache
from ingress.workflow_openapi import CANCEL_AFTER_PATTERN as DOCUMENTED_CANCEL_AFTER
from ingress.workflow_openapi import pascal, workflow_document
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from storage.workflows import WorkflowRecord
from workflow.definition import WorkflowDefinition
from workflow.limits import Limits
from workflow.validation import parse_definition, validate_inputs

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
    assert pascal("v2-api") == "V2Api"
    # Ids another id would share a name with carry a hash of themselves.
    assert re.fullmatch(r"Workflow3dOrderV2_[0-9a-f]{6}", pascal("3d-order.v2"))
    assert re.fullmatch(r"Workflow3d_[0-9a-f]{6}", pascal("3d"))
    assert pascal("a-b") == "AB"
    alike = ["a-b", "a_b", "a.b", "A-B", "ab", "Ab", "a--b", "workflow3d"]
    assert len({pascal(i) for i in alike}) == len(alike)
    assert all(re.fullmatch(r"AB_[0-9a-f]{6}", pascal(i)) for i in ("a_b", "a.b", "A-B", "a--b"))
    assert pascal("a_b") == pascal("a_b")  # stable: the same id, the same name


def test_documents_of_different_workflows_share_no_name_of_their_own() -> None:
    # A client holding both documents' classes: only the API's own schemas (Problem, …) are
    # in both, and they are the same.
    definition = _definition(WITH_DEFS)
    docs = [_doc(definition, workflow_id=i) for i in ("a-b", "a_b", "a.b", "A-B")]
    for doc in docs:
        validate(doc)
    for i, first in enumerate(docs):
        for second in docs[i + 1 :]:
            assert _operation(first)["operationId"] != _operation(second)["operationId"]
            assert first["tags"] != second["tags"]
            shared = set(_schemas(first)) & set(_schemas(second))
            assert shared, "the API's own schemas are in both"
            for name in shared:
                assert _schemas(first)[name] == _schemas(second)[name], name


def test_the_document_is_json() -> None:
    doc = _doc(_definition(WITH_DEFS), workflow_id="order")
    assert json.loads(json.dumps(doc)) == doc


def _registered(input_schema: dict[str, Any]) -> WorkflowDefinition:
    """The definition with this input schema, as registration accepts it (or the test fails):
    these documents are of schemas a workflow can have."""
    raw = {
        "name": "Greeting",
        "inputSchema": input_schema,
        "nodes": [{"id": "greet", "type": "text.template", "params": {"template": "hi"}}],
        "outputs": {"text": "{{ nodes.greet.text }}"},
    }
    definition, problems = parse_definition(raw)
    assert problems == []
    assert definition is not None
    return definition


def _checked(input_schema: dict[str, Any], workflow_id: str = "order") -> dict[str, Any]:
    """The document of a registered schema: valid OpenAPI 3.1, every reference naming a whole
    component, every component titled, and the definition left as it was."""
    definition = _registered(input_schema)
    before = copy.deepcopy(definition.input_schema)
    doc = _doc(definition, workflow_id=workflow_id)
    validate(doc)
    schemas = _schemas(doc)
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    for name, schema in schemas.items():
        assert isinstance(schema, dict), name
        assert schema.get("title"), name
    assert definition.input_schema == before
    assert json.loads(json.dumps(doc)) == doc
    return doc


def _agree(doc: dict[str, Any], schema: dict[str, Any], instances: list[Any]) -> None:
    """The document's inputs schema decides each instance as the server does."""
    validator = _validator(doc, "OrderInputs")
    for instance in instances:
        server = validate_inputs(schema, instance) == []
        assert validator.is_valid(instance) is server, (instance, server)


def _inputs_ref(doc: dict[str, Any], name: str) -> str:
    ref: str = _schemas(doc)["OrderInputs"]["properties"][name]["$ref"]
    return ref.removeprefix("#/components/schemas/")


def test_anchor_references_name_components() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "code": {"$anchor": "code", "type": "string", "pattern": "^[A-Z]{3}$"},
            "other": {"$ref": "#code"},
            "person": {"$ref": "#person"},
            "self": {"$ref": "#top"},
            "nick": {"$ref": "#name"},
        },
        "$anchor": "top",
        "$defs": {
            "person": {
                "$anchor": "person",
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"$anchor": "name", "type": "string", "minLength": 2}},
            }
        },
    }
    doc = _checked(schema)
    schemas = _schemas(doc)
    inputs = schemas["OrderInputs"]
    # A schema with an anchor inside another becomes a component, written once: where it was,
    # a reference to it.
    code = _inputs_ref(doc, "code")
    assert _inputs_ref(doc, "other") == code
    assert schemas[code]["pattern"] == "^[A-Z]{3}$"
    assert _inputs_ref(doc, "person") == "OrderPerson"
    assert _inputs_ref(doc, "self") == "OrderInputs"
    name = _inputs_ref(doc, "nick")
    assert schemas[name]["minLength"] == 2
    assert schemas["OrderPerson"]["properties"]["name"] == {"$ref": f"#/components/schemas/{name}"}
    assert "$anchor" not in json.dumps(doc)
    assert "$anchor" not in inputs
    _agree(
        doc,
        schema,
        [
            {"other": "ABC"},
            {"other": "abc"},
            {"code": "x"},
            {"person": {"name": "Ada"}},
            {"person": {}},
            {"person": {"name": "A"}},
            {"nick": "Al"},
            {"nick": "A"},
            {"self": {"other": "A"}},
            {"self": {"self": {"code": "XYZ"}}},
        ],
    )


def test_percent_encoded_pointers_are_decoded() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "spaced": {"$ref": "#/$defs/a%20b"},
            "slashed": {"$ref": "#/$defs/c~1d"},
            "percent": {"$ref": "#/$defs/e%25f"},
            "deep": {"$ref": "#/properties/odd%20name~1x"},
            "odd name/x": {"type": "integer", "minimum": 3},
        },
        "$defs": {
            "a b": {"type": "string"},
            "c/d": {"type": "integer"},
            "e%f": {"type": "boolean"},
        },
    }
    doc = _checked(schema)
    assert _inputs_ref(doc, "spaced") == "OrderAB"
    assert _inputs_ref(doc, "slashed") == "OrderCD"
    assert _inputs_ref(doc, "percent") == "OrderEF"
    assert _schemas(doc)[_inputs_ref(doc, "deep")]["minimum"] == 3
    _agree(
        doc,
        schema,
        [
            {"spaced": "x", "slashed": 1, "percent": True, "deep": 3},
            {"spaced": 1},
            {"slashed": "x"},
            {"percent": 1},
            {"deep": 2},
            {"odd name/x": 2},
        ],
    )


def test_boolean_schemas_become_whole_components() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "anything": {"$ref": "#/$defs/yes"},
            "nothing": {"$ref": "#/$defs/no"},
            "flag": True,
            "same": {"$ref": "#/properties/flag"},
            "never": {"items": False},
            "none": {"$ref": "#/properties/never/items"},
        },
        "$defs": {"yes": True, "no": False},
    }
    doc = _checked(schema)
    schemas = _schemas(doc)
    assert schemas["OrderYes"] == {"title": "OrderYes"}
    assert schemas["OrderNo"] == {"not": {}, "title": "OrderNo"}
    assert schemas[_inputs_ref(doc, "same")] == {"title": _inputs_ref(doc, "same")}
    assert _inputs_ref(doc, "flag") == _inputs_ref(doc, "same")
    assert schemas[_inputs_ref(doc, "none")]["not"] == {}
    _agree(
        doc,
        schema,
        [{"anything": [1]}, {"nothing": 1}, {"same": None}, {"none": 1}, {"never": [1]}],
    )


def test_hoisting_writes_identifiers_once_and_leaves_the_definition_alone() -> None:
    # A subschema with an `$id` is a resource of its own: its references point into it (its
    # `$defs`, its `#`, its anchors). Each becomes a whole component too; identifiers are
    # dropped, every reference having become a component name.
    resource: dict[str, Any] = {
        "$id": "urn:example:resource",
        "type": "object",
        "properties": {
            "inner": {"type": "integer", "maximum": 5},
            "small": {"$ref": "#/$defs/small"},
            "again": {"$ref": "#"},
            "marked": {"$ref": "#marked"},
        },
        "$defs": {
            "small": {"type": "string", "maxLength": 2},
            "mark": {"$anchor": "marked", "type": "boolean"},
        },
    }
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "tagged": {"$anchor": "tagged", "type": "string", "minLength": 2},
            "resource": resource,
            "a": {"$ref": "#/properties/tagged"},
            "b": {"$ref": "#tagged"},
            "c": {"$ref": "#/properties/resource"},
            "d": {"$ref": "#/properties/resource/properties/inner"},
        },
        "$defs": {"small": {"type": "integer"}},
    }
    doc = _checked(schema)
    text = json.dumps(doc)
    assert '"$id"' not in text
    assert "$anchor" not in text
    schemas = _schemas(doc)
    assert _inputs_ref(doc, "a") == _inputs_ref(doc, "b") == _inputs_ref(doc, "tagged")
    assert _inputs_ref(doc, "c") == _inputs_ref(doc, "resource")
    assert schemas[_inputs_ref(doc, "d")]["maximum"] == 5
    ok = {"inner": 5, "small": "ab", "again": {"marked": True}, "marked": False}
    _agree(
        doc,
        schema,
        [
            {"a": "xy", "b": "xy", "c": ok, "d": 5, "resource": ok},
            {"a": "x"},
            {"b": "x"},
            {"d": 6},
            {"c": {"small": 1}},
            {"c": {"small": "abc"}},
            {"resource": {"again": {"inner": 6}}},
            {"resource": {"again": {"marked": 1}}},
        ],
    )


def test_a_reference_to_no_schema_is_any_json_as_the_server_reads_it() -> None:
    # `#/$defs` is the map of definitions, no schema: the server reads it as a schema of
    # keywords it does not know, which accepts anything. The document says the same (and is
    # served, rather than refused: the workflow runs, and a client should be generated).
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "all": {"$ref": "#/$defs"},
            "props": {"$ref": "#/properties"},
            "known": {"$ref": "#/$defs/n"},
        },
        "$defs": {"n": {"type": "integer"}},
    }
    doc = _checked(schema)
    schemas = _schemas(doc)
    assert _inputs_ref(doc, "all") == _inputs_ref(doc, "props") == "OrderAny"
    assert set(schemas["OrderAny"]) == {"title", "description"}
    _agree(doc, schema, [{"all": 1, "props": "x"}, {"all": None}, {"known": "x"}])


def test_a_built_document_is_kept_per_tenant_version_pin_and_base_url(monkeypatch: Any) -> None:
    builds: list[int] = []

    def counting(**kwargs: Any) -> dict[str, Any]:
        builds.append(threading.get_ident())
        return workflow_document(**kwargs)

    monkeypatch.setattr(workflows_routes, "workflow_document", counting)
    runtime = SimpleNamespace(definitions=SimpleNamespace(of=lambda _: DEMO), settings=Limits())
    app = SimpleNamespace(state=SimpleNamespace())

    def record(tenant: str = "t1", version: int = 1) -> WorkflowRecord:
        return WorkflowRecord(
            tenant_id=tenant,
            workflow_id="studio-portrait",
            version=version,
            name=DEMO.name,
            definition_json="{}",
            definition_hash="h",
            created_at=datetime.now(UTC),
        )

    def get(rec: WorkflowRecord, pinned: bool = False, base: str = "http://a/") -> Any:
        request = SimpleNamespace(base_url=base, app=app)
        response = asyncio.run(
            workflows_routes._openapi(cast(Any, runtime), cast(Any, request), rec, pinned=pinned)
        )
        assert response.media_type == "application/json"
        return json.loads(bytes(response.body))

    first = get(record())
    assert get(record()) == first
    assert len(builds) == 1
    assert threading.get_ident() not in builds  # built in a worker thread, off the event loop
    validate(first)
    assert first["servers"] == [{"url": "http://a"}]
    # Anything the document depends on is another document.
    get(record(tenant="t2"))
    get(record(version=2))
    get(record(), pinned=True)
    assert get(record(), base="http://b/")["servers"] == [{"url": "http://b"}]
    assert len(builds) == 5
    get(record(version=2))
    assert len(builds) == 5


def test_the_document_cache_is_bounded_least_recently_used_out() -> None:
    cache = DocumentCache(size=2)
    keys = [("t", "w", version, False, "http://a/", "h") for version in (1, 2, 3)]
    cache.put(keys[0], b"1")
    cache.put(keys[1], b"2")
    assert cache.get(keys[0]) == b"1"  # now the most recently used
    cache.put(keys[2], b"3")
    assert cache.get(keys[1]) is None
    assert cache.get(keys[0]) == b"1"
    assert cache.get(keys[2]) == b"3"
    assert len(cache.bodies) == 2
    # Bounded in bytes too: one large document pushes the older ones out.
    sized = DocumentCache(size=10, max_bytes=5)
    sized.put(keys[0], b"12")
    sized.put(keys[1], b"34")
    sized.put(keys[1], b"56")
    assert sized.total == 4
    sized.put(keys[2], b"789")
    assert list(sized.bodies) == [keys[1], keys[2]]
    assert sized.total == 5
    sized.put(keys[0], b"too large")
    assert (list(sized.bodies), sized.total) == ([], 0)
