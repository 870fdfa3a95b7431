"""Listing runs by creation time (`createdAfter` / `createdBefore`) on the real stack."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from e2e_helpers import register

pytestmark = pytest.mark.e2e

ECHO = {
    "name": "echo",
    "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
    "nodes": [{"id": "say", "type": "text.template", "params": {"template": "{{ inputs.x }}"}}],
    "outputs": {"text": "{{ nodes.say.text }}"},
}


def _ids(c: httpx.Client, **params: Any) -> list[str]:
    r = c.get("/v1/runs", params=params)
    assert r.status_code == 200, r.text
    return [item["runId"] for item in r.json()["items"]]


def test_runs_are_listed_by_creation_time_start_included_end_excluded(system: Any) -> None:
    with system.client() as c:
        workflow_id = register(c, ECHO)
        runs = []
        for x in "abc":
            r = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {"x": x}})
            assert r.status_code == 200, r.text
            runs.append(r.json())
        first, second, third = runs
        at = datetime.fromisoformat(second["createdAt"])
        # The same instant written with another offset.
        elsewhere = at.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()

        after = _ids(c, workflowId=workflow_id, createdAfter=second["createdAt"])
        before = _ids(c, workflowId=workflow_id, createdBefore=elsewhere)
        between = _ids(
            c,
            workflowId=workflow_id,
            createdAfter=second["createdAt"],
            createdBefore=third["createdAt"],
        )
        page = c.get(
            "/v1/runs",
            params={"workflowId": workflow_id, "createdAfter": first["createdAt"], "limit": 2},
        ).json()
        rest = _ids(
            c, workflowId=workflow_id, createdAfter=first["createdAt"], cursor=page["nextCursor"]
        )

    assert after == [third["runId"], second["runId"]]
    assert before == [first["runId"]]
    assert between == [second["runId"]]
    assert [i["runId"] for i in page["items"]] + rest == [
        third["runId"],
        second["runId"],
        first["runId"],
    ]


@pytest.mark.parametrize(
    "value", ["2026-01-31T09:30:00", "2026-02-30T00:00:00Z", "yesterday", "1700000000"]
)
def test_a_creation_time_that_is_no_rfc_3339_date_time_is_a_422_naming_it(
    system: Any, value: str
) -> None:
    with system.client() as c:
        r = c.get("/v1/runs", params={"createdBefore": value})

    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["path"] == "/createdBefore"
