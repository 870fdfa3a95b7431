"""`python -m executor`: runs until SIGTERM/SIGINT, then finishes in-flight events."""

from __future__ import annotations

import asyncio
import logging
import sys

from bus.startup import DependencyUnavailable

from executor.app import MissingHandlers, create_app
from executor.settings import ExecutorSettings


def main() -> int:
    settings = ExecutorSettings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(create_app(settings).run())
    except (DependencyUnavailable, MissingHandlers) as exc:
        logging.getLogger("executor").critical("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
