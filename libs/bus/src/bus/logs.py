"""Logging for every service: one JSON object per line, the run's context bound once per
event or request, and secrets redacted before anything is written.

Context (`runId`, `tenantId`, `nodeId`, `traceId`) lives in a context variable: a consumer binds
it when it has decoded an event (`bind_event`), a request handler when it knows the tenant or
the run (`bind`), and every line logged inside, by any logger, carries it without passing it
around. Tasks started inside inherit it (asyncio copies the context), and `scope()` puts back
what was bound before, so one event's fields never leak onto the next one's lines.

`LOG_FORMAT=json` (the default: what devstack, the e2e fixture and a container write) or
`text` (a person reading a terminal). `make run` reads the JSON and prints it as text itself.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from bus.tracing import current_trace_id

CONTEXT_FIELDS = ("runId", "tenantId", "nodeId", "traceId")
"""The fields bound as context, in the order a text line shows them."""

_context: ContextVar[Mapping[str, str]] = ContextVar("log_context", default={})  # noqa: B039
# (a mutable default is safe: the mapping is never changed in place, only replaced)

QUIET_LIBRARIES = (
    "aiokafka",
    "faststream.access",
    "pymongo",
    "httpx",
    "httpcore",
    "urllib3",
    "minio",
    "botocore",
    "aiobotocore",
    "asyncio",
)
"""Libraries whose INFO lines are chatter (a consumer group's coordination, every connection):
their warnings and errors are kept. FastStream's own start/stop lines (logger `faststream`)
stay at INFO: four lines per process, and devstack waits for "started successfully"."""


class LogSettings(BaseSettings):
    """`LOG_FORMAT` and `LOG_LEVEL`, read by every service the same way."""

    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"


# --- context -------------------------------------------------------------------------------


def bind(**fields: object) -> None:
    """Add fields to the current context (None values are skipped, others are made str)."""
    new = {k: str(v) for k, v in fields.items() if v is not None and v != ""}
    if new:
        _context.set({**_context.get(), **new})


def context() -> Mapping[str, str]:
    return _context.get()


@contextmanager
def scope(**fields: object) -> Iterator[None]:
    """Fields bound inside (and `fields`) are gone again on exit."""
    token = _context.set(_context.get())
    try:
        bind(**fields)
        yield
    finally:
        _context.reset(token)


def bind_event(data: object) -> None:
    """Bind what an event says about itself: its run, tenant and node, and the trace of the
    current span (the one continuing the record's context)."""
    bind(
        runId=getattr(data, "run_id", None),
        tenantId=getattr(data, "tenant_id", None),
        nodeId=getattr(data, "node_id", None),
        traceId=current_trace_id(),
    )


# --- redaction -----------------------------------------------------------------------------

REDACTED = "[redacted]"
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # Our own credentials: API keys, admin keys, webhook signing secrets.
    (re.compile(r"\b(wfk|wfadmin|whsec)_[A-Za-z0-9_\-+/=.~]+"), rf"\1_{REDACTED}"),
    # Authorization values, however they are quoted (a header dict, a curl line, a message).
    (
        re.compile(r"(?i)\b(authorization['\"]?\s*[:=]\s*['\"]?)(?:(bearer|basic)\s+)?[^\s'\",}]+"),
        rf"\1\2 {REDACTED}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9_\-+/=.~]{8,}"), rf"\1 {REDACTED}"),
    # Presigned URLs' signature and credential, wherever they appear.
    (
        re.compile(r"(?i)\b(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s'\"]+"),
        rf"\1{REDACTED}",
    ),
    # A URL's user and password (mongodb://user:pass@host).
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s:@'\"]+:[^/\s@'\"]+@"), rf"\1{REDACTED}@"),
    # A URL's query string: webhook and provider URLs may carry tokens there.
    (re.compile(r"(\bhttps?://[^\s?#'\"<>]+)\?[^\s#'\"<>]*"), rf"\1?{REDACTED}"),
)


def redact(text: str, literals: Iterable[str] = ()) -> str:
    """`text` without credentials: the patterns above and every exact `literals` value."""
    for literal in literals:
        if literal:
            text = text.replace(literal, REDACTED)
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    # The Authorization rule above leaves "authorization: [redacted]" with a doubled space
    # when there was no scheme; tidy it so lines stay greppable.
    return text.replace(f"  {REDACTED}", f" {REDACTED}")


class RedactingFilter(logging.Filter):
    """On the handler: every record's message and traceback are redacted before a formatter
    sees them, whichever logger (ours or a library's) made the record."""

    def __init__(self, literals: Iterable[str] = ()) -> None:
        super().__init__()
        # Short values would blank ordinary words; our secrets are long random strings.
        self.literals = tuple(s for s in literals if len(s) >= 8)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: show it rather than lose the line
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact(message, self.literals)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.literals)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.literals)
        return True


def secrets_of(settings: object) -> list[str]:
    """Every `SecretStr` value of a settings object: redacted by value wherever it shows."""
    found: list[str] = []
    for name in type(settings).model_fields if isinstance(settings, BaseSettings) else ():
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
    return found


# --- formatters ----------------------------------------------------------------------------

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    """`log.info(..., extra={"nodeId": "a", "durationMs": 12})`: fields of this one line, more
    specific than the bound context (a run's lines name each of its steps)."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _RESERVED and not key.startswith("_") and value is not None
    }


def _bound_and_extra(record: logging.LogRecord) -> dict[str, Any]:
    """The bound context, then the line's own fields; `extra={"nodeId": None}` says this line
    is not about the bound node (a run's own line, decided on a step's event)."""
    fields = {**_context.get(), **_extra(record)}
    for key in CONTEXT_FIELDS:
        if key in record.__dict__ and record.__dict__[key] is None:
            fields.pop(key, None)
    return fields


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", <context>, <extra>, "exception"?}` on one line."""

    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.service:
            line["service"] = self.service
        line.update(_bound_and_extra(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


def text_line(fields: Mapping[str, Any]) -> str:
    """A person's line from a JSON log object: `12:00:01.234 INFO  logger: message  runId=…`."""
    clock = str(fields.get("time", ""))[11:23]
    level = str(fields.get("level", ""))
    head = f"{clock} {level:<7} {fields.get('logger', '')}: {fields.get('message', '')}"
    tail = " ".join(f"{k}={fields[k]}" for k in CONTEXT_FIELDS if fields.get(k))
    text = f"{head}  {tail}" if tail else head
    if fields.get("exception"):
        text += "\n" + str(fields["exception"])
    return text


class TextFormatter(logging.Formatter):
    """The JSON line's content as a person reads it (LOG_FORMAT=text)."""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        return text_line(
            {
                "time": _time(record),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
                "exception": record.exc_text,
                **_bound_and_extra(record),
            }
        )


# --- setup ---------------------------------------------------------------------------------


class _NotAutoCreate(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Auto create topics is disabled")


def configure(
    service: str | None = None,
    *,
    level: str = "INFO",
    fmt: Literal["json", "text"] = "json",
    secrets: Iterable[str] = (),
    stream: Any = None,
) -> logging.Handler:
    """One handler on the root logger (stdout), the redaction filter on it, libraries quiet.

    Called once by `python -m <service>` before anything logs; returns the handler (tests)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.addFilter(RedactingFilter(secrets))
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # FastStream gives its logger a coloured stderr handler of its own and stops propagation:
    # its lines would bypass the format and the redaction.
    faststream = logging.getLogger("faststream")
    for old in list(faststream.handlers):
        faststream.removeHandler(old)
    faststream.propagate = True
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    if service:
        # The broker's own logger (bus.broker: `<client_id>.kafka`) keeps its level: one line
        # per partition assignment, and each message's Received/Processed at DEBUG (the bench
        # reads them). Its warning that topics are not auto-created says what we chose
        # (devstack or the deployment makes them), once per subscriber: dropped.
        broker = logging.getLogger(f"{service}.kafka")
        if not any(isinstance(f, _NotAutoCreate) for f in broker.filters):
            broker.addFilter(_NotAutoCreate())
    return handler
