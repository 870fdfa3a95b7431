"""Small helpers the end-to-end tests share."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx

TERMINAL = ("completed", "failed", "canceled")


def register(c: httpx.Client, definition: dict[str, Any], workflow_id: str | None = None) -> str:
    """Register `definition` (under a fresh id unless given) and return the workflow id."""
    workflow_id = workflow_id or f"wf-{secrets.token_hex(4)}"
    r = c.put(f"/v1/workflows/{workflow_id}", json=definition)
    assert r.status_code in (200, 201), r.text
    return workflow_id


def poll(
    c: httpx.Client, run_id: str, until: tuple[str, ...] = TERMINAL, timeout: float = 60
) -> dict[str, Any]:
    """The run once its status is in `until`, or as it is when `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = c.get(f"/v1/runs/{run_id}").raise_for_status().json()
        if run["status"] in until or time.monotonic() > deadline:
            return run
        time.sleep(0.1)
