from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bus import tracing
from bus.publisher import EventPublisher
from contracts.events import RunCancelRequested
from opentelemetry import trace


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "True"},
            False,
        ),
    ],
)
def test_tracing_is_on_only_when_an_otlp_endpoint_is_set(
    env: dict[str, str], enabled: bool
) -> None:
    assert tracing.tracing_enabled(env) is enabled


def test_configure_tracing_installs_nothing_when_unset() -> None:
    assert tracing.configure_tracing("test", env={}) is False
    # The API's default: spans are not recorded, nothing is exported.
    with tracing.tracer().start_as_current_span("x") as span:
        assert not span.is_recording()


def test_context_propagates_with_tracing_off() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with tracing.consume_span("process", {"traceparent": parent}):
        assert tracing.current_trace_id() == "0af7651916cd43dd8448eb211c80319c"
        assert tracing.trace_id_of(tracing.current_traceparent()) == (
            "0af7651916cd43dd8448eb211c80319c"
        )
    # A hop that continues no message continues the run's stored traceparent.
    with tracing.run_span("carry-out", parent):
        assert tracing.current_trace_id() == "0af7651916cd43dd8448eb211c80319c"
    assert tracing.current_trace_id() is None


def test_ensure_trace_starts_one_when_there_is_none() -> None:
    with tracing.ensure_trace():
        first = tracing.current_trace_id()
        assert first is not None
        assert len(first) == 32
        with tracing.ensure_trace():
            assert tracing.current_trace_id() == first
    assert not trace.get_current_span().get_span_context().is_valid


def test_a_record_without_context_starts_a_trace_of_its_own() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with tracing.run_span("x", parent), tracing.consume_span("process", {}):
        assert tracing.current_trace_id() != "0af7651916cd43dd8448eb211c80319c"
    assert tracing.trace_id_of("garbage") is None


class _Recording:
    """A FastStream-like broker that keeps what its publishers send."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []

    def publisher(self, topic: str, **_: object) -> _Recording:
        return self

    async def publish(self, value: bytes, *, key: bytes, headers: dict[str, str]) -> None:
        self.headers.append(headers)


async def test_events_carry_the_cloudevents_distributed_tracing_extension() -> None:
    broker = _Recording()
    publisher = EventPublisher(broker, source="/t")  # type: ignore[arg-type]
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    event = RunCancelRequested(run_id="run_1", tenant_id="t", requested_at=datetime.now(UTC))
    with tracing.consume_span("process", {"traceparent": parent}):
        await publisher.publish(event)
        current = tracing.current_traceparent()
    (headers,) = broker.headers
    assert headers["ce_traceparent"] == current
    assert tracing.trace_id_of(headers["ce_traceparent"]) == "0af7651916cd43dd8448eb211c80319c"
    # A consumer continues it when a producer set only the extension.
    with tracing.consume_span("process", {"ce_traceparent": parent}):
        assert tracing.current_trace_id() == "0af7651916cd43dd8448eb211c80319c"
