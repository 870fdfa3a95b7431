"""A workflow's own OpenAPI document, served by the running system, is valid OpenAPI 3.1 and
describes the run endpoint well enough that requests generated from it run the workflow."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from e2e_helpers import register
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.e2e

EXAMPLES = 5

# Required inputs, an enum, a nested object with a required field of its own. Strings have
# patterns and objects no other properties: JSON that the document allows but that no store
# here takes (U+0000, lone surrogates) is a 422 the document cannot express (see
# schemathesis.toml), and this test is about running the workflow.
INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["customer", "size"],
    "additionalProperties": False,
    "properties": {
        "customer": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z][A-Za-z ]{0,39}$"},
                "vip": {"type": "boolean"},
            },
        },
        "size": {"enum": ["s", "m", "l"]},
        "count": {"type": "integer", "minimum": 1, "maximum": 10},
    },
}


def _definition(template: str) -> dict[str, Any]:
    return {
        "name": "Order confirmation",
        "inputSchema": INPUT_SCHEMA,
        "nodes": [{"id": "confirm", "type": "text.template", "params": {"template": template}}],
        "outputs": {"message": "{{ nodes.confirm.text }}"},
    }


def _runnable(case: Any, key: str) -> None:
    """What the generated request may carry beyond the inputs and that would decide the run's
    outcome rather than the inputs do, left out: a webhook (the egress policy refuses most
    hosts), a timeout (a microsecond fails the run), metadata (strings with U+0000) and every
    header (`Prefer: respond-async` answers 202; one `Idempotency-Key` for two bodies is a
    422). All are optional, so the request stays one the document allows."""
    case.body = {k: v for k, v in case.body.items() if k in ("inputs", "version", "webhookEvents")}
    case.headers = {"Authorization": f"Bearer {key}"}


def test_requests_generated_from_a_workflows_openapi_document_run_it(system: Any) -> None:
    with system.client() as c:
        workflow_id = register(
            c, _definition("Thanks {{ inputs.customer.name }}: size {{ inputs.size }}")
        )
        r = c.get(f"/v1/workflows/{workflow_id}/openapi.json")
        assert r.status_code == 200, r.text
        doc = r.json()
    validate(doc)
    assert doc["servers"] == [{"url": system.url}]
    path = f"/v1/workflows/{workflow_id}/run"
    # Without a config of its own, schemathesis would read the repository's schemathesis.toml
    # (the main document's settings and hooks).
    schema = schemathesis.openapi.from_dict(doc, config=schemathesis.Config())
    operation = schema[path]["POST"]
    # Loaded from a dict, schemathesis sends requests only where it is told: the document's
    # own server.
    server = doc["servers"][0]["url"]
    runs: list[dict[str, Any]] = []

    @settings(
        max_examples=EXAMPLES,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(case=operation.as_strategy())
    def run_one(case: Any) -> None:
        _runnable(case, system.key)
        response = case.call(base_url=server, timeout=90)
        assert response.status_code == 200, response.text
        case.validate_response(
            response,
            checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
        )
        run = response.json()
        assert run["status"] == "completed", run
        name = case.body["inputs"]["customer"]["name"]
        assert run["outputs"] == [
            {
                "name": "message",
                "type": "text",
                "value": f"Thanks {name}: size {case.body['inputs']['size']}",
            }
        ]
        runs.append(case.body)

    run_one()
    assert runs, "no generated request was sent"

    # Leaving out a required input is refused before anything runs.
    invalid = {**runs[0], "inputs": {k: v for k, v in runs[0]["inputs"].items() if k != "size"}}
    with system.client() as c:
        refused = c.post(path, json=invalid)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert any(e["path"].startswith("/inputs") for e in refused.json()["errors"])


def test_each_version_has_its_own_document_and_unknown_ones_are_404(system: Any) -> None:
    with system.client() as c:
        workflow_id = register(c, _definition("v1 {{ inputs.size }}"))
        second = _definition("v2 {{ inputs.size }}")
        second["nodes"].append(
            {"id": "again", "type": "text.template", "params": {"template": "{{ inputs.size }}"}}
        )
        second["outputs"] = {
            "message": "{{ nodes.confirm.text }}",
            "again": "{{ nodes.again.text }}",
        }
        register(c, second, workflow_id)
        latest = c.get(f"/v1/workflows/{workflow_id}/openapi.json")
        v1 = c.get(f"/v1/workflows/{workflow_id}/versions/1/openapi.json")
        v2 = c.get(f"/v1/workflows/{workflow_id}/versions/2/openapi.json")
        no_version = c.get(f"/v1/workflows/{workflow_id}/versions/3/openapi.json")
        no_workflow = c.get("/v1/workflows/no-such-workflow-here/openapi.json")
        no_workflow_version = c.get("/v1/workflows/no-such-workflow-here/versions/1/openapi.json")
        no_key = c.get(f"/v1/workflows/{workflow_id}/openapi.json", headers={"Authorization": ""})
        unpinned = c.get(f"/v1/workflows/{workflow_id}")
    for r in (latest, v1, v2):
        assert r.status_code == 200, r.text
        validate(r.json())
    assert v1.json() != v2.json()
    assert v1.json()["info"]["version"] == "1"
    assert v2.json()["info"]["version"] == "2"
    assert latest.json()["info"]["version"] == "2"

    def output_names(doc: dict[str, Any]) -> list[str]:
        prefix = next(n for n in doc["components"]["schemas"] if n.endswith("OutputName"))
        names: list[str] = doc["components"]["schemas"][prefix]["enum"]
        return names

    assert output_names(v1.json()) == ["message"]
    assert output_names(v2.json()) == ["again", "message"]

    # The same 404 problem as reading the workflow itself.
    assert unpinned.status_code == 200
    for r in (no_version, no_workflow, no_workflow_version):
        assert r.status_code == 404, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/not-found")
    with system.client() as c:
        plain_404 = c.get("/v1/workflows/no-such-workflow-here")
    assert {k: v for k, v in no_workflow.json().items() if k != "instance"} == {
        k: v for k, v in plain_404.json().items() if k != "instance"
    }
    assert no_key.status_code == 401
