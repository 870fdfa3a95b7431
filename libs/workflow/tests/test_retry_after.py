"""A failure's own Retry-After: the next attempt waits at least that long, up to maxSeconds."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from workflow.definition import Backoff, WorkflowDefinition
from workflow.run import (
    Decision,
    RunState,
    ScheduleTimer,
    StepError,
    Timer,
    new_run_state,
    retry_delay,
    start_run,
    step_failed,
    timer_fired,
)
from workflow.state import RunStatus, StepStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# The backoff before attempt 2 is 2 s (times the jitter); no delay is ever longer than 60 s.
RETRY_3 = {"maxAttempts": 3, "backoff": {"initialSeconds": 2, "factor": 3, "maxSeconds": 60}}


def busy(retry_after: float | None, *, retryable: bool = True) -> StepError:
    return StepError(
        code="provider_error",
        message="429 Too Many Requests",
        retryable=retryable,
        retry_after_seconds=retry_after,
    )


def one_step(**node: Any) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {
            "name": "one",
            "nodes": [{"id": "a", "type": "text.template", "params": {"template": "x"}, **node}],
            "outputs": {"text": "{{ nodes.a.text }}"},
        }
    )


def a_map(**template: Any) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {
            "name": "map",
            "nodes": [
                {
                    "id": "m",
                    "type": "map",
                    "params": {
                        "items": "{{ inputs.words }}",
                        "node": {
                            "type": "text.template",
                            "params": {"template": "{{ item }}"},
                            **template,
                        },
                    },
                }
            ],
            "outputs": {"texts": "{{ nodes.m.results }}"},
        }
    )


def started(defn: WorkflowDefinition, inputs: dict[str, Any] | None = None) -> RunState:
    return start_run(defn, new_run_state("r", defn, inputs or {}), T0).state


def timers(decision: Decision) -> list[ScheduleTimer]:
    return [e for e in decision.effects if isinstance(e, ScheduleTimer)]


# --- retry_delay -------------------------------------------------------------------------------


def test_retry_delay_is_the_longer_of_the_jittered_backoff_and_retry_after() -> None:
    backoff = Backoff(initial_seconds=2, factor=3, max_seconds=60)

    assert retry_delay(backoff, 1, jitter=1.5, retry_after=10) == 10
    assert retry_delay(backoff, 2, jitter=1.5, retry_after=4) == 9
    assert retry_delay(backoff, 1, jitter=1.5, retry_after=3600) == 60
    assert retry_delay(backoff, 10, jitter=1.5, retry_after=3600) == 90  # backoff, jittered
    assert retry_delay(backoff, 1, retry_after=None) == retry_delay(backoff, 1)


# --- steps -------------------------------------------------------------------------------------


def test_a_retry_after_longer_than_the_backoff_schedules_the_retry_at_now_plus_retry_after() -> (
    None
):
    defn = one_step(retry=RETRY_3)

    decision = step_failed(defn, started(defn), "a", 1, busy(30), at(1), jitter=1.25)

    step = decision.state.steps["a"]
    assert step.status is StepStatus.RETRYING
    assert step.next_attempt_at == at(1 + 30)
    assert timers(decision) == [ScheduleTimer("retry", "a", 2, at(31))]
    assert step.error is not None
    assert step.error.retry_after_seconds == 30


def test_a_retry_after_shorter_than_the_backoff_keeps_the_backoff() -> None:
    defn = one_step(retry=RETRY_3)

    decision = step_failed(defn, started(defn), "a", 1, busy(0.5), at(1), jitter=1.25)

    assert decision.state.steps["a"].next_attempt_at == at(1 + 2 * 1.25)
    assert timers(decision) == [ScheduleTimer("retry", "a", 2, at(3.5))]


def test_a_retry_after_beyond_max_seconds_is_capped_at_max_seconds() -> None:
    defn = one_step(retry=RETRY_3)

    decision = step_failed(defn, started(defn), "a", 1, busy(86_400), at(1), jitter=0.5)

    assert decision.state.steps["a"].next_attempt_at == at(1 + 60)
    assert timers(decision) == [ScheduleTimer("retry", "a", 2, at(61))]


def test_a_retry_after_without_a_retry_policy_still_fails_the_step() -> None:
    defn = one_step()

    decision = step_failed(defn, started(defn), "a", 1, busy(5), at(1))

    assert decision.state.status is RunStatus.FAILED
    assert decision.state.steps["a"].status is StepStatus.FAILED
    assert timers(decision) == []


def test_a_retry_after_with_attempts_exhausted_still_fails_the_step() -> None:
    defn = one_step(retry={"maxAttempts": 2})
    run = step_failed(defn, started(defn), "a", 1, busy(5), at(1)).state
    run = timer_fired(defn, run, Timer(kind="retry", node_id="a", attempt=2), at(6)).state

    decision = step_failed(defn, run, "a", 2, busy(5), at(7))

    assert decision.state.status is RunStatus.FAILED
    assert decision.state.steps["a"].status is StepStatus.FAILED
    assert timers(decision) == []


def test_a_retry_after_on_a_permanent_error_creates_no_retry() -> None:
    defn = one_step(retry=RETRY_3)

    decision = step_failed(defn, started(defn), "a", 1, busy(5, retryable=False), at(1))

    assert decision.state.status is RunStatus.FAILED
    assert timers(decision) == []


# --- map items ---------------------------------------------------------------------------------


def test_a_map_item_retry_waits_for_retry_after_capped_at_max_seconds() -> None:
    defn = a_map(retry=RETRY_3)
    run = started(defn, {"words": ["x", "y"]})

    longer = step_failed(defn, run, "m[0]", 1, busy(30), at(1), jitter=1.0)
    shorter = step_failed(defn, run, "m[0]", 1, busy(0.5), at(1), jitter=1.0)
    capped = step_failed(defn, run, "m[0]", 1, busy(3600), at(1), jitter=1.0)

    assert timers(longer) == [ScheduleTimer("retry", "m[0]", 2, at(31))]
    assert timers(shorter) == [ScheduleTimer("retry", "m[0]", 2, at(3))]
    assert timers(capped) == [ScheduleTimer("retry", "m[0]", 2, at(61))]
    item = (longer.state.steps["m"].items or [])[0]
    assert (item.status, item.next_attempt_at) == (StepStatus.RETRYING, at(31))
    assert item.error is not None
    assert item.error.retry_after_seconds == 30


def test_a_map_item_retry_after_without_a_retry_policy_still_fails_the_map() -> None:
    defn = a_map()
    run = started(defn, {"words": ["x", "y"]})

    decision = step_failed(defn, run, "m[0]", 1, busy(5), at(1))

    assert decision.state.status is RunStatus.FAILED
    assert decision.state.steps["m"].status is StepStatus.FAILED
    assert timers(decision) == []


# --- the stored record -------------------------------------------------------------------------


def test_retry_after_round_trips_through_the_stored_run_record() -> None:
    defn = one_step(retry=RETRY_3)
    retrying = step_failed(defn, started(defn), "a", 1, busy(12.5), at(1)).state

    stored = retrying.model_dump_json(exclude_defaults=True)  # as the orchestrator stores it
    loaded = RunState.model_validate_json(stored)

    assert '"retry_after_seconds":12.5' in stored
    assert loaded == retrying
    step = loaded.steps["a"]
    assert step.error is not None
    assert step.error.retry_after_seconds == 12.5
    assert [a.error.retry_after_seconds for a in step.attempts if a.error] == [12.5]


def test_a_stored_error_from_before_retry_after_loads_without_it() -> None:
    old = StepError.model_validate_json('{"code": "x", "message": "y", "retryable": true}')

    assert old.retry_after_seconds is None


@pytest.mark.parametrize("seconds", [-1, float("inf"), float("nan")])
def test_a_negative_or_infinite_retry_after_is_refused(seconds: float) -> None:
    with pytest.raises(ValidationError):
        busy(seconds)
