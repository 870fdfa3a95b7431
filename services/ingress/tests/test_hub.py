from datetime import UTC, datetime

from bus.envelope import Envelope
from contracts.events import RunCompleted, RunStarted, StepStarted
from contracts.run import RunStatus
from ingress.hub import Hub, wait_for_end

NOW = datetime.now(UTC)


def _run_event(run_id: str, model: type[RunStarted] | type[RunCompleted]) -> Envelope:
    status = RunStatus.RUNNING if model is RunStarted else RunStatus.COMPLETED
    data = model(
        run_id=run_id,
        tenant_id="t",
        workflow_id="w",
        workflow_version=1,
        status=status,
        created_at=NOW,
    )
    return Envelope(
        id="1",
        type=data.event_type,
        source="/t",
        subject=run_id,
        time=NOW,
        data=data,
    )


def _step_event(run_id: str) -> Envelope:
    data = StepStarted(run_id=run_id, node_id="a", attempt=1, started_at=NOW)
    return Envelope(
        id="2",
        type=data.event_type,
        source="/t",
        subject=run_id,
        time=NOW,
        data=data,
    )


async def test_every_listener_of_a_run_gets_its_events_and_no_other_runs() -> None:
    hub = Hub()
    with hub.listen("run_1") as a, hub.listen("run_1") as b, hub.listen("run_2") as other:
        hub.publish(_step_event("run_1"))
        assert (await a.get()).data.run_id == "run_1"
        assert (await b.get()).data.run_id == "run_1"
        assert other.empty()
    assert len(hub) == 0


async def test_waiting_ends_on_the_terminal_event_not_on_started() -> None:
    hub = Hub()
    with hub.listen("run_1") as queue:
        hub.publish(_run_event("run_1", RunStarted))
        hub.publish(_step_event("run_1"))
        assert not await wait_for_end(queue, 0.05)
        hub.publish(_run_event("run_1", RunCompleted))
        assert await wait_for_end(queue, 1)


async def test_a_run_nobody_listens_to_is_ignored() -> None:
    hub = Hub()
    hub.publish(_run_event("run_x", RunCompleted))
    assert len(hub) == 0


async def test_a_waiting_request_wants_only_its_runs_end_and_a_stream_wants_everything() -> None:
    hub = Hub()
    started, completed = RunStarted.event_type, RunCompleted.event_type
    assert not hub.wants("run_1", completed), "nobody listens"
    with hub.listen("run_1", only_end=True) as waiting:
        assert hub.wants("run_1", completed)
        assert not hub.wants("run_1", started)
        assert not hub.wants("run_1", StepStarted.event_type)
        assert not hub.wants("run_2", completed)
        hub.publish(_run_event("run_1", RunStarted))
        hub.publish(_run_event("run_1", RunCompleted))
        assert (await waiting.get()).type == completed
        assert waiting.empty()
        with hub.listen("run_1"):
            assert hub.wants("run_1", StepStarted.event_type)
    assert not hub.wants("run_1", completed)
