"""`python -m ingress`: serves the HTTP API; SIGTERM lets in-flight requests finish."""

from __future__ import annotations

import sys

import uvicorn
from bus import logs, tracing
from bus.logs import LogSettings

from ingress.app import create_app
from ingress.settings import IngressSettings


def main() -> int:
    settings = IngressSettings()
    # JSON lines with the request's tenant and run, secrets redacted (bus.logs); uvicorn's
    # own loggers propagate to the same handler (`log_config=None`).
    logs.configure(
        "ingress",
        level=settings.log_level.upper(),
        fmt=LogSettings().log_format,
        secrets=logs.secrets_of(settings),
    )
    # Spans exported over OTLP when the `OTEL_*` variables say where (bus.tracing).
    tracing.configure_tracing("ingress")
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.ingress_host,
            port=settings.ingress_port,
            log_config=None,
            timeout_graceful_shutdown=int(settings.max_wait_seconds) + 5,
            lifespan="on",
            loop="uvloop",
            http="httptools",
            access_log=settings.access_log,
        )
    )
    server.run()
    # uvicorn exits quietly when the lifespan fails (a dependency unreachable): say so.
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
