"""Running one step: validate params, run the node's handler, report the result.

Errors are classified where they are raised: the caller's mistakes (bad params, a missing or
broken input asset) are permanent; our dependencies failing or a timeout are retryable.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import httpx
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError
from bus import tracing
from bus.deadletter import DeadLetter
from bus.publisher import EventPublisher
from bus.topics import Topic
from contracts.events import (
    RunCancelRequested,
    StepFailed,
    StepFailure,
    StepRequested,
    StepStarted,
    StepSucceeded,
)
from egress import EgressRefused, UnresolvableHost
from storage.assets import AssetNotFound, AssetStore, InvalidAssetRef
from workflow.catalog import NodeKind, get_node_type
from workflow.limits import Limits, exceeded
from workflow.validation import ParamsError, validate_params

from executor.imaging.result import ImageTooLarge, ImagingError
from executor.nodes import (
    DEFAULT_LIMITS,
    HttpCallFailed,
    InvalidResponse,
    NodeContext,
    NodeHandler,
    NodeResult,
    ResponseTooLarge,
)
from executor.providers import GraphError, ProviderError, Providers

log = logging.getLogger("executor")

CANCELED_MEMORY = 10_000
ANSWERED_MEMORY_BYTES = 16 * 1024 * 1024
"""Results of finished attempts kept to answer a repeated request without running again."""
CANCELED = StepFailure(code="canceled", message="the run was canceled")
POISON_CODE = "poison_message"


def _now() -> datetime:
    return datetime.now(UTC)


class NodeFailure(Exception):
    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.failure = StepFailure(code=code, message=message, retryable=retryable)


def _step_of(letter: DeadLetter) -> tuple[str, str, int] | None:
    """Run, node and attempt of a dead-lettered step request: from the event when it
    decoded, else read leniently from its JSON (a schema it failed may still name them)."""
    if isinstance(letter.event, StepRequested):
        return letter.event.run_id, letter.event.node_id, letter.event.attempt
    try:
        data = json.loads(letter.value)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    node_id, attempt, run_id = data.get("nodeId"), data.get("attempt"), letter.run_id
    if not isinstance(node_id, str) or type(attempt) is not int or attempt < 1 or not run_id:
        return None
    return run_id, node_id, attempt


def classify(exc: BaseException) -> StepFailure:
    if isinstance(exc, NodeFailure):
        return exc.failure
    if isinstance(exc, ParamsError):
        return StepFailure(code="invalid_params", message=str(exc))
    if isinstance(exc, AssetNotFound | InvalidAssetRef):
        return StepFailure(code="asset_not_found", message=str(exc))
    if isinstance(exc, ImageTooLarge):
        return StepFailure(code="image_too_large", message=str(exc))
    if isinstance(exc, ImagingError):
        return StepFailure(code="invalid_image", message=str(exc))
    if isinstance(exc, InvalidResponse):
        return StepFailure(code="invalid_response", message=str(exc))
    if isinstance(exc, ResponseTooLarge):
        return StepFailure(code="response_too_large", message=str(exc))
    if isinstance(exc, HttpCallFailed):
        return StepFailure(code="http_error", message=str(exc), retryable=exc.retryable)
    if isinstance(exc, EgressRefused):
        return StepFailure(code="egress_refused", message=str(exc))
    if isinstance(exc, httpx.TimeoutException):
        return StepFailure(
            code="timeout", message=f"the target did not answer: {exc}", retryable=True
        )
    if isinstance(exc, httpx.TransportError | UnresolvableHost):
        return StepFailure(code="unreachable", message=str(exc), retryable=True)
    if isinstance(exc, ProviderError):
        return StepFailure(
            code=exc.code,
            message=str(exc),
            retryable=exc.retryable,
            retry_after_seconds=exc.retry_after if exc.retryable else None,
        )
    if isinstance(exc, GraphError):
        return StepFailure(code="invalid_params", message=str(exc))
    if isinstance(exc, TimeoutError):
        return StepFailure(code="timeout", message="the step exceeded its timeout", retryable=True)
    return StepFailure(
        code="internal_error", message=f"{type(exc).__name__}: {exc}", retryable=True
    )


class Executor:
    def __init__(
        self,
        *,
        handlers: Mapping[str, NodeHandler],
        store: AssetStore,
        outputs_bucket: str,
        providers: Providers,
        http: httpx.AsyncClient,
        publisher: EventPublisher,
        default_timeout: float,
        limits: Limits = DEFAULT_LIMITS,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._handlers = handlers
        self._store = store
        self._outputs_bucket = outputs_bucket
        self._providers = providers
        self._http = http
        self._publisher = publisher
        self._default_timeout = default_timeout
        self._limits = limits
        self._clock = clock
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._running: dict[str, set[asyncio.Future[NodeResult]]] = defaultdict(set)
        self._canceled: OrderedDict[str, None] = OrderedDict()
        self._taken: set[tuple[str, str, int]] = set()
        self._answered: OrderedDict[tuple[str, str, int], tuple[StepSucceeded | StepFailed, int]]
        self._answered = OrderedDict()
        self._answered_bytes = 0

    async def on_cancel_requested(self, event: RunCancelRequested) -> None:
        """Stop the run's steps running here and refuse its steps still to come."""
        self._canceled[event.run_id] = None
        while len(self._canceled) > CANCELED_MEMORY:
            self._canceled.popitem(last=False)
        for work in self._running.get(event.run_id, set()):
            work.cancel()

    async def on_step_requested(self, step: StepRequested) -> None:
        # At-least-once delivery (and an orchestrator re-driving a change) can hand over the same
        # step attempt again while it still runs here: running it twice would repeat its side
        # effects (an http.request, a generation), so the repeat changes nothing.
        taken = (step.run_id, step.node_id, step.attempt)
        answered = self._answered.get(taken)
        if answered is not None:
            # Finished here already: the request came again because its answer may have been
            # lost, so the answer goes again, and the step does not run a second time.
            log.info(
                "run %s: step %s attempt %d was answered here; answer sent again",
                step.run_id,
                step.node_id,
                step.attempt,
            )
            await self._publisher.publish(answered[0])
            return
        if taken in self._taken:
            log.info(
                "run %s: step %s attempt %d is already running here; repeated request ignored",
                step.run_id,
                step.node_id,
                step.attempt,
            )
            return
        self._taken.add(taken)
        try:
            await self._take(step)
        finally:
            self._taken.discard(taken)

    async def _take(self, step: StepRequested) -> None:
        self._in_flight += 1
        self._idle.clear()
        try:
            # One span per node execution (its started and result events published inside).
            with tracing.tracer().start_as_current_span(
                f"node {step.node_type}",
                attributes={
                    "workflow.run_id": step.run_id,
                    "workflow.node_id": step.node_id,
                    "workflow.node_type": step.node_type,
                    "workflow.attempt": step.attempt,
                },
            ):
                await self._run(step)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def drained(self) -> None:
        await self._idle.wait()

    async def _run(self, step: StepRequested) -> None:
        started = self._clock()
        log.info(
            "run %s: step %s (%s) attempt %d taken",
            step.run_id,
            step.node_id,
            step.node_type,
            step.attempt,
        )
        if step.run_id in self._canceled:
            await self._failed(step, started, CANCELED)
            return
        await self._publisher.publish(
            StepStarted(
                run_id=step.run_id, node_id=step.node_id, attempt=step.attempt, started_at=started
            )
        )
        if step.run_id in self._canceled:
            await self._failed(step, started, CANCELED)
            return
        work = asyncio.ensure_future(
            asyncio.wait_for(
                self._execute(step), timeout=step.timeout_seconds or self._default_timeout
            )
        )
        self._running[step.run_id].add(work)
        try:
            result = await work
        except asyncio.CancelledError:
            if step.run_id not in self._canceled:
                raise  # shutting down: the step is re-driven, not failed
            log.info("run %s: step %s canceled while running", step.run_id, step.node_id)
            await self._failed(step, started, CANCELED)
            return
        except Exception as exc:
            failure = classify(exc)
            level = logging.ERROR if failure.code == "internal_error" else logging.INFO
            log.log(
                level,
                "run %s: step %s (attempt %d) failed: %s",
                step.run_id,
                step.node_id,
                step.attempt,
                failure.message,
                exc_info=failure.code == "internal_error",
            )
            await self._failed(step, started, failure)
            return
        finally:
            running = self._running.get(step.run_id)
            if running is not None:
                running.discard(work)
                if not running:
                    del self._running[step.run_id]
        try:
            await self._answer(
                StepSucceeded(
                    run_id=step.run_id,
                    node_id=step.node_id,
                    attempt=step.attempt,
                    outputs=result.outputs,
                    assets=result.assets,
                    started_at=started,
                    finished_at=self._clock(),
                )
            )
        except (MessageSizeTooLargeError, RecordTooLargeError) as exc:
            # The result can never be sent, however often the step runs: say so instead
            # (failing here would only run the step again, up to its message's budget).
            limit = exceeded("max_step_output_bytes", self._limits.max_step_output_bytes)
            message = f"the step's result does not fit a Kafka message ({exc}); {limit}"
            await self._failed(
                step, started, StepFailure(code="outputs_too_large", message=message)
            )

    async def on_dead_letter(self, letter: DeadLetter) -> None:
        """A step request that cannot be processed (undecodable, or failing every try) is
        answered with a `step.failed` that is not retried, carrying the reason: the
        orchestrator then fails the step and its run instead of waiting for its timeout."""
        if not letter.topic.endswith(Topic.STEP_REQUESTED.value):
            return  # a cancel: the orchestrator, which reads it too, ends its run
        step = _step_of(letter)
        if step is None:
            log.error(
                "run %s: a step request that names no step was dead-lettered; its timeout ends it",
                letter.run_id,
            )
            return
        run_id, node_id, attempt = step
        now = self._clock()
        await self._publisher.publish(
            StepFailed(
                run_id=run_id,
                node_id=node_id,
                attempt=attempt,
                error=StepFailure(code=POISON_CODE, message=letter.describe(), retryable=False),
                started_at=now,
                finished_at=now,
            ),
            event_id=f"{run_id}:{node_id}:{attempt}:{POISON_CODE}",
        )

    async def _answer(self, result: StepSucceeded | StepFailed) -> None:
        """Publish a step attempt's result and remember it (a bounded number of bytes, oldest
        forgotten first), so a repeated request for the attempt gets it again."""
        await self._publisher.publish(result)
        if isinstance(result, StepFailed) and result.error.code == CANCELED.code:
            return  # a canceled attempt is not an answer to keep: its run is over
        size = len(result.model_dump_json(by_alias=True))
        key = (result.run_id, result.node_id, result.attempt)
        old = self._answered.pop(key, None)
        if old is not None:
            self._answered_bytes -= old[1]
        self._answered[key] = (result, size)
        self._answered_bytes += size
        while self._answered_bytes > ANSWERED_MEMORY_BYTES and self._answered:
            _, (_, dropped) = self._answered.popitem(last=False)
            self._answered_bytes -= dropped

    async def _failed(self, step: StepRequested, started: datetime, failure: StepFailure) -> None:
        await self._answer(
            StepFailed(
                run_id=step.run_id,
                node_id=step.node_id,
                attempt=step.attempt,
                error=failure,
                started_at=started,
                finished_at=self._clock(),
            )
        )

    async def _execute(self, step: StepRequested) -> NodeResult:
        node_type = get_node_type(step.node_type)
        handler = self._handlers.get(step.node_type)
        if node_type is None or node_type.kind is not NodeKind.EXECUTABLE or handler is None:
            raise NodeFailure(
                "unknown_node_type",
                f"no executor for node type {step.node_type!r}",
                retryable=False,
            )
        params = validate_params(node_type, step.params)
        ctx = NodeContext(
            tenant_id=step.tenant_id,
            run_id=step.run_id,
            node_id=step.node_id,
            attempt=step.attempt,
            store=self._store,
            outputs_bucket=self._outputs_bucket,
            providers=self._providers,
            http=self._http,
            limits=self._limits,
        )
        return await handler(params, ctx)
