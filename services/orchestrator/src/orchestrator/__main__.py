"""`python -m orchestrator`: runs until SIGTERM/SIGINT, then finishes in-flight events."""

from __future__ import annotations

import asyncio
import logging
import sys

from bus.startup import DependencyUnavailable

from orchestrator.app import create_app
from orchestrator.settings import OrchestratorSettings


def main() -> int:
    settings = OrchestratorSettings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(create_app(settings).run())
    except DependencyUnavailable as exc:
        logging.getLogger("orchestrator").critical("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
