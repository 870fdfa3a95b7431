"""What the OpenAPI document says of a rerun, a run's full detail and the run list's filters."""

from typing import Any

from ingress.openapi import document


def _parameters(op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"].lower(): p for p in op["parameters"]}


def test_a_rerun_documents_its_optional_body_and_the_headers_of_a_run_start() -> None:
    op = document()["paths"]["/v1/runs/{run_id}/rerun"]["post"]

    assert op["requestBody"]["required"] is False
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/RerunRequest"}
    assert {"prefer", "idempotency-key", "cancel-after"} <= set(_parameters(op))
    assert {"200", "202", "404", "409", "422", "429"} <= set(op["responses"])


def test_a_runs_full_detail_is_documented_with_the_detail_parameter() -> None:
    doc = document()
    op = doc["paths"]["/v1/runs/{run_id}"]["get"]
    step = doc["components"]["schemas"]["StepDetail"]

    assert _parameters(op)["detail"]["schema"]["anyOf"][0] == {"const": "full", "type": "string"}
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/RunDetail"}
    assert {"params", "outputs", "items", "reusedFrom"} <= set(step["properties"])
    assert not {"params", "outputs", "items"} & set(step["required"])


def test_the_run_list_documents_its_creation_time_filters_as_date_times() -> None:
    parameters = _parameters(document()["paths"]["/v1/runs"]["get"])

    for name in ("createdafter", "createdbefore"):
        assert parameters[name]["schema"]["anyOf"][0] == {"type": "string", "format": "date-time"}
