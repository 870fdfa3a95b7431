"""Limits on what a run may start while it goes: children per run, descendants per root run,
map items. Each stops the run `failed` with an error naming the limit, and nothing beyond the
limit is started. The services run with MAX_CHILDREN_PER_RUN=10, MAX_DESCENDANTS_PER_ROOT=20
and MAX_MAP_ITEMS=50 (tests/e2e/conftest.py)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from e2e_helpers import TERMINAL, poll, register

pytestmark = pytest.mark.e2e

LEAF = {
    "name": "leaf",
    "inputSchema": {"type": "object"},
    "nodes": [{"id": "say", "type": "text.template", "params": {"template": "hi"}}],
    "outputs": {"text": "{{ nodes.say.text }}"},
}


def fan_out(workflow_id: str, children: int) -> dict[str, Any]:
    """A workflow whose every node starts a run of `workflow_id` (whose output is `text`)."""
    return {
        "name": f"{children} runs of {workflow_id}",
        "inputSchema": {"type": "object"},
        "nodes": [
            {"id": f"c{i}", "type": "workflow.run", "params": {"workflowId": workflow_id}}
            for i in range(children)
        ],
        "outputs": {"text": "{{ nodes.c0.text }}"},
    }


def runs_of(c: httpx.Client, workflow_id: str) -> list[dict[str, Any]]:
    r = c.get("/v1/runs", params={"workflowId": workflow_id, "limit": 100})
    runs: list[dict[str, Any]] = r.raise_for_status().json()["items"]
    return runs


def settled_runs_of(c: httpx.Client, *workflow_ids: str, timeout: float = 60) -> int:
    """How many runs of these workflows exist, once every one of them has ended (a run that
    ended starts nothing more)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [run for w in workflow_ids for run in runs_of(c, w)]
        if all(run["status"] in TERMINAL for run in runs) or time.monotonic() > deadline:
            return len(runs)
        time.sleep(0.2)


def test_a_fan_out_over_the_descendants_budget_fails_its_root_and_starts_no_more(
    system: Any,
) -> None:
    # 5 runs of `mid`, each starting 5 leaves: 30 runs below the root, over a budget of 20.
    with system.client() as c:
        leaf = register(c, LEAF)
        mid = register(c, fan_out(leaf, 5))
        root = register(c, fan_out(mid, 5))
        started = c.post(f"/v1/workflows/{root}/run", json={"inputs": {}})
        assert started.status_code in (200, 202), started.text
        run = poll(c, started.json()["runId"])

        assert run["status"] == "failed", run
        assert run["error"]["code"] == "descendants_exceeded"
        assert "the limit MAX_DESCENDANTS_PER_ROOT (20)" in run["error"]["message"]
        # The root's 5 children start first; beyond the budget no run is created.
        created = settled_runs_of(c, mid, leaf)
        assert 5 <= created <= 20


def test_a_run_starting_more_children_than_the_limit_fails_before_starting_any(
    system: Any,
) -> None:
    with system.client() as c:
        leaf = register(c, LEAF)
        root = register(c, fan_out(leaf, 11))
        started = c.post(f"/v1/workflows/{root}/run", json={"inputs": {}})
        assert started.status_code in (200, 202), started.text
        run = poll(c, started.json()["runId"])

        assert run["status"] == "failed", run
        assert run["error"]["code"] == "children_exceeded"
        assert "the limit MAX_CHILDREN_PER_RUN (10)" in run["error"]["message"]
        assert runs_of(c, leaf) == []


MAP = {
    "name": "exclaim each",
    "inputSchema": {"type": "object", "properties": {"words": {"type": "array"}}},
    "nodes": [
        {
            "id": "each",
            "type": "map",
            "params": {
                "items": "{{ inputs.words }}",
                "concurrency": 4,
                "node": {"type": "text.template", "params": {"template": "{{ item }}!"}},
            },
        }
    ],
    "outputs": {"texts": "{{ nodes.each.results }}"},
}


def test_a_map_over_more_items_than_the_limit_fails_before_any_item_runs(system: Any) -> None:
    with system.client() as c:
        workflow_id = register(c, MAP)
        started = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {"words": ["w"] * 51}})
        assert started.status_code in (200, 202), started.text
        run = poll(c, started.json()["runId"])

    assert run["status"] == "failed", run
    assert run["error"]["code"] == "map_too_large"
    assert "map over 51 items" in run["error"]["message"]
    assert "the limit MAX_MAP_ITEMS (50)" in run["error"]["message"]
    each = next(s for s in run["steps"] if s["nodeId"] == "each")
    assert each["status"] == "failed"
    assert not each.get("itemsDone")


def test_a_step_whose_params_would_resolve_to_megabytes_fails_before_dispatch(
    system: Any,
) -> None:
    # 1,000 references to a 50 KB input: 50 MB if built, refused at 256 KiB while resolving.
    definition = {
        "name": "echo a lot",
        "inputSchema": {"type": "object", "properties": {"s": {"type": "string"}}},
        "nodes": [
            {"id": "say", "type": "text.template", "params": {"template": "{{ inputs.s }}" * 1000}}
        ],
        "outputs": {"text": "{{ nodes.say.text }}"},
    }
    with system.client() as c:
        workflow_id = register(c, definition)
        started = c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {"s": "x" * 50_000}})
        assert started.status_code in (200, 202), started.text
        run = poll(c, started.json()["runId"])

    assert run["status"] == "failed", run
    assert run["error"]["code"] == "value_too_large"
    assert "the limit MAX_RESOLVED_VALUE_BYTES (262144)" in run["error"]["message"]
    say = next(s for s in run["steps"] if s["nodeId"] == "say")
    assert say["status"] == "failed"
    assert not say.get("attempts")
