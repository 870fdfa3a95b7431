from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from workflow.definition import Backoff, WorkflowDefinition
from workflow.run import (
    CancelChildRun,
    Decision,
    DispatchStep,
    PublishRunEvent,
    RunState,
    ScheduleTimer,
    StepError,
    Timer,
    cancel_run,
    new_run_state,
    retry_delay,
    start_run,
    step_failed,
    step_succeeded,
    timer_fired,
)
from workflow.state import RunStatus, StepStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


FLAKY = StepError(code="provider_unavailable", message="provider is down", retryable=True)
PERMANENT = StepError(code="bad_prompt", message="prompt refused", retryable=False)


def definition(**node: Any) -> WorkflowDefinition:
    """One text.template node ``a``; ``node`` adds to or overrides its spec."""
    return WorkflowDefinition.model_validate(
        {
            "name": "one",
            "nodes": [{"id": "a", "type": "text.template", "params": {"template": "x"}, **node}],
            "outputs": {"text": "{{ nodes.a.text }}"},
        }
    )


RETRY_3 = {"maxAttempts": 3, "backoff": {"initialSeconds": 2, "factor": 3, "maxSeconds": 60}}


def timers(decision: Decision) -> list[ScheduleTimer]:
    return [e for e in decision.effects if isinstance(e, ScheduleTimer)]


def dispatches(decision: Decision) -> list[DispatchStep]:
    return [e for e in decision.effects if isinstance(e, DispatchStep)]


def queued(defn: WorkflowDefinition) -> RunState:
    return new_run_state("r", defn, {})


def unchanged(decision: Decision, run: RunState) -> bool:
    return decision.state is run and decision.effects == ()


# --- backoff -----------------------------------------------------------------------------------


def test_backoff_grows_exponentially_and_is_capped() -> None:
    backoff = Backoff(initial_seconds=2, factor=3, max_seconds=60)

    assert [retry_delay(backoff, n) for n in range(1, 6)] == [2, 6, 18, 54, 60]


def test_jitter_scales_the_capped_delay() -> None:
    backoff = Backoff(initial_seconds=2, factor=3, max_seconds=60)

    assert retry_delay(backoff, 2, jitter=0.5) == 3
    assert retry_delay(backoff, 2, jitter=1.5) == 9
    assert retry_delay(backoff, 10, jitter=1.5) == 90  # the cap applies before the jitter


@pytest.mark.parametrize("jitter", [0.49, 1.51, 0])
def test_jitter_outside_half_to_one_and_a_half_is_refused(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        retry_delay(Backoff(), 1, jitter=jitter)


# --- retries -----------------------------------------------------------------------------------


def test_retryable_failure_with_attempts_left_schedules_a_retry_with_jittered_backoff() -> None:
    defn = definition(retry=RETRY_3)
    run = start_run(defn, new_run_state("r", defn, {}), T0).state

    decision = step_failed(defn, run, "a", 1, FLAKY, at(1), jitter=1.25)

    step = decision.state.steps["a"]
    assert step.status is StepStatus.RETRYING
    assert step.next_attempt_at == at(1 + 2 * 1.25)
    assert step.error == FLAKY
    assert decision.effects == (ScheduleTimer("retry", "a", 2, at(3.5)),)
    assert decision.state.status is RunStatus.RUNNING
    assert decision.state.revision == run.revision + 1


def test_a_step_failing_twice_then_succeeding_completes_on_attempt_3() -> None:
    defn = definition(retry=RETRY_3)
    run = start_run(defn, new_run_state("r", defn, {}), T0).state

    run = step_failed(defn, run, "a", 1, FLAKY, at(1), started_at=at(0.5)).state
    second = timer_fired(defn, run, Timer(kind="retry", node_id="a", attempt=2), at(3))
    failed_again = step_failed(defn, second.state, "a", 2, FLAKY, at(4))
    (timer,) = timers(failed_again)
    third = timer_fired(defn, failed_again.state, timer.timer, timer.due_at)
    done = step_succeeded(defn, third.state, "a", 3, {"text": "ok"}, at(11))

    (redispatch,) = dispatches(second)
    assert (redispatch.node_id, redispatch.attempt, redispatch.params) == (
        "a",
        2,
        {"template": "x"},
    )
    assert timer.due_at == at(4 + 6)  # 2 * 3 ** (2 - 1)
    assert dispatches(third)[0].attempt == 3
    step = done.state.steps["a"]
    assert done.state.status is RunStatus.COMPLETED
    assert (step.status, step.attempt, step.error) == (StepStatus.SUCCEEDED, 3, None)
    assert [(a.attempt, a.error) for a in step.attempts] == [(1, FLAKY), (2, FLAKY)]
    assert step.attempts[0].started_at == at(0.5)
    assert step.attempts[0].dispatched_at == T0
    assert step.attempts[1].finished_at == at(4)
    assert done.state.outputs == {"text": "ok"}


def test_a_redispatched_step_gets_a_fresh_timeout_timer() -> None:
    defn = definition(retry=RETRY_3, timeoutSeconds=30)
    run = start_run(defn, new_run_state("r", defn, {}), T0).state
    run = step_failed(defn, run, "a", 1, FLAKY, at(1)).state

    decision = timer_fired(defn, run, Timer(kind="retry", node_id="a", attempt=2), at(3))

    assert decision.effects == (
        DispatchStep("a", "text.template", 2, {"template": "x"}, 30),
        ScheduleTimer("step_timeout", "a", 2, at(33)),
    )
    assert decision.state.steps["a"].status is StepStatus.DISPATCHED


def test_a_permanent_error_fails_at_once_despite_retries_left() -> None:
    defn = definition(retry=RETRY_3)
    run = start_run(defn, new_run_state("r", defn, {}), T0).state

    decision = step_failed(defn, run, "a", 1, PERMANENT, at(1))

    assert decision.state.status is RunStatus.FAILED
    assert decision.state.steps["a"].status is StepStatus.FAILED
    assert [a.attempt for a in decision.state.steps["a"].attempts] == [1]
    assert decision.effects == (PublishRunEvent("failed"),)
    assert decision.state.error is not None
    assert decision.state.error.message == "node 'a' (text.template) failed: prompt refused"


def test_exhausted_attempts_fail_the_run_with_the_attempt_count() -> None:
    defn = definition(retry=RETRY_3)
    run = start_run(defn, new_run_state("r", defn, {}), T0).state
    for attempt in (1, 2):
        run = step_failed(defn, run, "a", attempt, FLAKY, at(attempt)).state
        retry = Timer(kind="retry", node_id="a", attempt=attempt + 1)
        run = timer_fired(defn, run, retry, at(attempt + 0.5)).state

    decision = step_failed(defn, run, "a", 3, FLAKY, at(20))

    error = decision.state.error
    assert decision.state.status is RunStatus.FAILED
    assert error is not None
    assert error.node_id == "a"
    assert error.message == "node 'a' (text.template) failed after 3 attempts: provider is down"
    assert len(decision.state.steps["a"].attempts) == 3
    assert timers(decision) == []


def test_without_a_retry_policy_a_retryable_error_fails_the_run() -> None:
    defn = definition()
    run = start_run(defn, new_run_state("r", defn, {}), T0).state

    assert step_failed(defn, run, "a", 1, FLAKY, at(1)).state.status is RunStatus.FAILED


def test_duplicate_failure_and_duplicate_retry_timer_change_nothing() -> None:
    defn = definition(retry=RETRY_3)
    run = start_run(defn, new_run_state("r", defn, {}), T0).state
    retrying = step_failed(defn, run, "a", 1, FLAKY, at(1)).state
    redispatched = timer_fired(defn, retrying, Timer(kind="retry", node_id="a", attempt=2), at(3))

    assert unchanged(step_failed(defn, retrying, "a", 1, FLAKY, at(2)), retrying)
    assert unchanged(step_succeeded(defn, retrying, "a", 1, {"text": "late"}, at(2)), retrying)
    again = timer_fired(
        defn, redispatched.state, Timer(kind="retry", node_id="a", attempt=2), at(4)
    )
    assert unchanged(again, redispatched.state)
    early = timer_fired(defn, retrying, Timer(kind="retry", node_id="a", attempt=3), at(3))
    assert unchanged(early, retrying)


def test_canceling_a_retrying_step_cancels_it_and_its_retry_timer_changes_nothing() -> None:
    defn = definition(retry=RETRY_3)
    run = start_run(defn, new_run_state("r", defn, {}), T0).state
    retrying = step_failed(defn, run, "a", 1, FLAKY, at(1)).state

    canceled = cancel_run(retrying, at(2)).state

    assert canceled.steps["a"].status is StepStatus.CANCELED
    late = timer_fired(defn, canceled, Timer(kind="retry", node_id="a", attempt=2), at(3))
    assert unchanged(late, canceled)


# --- step timeouts -----------------------------------------------------------------------------


def test_every_dispatched_executable_step_gets_a_timeout_timer() -> None:
    with_timeout = definition(timeoutSeconds=30)
    without = definition()

    first = start_run(with_timeout, new_run_state("r", with_timeout, {}), T0)
    second = start_run(without, new_run_state("r", without, {}), T0, default_step_timeout=600)

    assert timers(first) == [ScheduleTimer("step_timeout", "a", 1, at(30))]
    assert dispatches(first)[0].timeout_seconds == 30
    assert timers(second) == [ScheduleTimer("step_timeout", "a", 1, at(600))]
    assert dispatches(second)[0].timeout_seconds is None
    assert timers(start_run(without, new_run_state("r", without, {}), T0))[0].due_at == at(900)


def test_a_step_timeout_for_the_current_attempt_retries_the_step() -> None:
    defn = definition(retry=RETRY_3, timeoutSeconds=30)
    run = start_run(defn, new_run_state("r", defn, {}), T0).state

    decision = timer_fired(
        defn, run, Timer(kind="step_timeout", node_id="a", attempt=1), at(30), jitter=0.5
    )

    step = decision.state.steps["a"]
    assert step.status is StepStatus.RETRYING
    assert step.attempts[0].error == StepError(
        code="timeout", message="node 'a' exceeded its timeout of 30s", retryable=True
    )
    assert decision.effects == (ScheduleTimer("retry", "a", 2, at(31)),)


def test_a_step_whose_result_never_came_is_re_driven_once_even_without_retries() -> None:
    defn = definition(timeoutSeconds=2.5)
    run = start_run(defn, new_run_state("r", defn, {}), T0).state

    lost = timer_fired(defn, run, Timer(kind="step_timeout", node_id="a", attempt=1), at(3))

    assert lost.state.status is RunStatus.RUNNING
    assert lost.state.steps["a"].status is StepStatus.RETRYING
    retry = [e for e in lost.effects if isinstance(e, ScheduleTimer)]
    assert [(t.kind, t.attempt, t.due_at) for t in retry] == [("retry", 2, at(3))]


def test_a_step_timeout_without_retries_left_fails_the_run_the_second_time() -> None:
    defn = definition(timeoutSeconds=2.5)
    run = start_run(defn, new_run_state("r", defn, {}), T0).state
    lost = timer_fired(defn, run, Timer(kind="step_timeout", node_id="a", attempt=1), at(3))
    again = timer_fired(defn, lost.state, Timer(kind="retry", node_id="a", attempt=2), at(3))

    decision = timer_fired(
        defn, again.state, Timer(kind="step_timeout", node_id="a", attempt=2), at(6)
    )

    assert decision.state.status is RunStatus.FAILED
    assert decision.state.error is not None
    assert decision.state.error.message == (
        "node 'a' (text.template) failed after 2 attempts: node 'a' exceeded its timeout of 2.5s"
    )


def test_a_timeout_the_executor_reports_is_not_re_driven_without_a_policy() -> None:
    defn = definition(timeoutSeconds=2.5)
    run = start_run(defn, new_run_state("r", defn, {}), T0).state
    reported = StepError(code="timeout", message="the step exceeded its timeout", retryable=True)

    decision = step_failed(defn, run, "a", 1, reported, at(3))

    assert decision.state.status is RunStatus.FAILED


def test_a_stale_step_timeout_changes_nothing() -> None:
    defn = definition(retry=RETRY_3, timeoutSeconds=30)
    run = start_run(defn, new_run_state("r", defn, {}), T0).state
    retrying = step_failed(defn, run, "a", 1, FLAKY, at(1)).state
    second = timer_fired(defn, retrying, Timer(kind="retry", node_id="a", attempt=2), at(3)).state
    done = step_succeeded(defn, second, "a", 2, {"text": "ok"}, at(4)).state

    old_attempt = Timer(kind="step_timeout", node_id="a", attempt=1)
    assert unchanged(timer_fired(defn, retrying, old_attempt, at(30)), retrying)
    assert unchanged(timer_fired(defn, second, old_attempt, at(30)), second)
    current_but_done = Timer(kind="step_timeout", node_id="a", attempt=2)
    assert unchanged(timer_fired(defn, done, current_but_done, at(33)), done)
    ghost = Timer(kind="step_timeout", node_id="ghost", attempt=1)
    assert unchanged(timer_fired(defn, run, ghost, at(30)), run)


# --- run timeouts ------------------------------------------------------------------------------


def two_step(timeout: float | None = None) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {
            "name": "two",
            "timeoutSeconds": timeout,
            "nodes": [
                {"id": "a", "type": "text.template", "params": {"template": "a"}},
                {"id": "b", "type": "text.template", "params": {"template": "{{ nodes.a.text }}"}},
            ],
            "outputs": {"text": "{{ nodes.b.text }}"},
        }
    )


def test_start_schedules_the_run_timeout_right_after_started() -> None:
    defn = two_step(timeout=120)

    decision = start_run(defn, new_run_state("r", defn, {}), T0)

    assert decision.effects[:2] == (
        PublishRunEvent("started"),
        ScheduleTimer("run_timeout", None, None, at(120)),
    )


def test_the_run_timeout_override_wins_over_the_definition() -> None:
    defn = two_step(timeout=120)
    without = two_step()

    overridden = start_run(defn, new_run_state("r", defn, {}, timeout_seconds=30), T0)
    only_override = start_run(without, new_run_state("r", without, {}, timeout_seconds=45), T0)

    assert ScheduleTimer("run_timeout", None, None, at(30)) in overridden.effects
    assert ScheduleTimer("run_timeout", None, None, at(45)) in only_override.effects
    assert not any(t.kind == "run_timeout" for t in timers(start_run(without, queued(without), T0)))


def test_run_timeout_fails_the_run_and_cancels_unfinished_steps() -> None:
    defn = two_step(timeout=120)
    run = start_run(defn, queued(defn), T0).state

    decision = timer_fired(defn, run, Timer(kind="run_timeout"), at(120))

    state = decision.state
    assert state.status is RunStatus.FAILED
    assert state.error is not None
    assert (state.error.code, state.error.message) == (
        "timeout",
        "the run exceeded its timeout of 120s",
    )
    assert {n: s.status for n, s in state.steps.items()} == {
        "a": StepStatus.CANCELED,
        "b": StepStatus.CANCELED,
    }
    assert decision.effects == (PublishRunEvent("failed"),)
    assert state.revision == run.revision + 1


def test_run_timeout_after_the_run_ended_changes_nothing() -> None:
    defn = two_step(timeout=120)
    run = start_run(defn, queued(defn), T0).state
    run = step_succeeded(defn, run, "a", 1, {"text": "a"}, at(1)).state
    done = step_succeeded(defn, run, "b", 1, {"text": "b"}, at(2)).state
    failed = timer_fired(defn, run, Timer(kind="run_timeout"), at(120)).state

    assert done.status is RunStatus.COMPLETED
    assert unchanged(timer_fired(defn, done, Timer(kind="run_timeout"), at(120)), done)
    assert unchanged(timer_fired(defn, failed, Timer(kind="run_timeout"), at(121)), failed)


def test_a_run_that_ends_at_start_schedules_no_run_timeout() -> None:
    defn = WorkflowDefinition.model_validate(
        {
            "name": "t",
            "timeoutSeconds": 60,
            "nodes": [
                {"id": "g", "type": "image.generate", "params": {"prompt": "{{ inputs.p }}"}}
            ],
            "outputs": {"o": "{{ nodes.g.image }}"},
        }
    )

    decision = start_run(defn, queued(defn), T0)

    assert decision.effects == (PublishRunEvent("started"), PublishRunEvent("failed"))


# --- watchdog ----------------------------------------------------------------------------------


def test_watchdog_starts_a_run_still_queued_and_otherwise_changes_nothing() -> None:
    defn = two_step()
    waiting = queued(defn)

    started = timer_fired(defn, waiting, Timer(kind="watchdog"), T0)
    again = timer_fired(defn, started.state, Timer(kind="watchdog"), at(1))

    assert started.state.status is RunStatus.RUNNING
    assert started.effects[0] == PublishRunEvent("started")
    assert unchanged(again, started.state)
    canceled = cancel_run(waiting, T0).state
    assert unchanged(timer_fired(defn, canceled, Timer(kind="watchdog"), at(1)), canceled)


def test_no_child_run_is_canceled_for_an_executable_step() -> None:
    defn = definition(timeoutSeconds=30)
    run = start_run(defn, queued(defn), T0).state

    decision = timer_fired(defn, run, Timer(kind="step_timeout", node_id="a", attempt=1), at(30))

    assert not any(isinstance(e, CancelChildRun) for e in decision.effects)
