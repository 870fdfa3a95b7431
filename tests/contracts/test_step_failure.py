"""`StepFailure.retryAfterSeconds`: optional, camelCase on the wire, compatible both ways."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from contracts.events import StepFailed, StepFailure
from pydantic import ValidationError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _event(error: StepFailure) -> StepFailed:
    return StepFailed(
        run_id="run_1", node_id="draw", attempt=1, error=error, started_at=T0, finished_at=T0
    )


def test_retry_after_seconds_round_trips_through_a_step_failed_event_as_camel_case() -> None:
    event = _event(
        StepFailure(code="rate_limited", message="429", retryable=True, retry_after_seconds=12.5)
    )

    wire = event.model_dump_json(by_alias=True)

    assert json.loads(wire)["error"]["retryAfterSeconds"] == 12.5
    assert StepFailed.model_validate_json(wire) == event


def test_an_older_step_failed_event_without_retry_after_still_loads() -> None:
    wire = _event(StepFailure(code="x", message="y")).model_dump(mode="json", by_alias=True)
    del wire["error"]["retryAfterSeconds"]

    assert StepFailed.model_validate(wire).error.retry_after_seconds is None


def test_a_newer_step_failure_with_unknown_fields_still_loads() -> None:
    error = {"code": "x", "message": "y", "retryAfterSeconds": 3, "retryAt": "later"}

    assert StepFailure.model_validate(error).retry_after_seconds == 3


@pytest.mark.parametrize("seconds", [-0.5, float("inf"), float("nan")])
def test_a_negative_or_non_finite_retry_after_is_refused(seconds: float) -> None:
    with pytest.raises(ValidationError):
        StepFailure(code="x", message="y", retryable=True, retry_after_seconds=seconds)
