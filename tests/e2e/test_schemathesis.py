"""The served OpenAPI document against the running server. Schemathesis generates requests
from the document (valid and invalid ones, boundaries, sequences following the links) and
runs every check on each answer: no 5xx; every status, content type, header and body as
documented; invalid data refused; valid data accepted (schemathesis.toml and its hooks say
where the document cannot say everything); `Allow` right; a missing key refused.

Bounded examples keep it part of `make test` (about a minute); `make fuzz` runs the same
against `make up` with 10,000+ cases. The few requests below are the conformance failures
schemathesis found, kept as plain regression tests."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 5
SEED = 1


def _own_tenant_key(system: Any) -> str:
    """A key of a tenant of its own: schemathesis runs whatever workflows its tenant has, and
    another test's workflow (a five-minute `wait`) held each generated run request for the
    whole wait limit until the test timed out."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ingress.admin",
            "create-key",
            "--tenant",
            f"fuzz-{secrets.token_hex(4)}",
            "--limits",
            "unlimited",
        ],
        env=system.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


def test_the_server_answers_as_its_openapi_document_says(system: Any, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "WORKFLOW_API_KEY": _own_tenant_key(system),
        "ADMIN_API_KEY": system.env["ADMIN_API_KEY"],
    }
    cli = Path(sys.executable).parent / "schemathesis"
    done = subprocess.run(
        [
            str(cli),
            "--config-file",
            str(ROOT / "schemathesis.toml"),
            "run",
            f"{system.url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--no-color",
            "--report",
            "ndjson",
            "--report-dir",
            str(tmp_path),
        ],
        cwd=ROOT,  # the config names its hooks relative to the root
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-4000:]


def test_a_405_names_every_method_the_path_has(system: Any) -> None:
    with system.client() as c:
        r = c.request("OPTIONS", "/v1/workflows/any-workflow")
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/problem+json"
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "HEAD", "PUT"}


def test_listing_runs_by_a_workflow_id_the_store_cannot_hold_is_a_422(system: Any) -> None:
    with system.client() as c:
        nul = c.get("/v1/runs", params={"workflowId": "a\x00b"})
        empty_name = c.get("/v1/runs?=")
    assert nul.status_code == 422, nul.text
    assert nul.json()["errors"][0]["path"] == "/workflowId"
    assert empty_name.status_code == 200, empty_name.text


def test_cancel_after_must_be_seconds(system: Any) -> None:
    with system.client() as c:
        r = c.post(
            "/v1/workflows/no-such-workflow/run",
            json={"inputs": {}},
            headers={"Cancel-After": "1e3"},
        )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["path"] == "/cancel-after"


def test_a_boolean_is_no_version_number(system: Any) -> None:
    # Lax parsing read `true` as version 1 and started a run.
    with system.client() as c:
        r = c.post("/v1/workflows/no-such-workflow/run", json={"version": True})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["path"] == "/version"
