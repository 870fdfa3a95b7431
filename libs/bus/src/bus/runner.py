"""`python -m <service>` for the FastStream services: settings, logging (`bus.logs`: JSON lines
with the run's context, secrets redacted), run until SIGTERM.

FastStream handles SIGTERM/SIGINT: subscribers stop taking messages and in-flight handlers
finish (the broker's graceful timeout) before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import TypeVar

import uvloop
from faststream import FastStream
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from bus import logs, tracing
from bus.logs import LogSettings
from bus.startup import DependencyUnavailable

S = TypeVar("S", bound=BaseSettings)


def run_service(
    name: str,
    load_settings: Callable[[], S],
    create_app: Callable[[S], FastStream],
    *,
    refusals: tuple[type[Exception], ...] = (),
) -> int:
    """Exit 2 on invalid settings, 1 when a dependency is unreachable or the app refuses to
    start (`refusals`), 0 after a clean stop."""
    try:
        settings = load_settings()
        log_settings = LogSettings()
    except ValidationError as exc:
        print(f"{name}: invalid settings, refusing to start:\n{exc}", file=sys.stderr)
        return 2
    logs.configure(
        name,
        level=str(getattr(settings, "log_level", log_settings.log_level)).upper(),
        fmt=log_settings.log_format,
        secrets=logs.secrets_of(settings),
    )
    # Spans exported over OTLP when the `OTEL_*` variables say where (bus.tracing).
    tracing.configure_tracing(name)
    refused: tuple[type[Exception], ...] = (DependencyUnavailable, *refusals)
    try:
        # uvloop: the same asyncio API with a faster loop and socket layer (every service
        # spends most of its time moving small messages).
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(create_app(settings).run())
    except refused as exc:
        logging.getLogger(name).critical("cannot start: %s", exc)
        return 1
    return 0
