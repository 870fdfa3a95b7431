"""`python -m notifier`: runs until SIGTERM/SIGINT, then finishes in-flight events."""

from __future__ import annotations

import asyncio
import logging
import sys

from bus.startup import DependencyUnavailable
from pydantic import ValidationError

from notifier.app import create_app
from notifier.settings import NotifierSettings


def main() -> int:
    try:
        settings = NotifierSettings()
    except ValidationError as exc:
        print(f"notifier: invalid settings, refusing to start:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(create_app(settings).run())
    except DependencyUnavailable as exc:
        logging.getLogger("notifier").critical("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
