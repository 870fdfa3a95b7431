"""OpenTelemetry traces: one run is one trace, from the HTTP request to the webhook.

`configure_tracing(service)` exports spans over OTLP/HTTP when the standard variables ask for
it (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, and not
`OTEL_SDK_DISABLED=true`); otherwise nothing is exported, but context still propagates: the
API's no-op spans carry the trace they continue, so `traceparent` headers and logs' `traceId`
are those of the run either way.

Propagation is the library's (the global W3C propagator): FastStream's
`KafkaTelemetryMiddleware` injects the current context into every record published, a
consumer continues each record's context with `consume_span(headers)`, and a run's own
`traceparent` (kept on its record) is continued with `run_span(traceparent)` where a hop is
not a direct continuation (timers, sweeper nudges, child runs, outbox carry-outs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind

TRACER_NAME = "workflow"
TRACEPARENT = "traceparent"

_configured = False


def tracing_enabled(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure_tracing(service_name: str, env: Mapping[str, str] | None = None) -> bool:
    """Install a TracerProvider exporting over OTLP/HTTP when the `OTEL_*` variables ask for
    it; returns whether it did. The exporter reads its endpoint, headers and timeouts, the
    batch processor its delays, from the standard variables."""
    global _configured
    if _configured or not tracing_enabled(env):
        return _configured
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: service_name})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _instrument_clients()
    _configured = True
    return True


def _instrument_clients() -> None:
    """Spans for every MongoDB command (PyMongo's command monitoring, which its async client
    shares) and every S3 request (the minio SDK speaks through urllib3). Registered before
    the services create their clients; only when exporting, since every command pays for
    its span."""
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

    PymongoInstrumentor().instrument()
    URLLib3Instrumentor().instrument()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span (None outside any trace)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT)


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return trace.format_trace_id(ctx.trace_id) if ctx.is_valid else None


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id a `traceparent` names (parsed by the W3C propagator), or None."""
    if not traceparent:
        return None
    ctx = trace.get_current_span(propagate.extract({TRACEPARENT: traceparent})).get_span_context()
    return trace.format_trace_id(ctx.trace_id) if ctx.is_valid else None


CE_EXTENSION = ("traceparent", "tracestate")
"""CloudEvents' distributed-tracing extension: the same context as event attributes, which
Kafka's binary mode carries as the `ce_traceparent` and `ce_tracestate` headers."""


def cloudevents_extension() -> dict[str, str]:
    """The current trace context as CloudEvents distributed-tracing extension attributes
    (empty outside any trace)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {k: v for k, v in carrier.items() if k in CE_EXTENSION}


@contextmanager
def consume_span(name: str, headers: Mapping[str, str], **attributes: str) -> Iterator[Span]:
    """A consumer span continuing the context a record's headers carry (the W3C headers, else
    the CloudEvents extension's, for producers that set only that): the work on a record
    handed to KeyedWorkers happens after FastStream's own consume span has ended."""
    if TRACEPARENT not in headers and f"ce_{TRACEPARENT}" in headers:
        headers = {k: headers[f"ce_{k}"] for k in CE_EXTENSION if f"ce_{k}" in headers}
    parent = propagate.extract(headers, context=otel_context.Context())
    with tracer().start_as_current_span(
        name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span


@contextmanager
def run_span(name: str, traceparent: str | None, **attributes: str) -> Iterator[Span]:
    """A span in the run's trace: under the current span when it is already that trace's,
    else under the run's stored `traceparent` (a timer, a nudge, a carry-out after a
    restart), else under the current context."""
    run_trace = trace_id_of(traceparent)
    parent = None
    if run_trace is not None and run_trace != current_trace_id():
        parent = propagate.extract({TRACEPARENT: traceparent or ""})
    with tracer().start_as_current_span(name, context=parent, attributes=attributes) as span:
        yield span


@contextmanager
def ensure_trace() -> Iterator[None]:
    """Inside a trace: the current one, or (tracing off and no incoming `traceparent`) a new
    trace id carried by a non-recording span, so a run still has one trace id to propagate
    and to log."""
    if trace.get_current_span().get_span_context().is_valid:
        yield
        return
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    ids = RandomIdGenerator()
    span = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=ids.generate_trace_id(),
            span_id=ids.generate_span_id(),
            is_remote=False,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
    )
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        otel_context.detach(token)
