from typing import Any

import pytest
from fastapi.testclient import TestClient
from ingress.allow import allowed_methods
from ingress.app import create_app
from ingress.openapi import OPENAPI_FILE, document
from ingress.openapi_problems import statuses_of
from ingress.settings import IngressSettings
from workflow.catalog import CATALOG

from contracts.schemas import render

PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op) for path, item in doc["paths"].items() for method, op in item.items()
    ]


def test_the_committed_openapi_document_matches_the_app() -> None:
    assert OPENAPI_FILE.read_text() == render(document()), "run `make schemas` and commit"


def test_every_v1_route_of_the_design_is_documented() -> None:
    paths = set(document()["paths"])
    assert {
        "/v1/workflows/{workflow_id}",
        "/v1/workflows",
        "/v1/workflows/{workflow_id}/versions/{version}",
        "/v1/workflows/{workflow_id}/run",
        "/v1/workflows/{workflow_id}/openapi.json",
        "/v1/workflows/{workflow_id}/versions/{version}/openapi.json",
        "/v1/runs/{run_id}",
        "/v1/runs",
        "/v1/assets",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= paths


def test_every_error_answer_is_documented_as_a_problem() -> None:
    doc = document()
    for path, method, op in _operations(doc):
        for status, response in op["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {"application/problem+json": {"schema": PROBLEM}}, (
                    f"{method} {path} {status}"
                )
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["components"]["schemas"]["Problem"]["properties"]["status"]["type"] == "integer"


def test_each_operation_documents_the_problems_its_shape_can_give() -> None:
    for path, method, op in _operations(document()):
        documented = {int(s) for s in op["responses"]}
        assert statuses_of(path, op) <= documented, f"{method} {path}"
        if op.get("security"):
            assert {401, 403, 429, 503} <= documented, f"{method} {path}"
        if "{" in path:
            assert 404 in documented, f"{method} {path}"
        if "requestBody" in op:
            assert {400, 413} <= documented, f"{method} {path}"
    upload = document()["paths"]["/v1/assets"]["post"]["responses"]
    assert {"400", "413", "415"} <= set(upload)


def test_429_and_503_tell_when_to_retry_and_401_how_to_authenticate() -> None:
    op = document()["paths"]["/v1/workflows/{workflow_id}/run"]["post"]
    assert op["responses"]["429"]["headers"]["Retry-After"]["required"] is True
    assert {"RateLimit", "RateLimit-Policy"} <= set(op["responses"]["429"]["headers"])
    assert op["responses"]["503"]["headers"]["Retry-After"]["required"] is True
    assert op["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True
    assert "RateLimit" in op["responses"]["200"]["headers"]
    assert "503" in document()["paths"]["/readyz"]["get"]["responses"]


def test_a_registration_that_changes_nothing_documents_the_same_body_as_a_new_version() -> None:
    responses = document()["paths"]["/v1/workflows/{workflow_id}"]["put"]["responses"]
    assert responses["200"]["content"] == responses["201"]["content"]


def test_metrics_are_documented_as_text() -> None:
    content = document()["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"text/plain"}


def test_uploads_document_the_content_types_of_the_settings() -> None:
    app = create_app(IngressSettings(upload_content_types="image/png, text/plain"))
    body = app.openapi()["paths"]["/v1/assets"]["post"]["requestBody"]
    assert set(body["content"]) == {"image/png", "text/plain"}
    # An empty upload is refused (400), so the document never allows one.
    assert all(c["schema"]["minLength"] == 1 for c in body["content"].values())


def test_definitions_document_what_registration_checks() -> None:
    settings = IngressSettings(max_nodes=7, max_run_timeout_seconds=60)
    schemas = create_app(settings).openapi()["components"]["schemas"]
    assert schemas["NodeSpec"]["properties"]["type"]["enum"] == sorted(CATALOG)
    definition = schemas["WorkflowDefinition"]
    assert "outputs" in definition["required"]
    assert definition["properties"]["outputs"]["minProperties"] == 1
    assert definition["properties"]["nodes"]["maxItems"] == 7
    run_timeout = schemas["RunRequest"]["properties"]["timeoutSeconds"]["anyOf"][0]
    assert run_timeout["maximum"] == 60


def test_run_documents_the_headers_it_reads() -> None:
    op = document()["paths"]["/v1/workflows/{workflow_id}/run"]["post"]
    headers = {p["name"].lower(): p for p in op["parameters"] if p["in"] == "header"}
    assert {"prefer", "idempotency-key", "cancel-after"} <= set(headers)
    assert "pattern" in headers["cancel-after"]["schema"]["anyOf"][0]


def test_list_runs_documents_which_workflow_ids_it_takes() -> None:
    op = document()["paths"]["/v1/runs"]["get"]
    workflow_id = next(p for p in op["parameters"] if p["name"] == "workflowId")
    assert "pattern" in workflow_id["schema"]["anyOf"][0]


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/v1/workflows/some-id", ["GET", "HEAD", "PUT"]),
        ("/v1/workflows", ["GET", "HEAD"]),
        ("/v1/workflows/some-id/run", ["POST"]),
        ("/not/a/path", []),
    ],
)
def test_allow_names_every_documented_method_of_a_path(path: str, methods: list[str]) -> None:
    assert allowed_methods(create_app(IngressSettings()), path) == methods


def test_a_405_answers_with_every_method_of_the_path() -> None:
    # Routing answers 405 before any dependency runs: no stack needed (no lifespan either).
    client = TestClient(create_app(IngressSettings()))
    r = client.request("DELETE", "/v1/workflows/some-id")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD, PUT"
    assert r.headers["content-type"] == "application/problem+json"
