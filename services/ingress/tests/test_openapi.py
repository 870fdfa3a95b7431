from ingress.openapi import OPENAPI_FILE, document, render


def test_the_committed_openapi_document_matches_the_app() -> None:
    assert OPENAPI_FILE.read_text() == render(document()), "run `make schemas` and commit"


def test_every_v1_route_of_the_design_is_documented() -> None:
    paths = set(document()["paths"])
    assert {
        "/v1/workflows/{workflow_id}",
        "/v1/workflows",
        "/v1/workflows/{workflow_id}/versions/{version}",
        "/v1/workflows/{workflow_id}/run",
        "/v1/runs/{run_id}",
        "/v1/runs",
        "/v1/assets",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= paths
