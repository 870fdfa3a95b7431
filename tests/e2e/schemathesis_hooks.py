"""Schemathesis hooks (loaded by schemathesis.toml): the checks of our own contract."""

from __future__ import annotations

from typing import Any

import schemathesis

# A schema-valid request may still be refused for what the document cannot say
# (schemathesis.toml explains which operations): then it must be one of these problems.
SEMANTIC_PROBLEMS = {
    # A JSON string may hold U+0000 or a lone surrogate, which no store here takes.
    "PUT /v1/workflows/{workflow_id}": frozenset({"invalid-definition", "invalid-text"}),
    "POST /v1/workflows/{workflow_id}/run": frozenset(
        {
            "invalid-text",
            "invalid-inputs",
            "webhook-refused",
            "idempotency-conflict",
            # Cancel-After or timeoutSeconds over MAX_RUN_TIMEOUT_SECONDS
            "invalid-request",
        }
    ),
    # The same checks as a run start, and `fromNode` against the workflow's nodes.
    "POST /v1/runs/{run_id}/rerun": frozenset(
        {
            "invalid-text",
            "invalid-inputs",
            "webhook-refused",
            "idempotency-conflict",
            "invalid-request",
        }
    ),
    # Which field a provider needs depends on the path; a base URL must be an absolute http(s)
    # URL without credentials.
    "PUT /v1/providers/{name}": frozenset({"invalid-provider-credentials", "invalid-text"}),
}


@schemathesis.check
def valid_data_is_refused_only_for_what_the_document_cannot_say(
    ctx: Any, response: Any, case: Any
) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    allowed = SEMANTIC_PROBLEMS.get(case.operation.label)
    if allowed is None:
        return None  # positive_data_acceptance reports it
    kind = str(response.json().get("type", "")).rsplit("/", 1)[-1]
    if kind not in allowed:
        raise AssertionError(
            f"valid data refused with a {kind!r} problem; expected one of {sorted(allowed)}"
        )
    return None
