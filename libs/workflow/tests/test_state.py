import pytest
from workflow.state import (
    RUN_TRANSITIONS,
    STEP_TRANSITIONS,
    IllegalTransition,
    RunStatus,
    StepStatus,
    allowed_transitions,
    is_terminal,
    transition,
)

RUN_ALLOWED = {
    (RunStatus.QUEUED, RunStatus.RUNNING),
    (RunStatus.QUEUED, RunStatus.FAILED),
    (RunStatus.QUEUED, RunStatus.CANCELED),
    (RunStatus.RUNNING, RunStatus.COMPLETED),
    (RunStatus.RUNNING, RunStatus.FAILED),
    (RunStatus.RUNNING, RunStatus.CANCELED),
}

STEP_ALLOWED = {
    (StepStatus.PENDING, StepStatus.DISPATCHED),
    (StepStatus.PENDING, StepStatus.FAILED),
    (StepStatus.PENDING, StepStatus.CANCELED),
    (StepStatus.DISPATCHED, StepStatus.DISPATCHED),
    (StepStatus.DISPATCHED, StepStatus.RETRYING),
    (StepStatus.RETRYING, StepStatus.DISPATCHED),
    (StepStatus.RETRYING, StepStatus.CANCELED),
    (StepStatus.DISPATCHED, StepStatus.SUCCEEDED),
    (StepStatus.DISPATCHED, StepStatus.FAILED),
    (StepStatus.DISPATCHED, StepStatus.CANCELED),
}


def test_statuses_are_their_wire_strings() -> None:
    assert [str(s) for s in RunStatus] == ["queued", "running", "completed", "failed", "canceled"]
    assert StepStatus("dispatched") is StepStatus.DISPATCHED


def test_every_status_has_a_row_in_its_table() -> None:
    assert set(RUN_TRANSITIONS) == set(RunStatus)
    assert set(STEP_TRANSITIONS) == set(StepStatus)


@pytest.mark.parametrize("current", list(RunStatus))
@pytest.mark.parametrize("target", list(RunStatus))
def test_run_transitions_follow_the_table(current: RunStatus, target: RunStatus) -> None:
    if (current, target) in RUN_ALLOWED:
        assert transition(current, target) is target
    else:
        with pytest.raises(IllegalTransition):
            transition(current, target)


@pytest.mark.parametrize("current", list(StepStatus))
@pytest.mark.parametrize("target", list(StepStatus))
def test_step_transitions_follow_the_table(current: StepStatus, target: StepStatus) -> None:
    if (current, target) in STEP_ALLOWED:
        assert transition(current, target) is target
    else:
        with pytest.raises(IllegalTransition):
            transition(current, target)


def test_terminal_states_have_no_way_out() -> None:
    assert {s for s in RunStatus if is_terminal(s)} == {
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.CANCELED,
    }
    assert {s for s in StepStatus if is_terminal(s)} == {
        StepStatus.SUCCEEDED,
        StepStatus.FAILED,
        StepStatus.CANCELED,
    }
    assert allowed_transitions(RunStatus.COMPLETED) == frozenset()


def test_illegal_transition_says_what_was_attempted() -> None:
    with pytest.raises(IllegalTransition, match="run cannot go from completed to running") as e:
        transition(RunStatus.COMPLETED, RunStatus.RUNNING)

    assert (e.value.current, e.value.target) == (RunStatus.COMPLETED, RunStatus.RUNNING)
