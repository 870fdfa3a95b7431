"""`python -m executor`: runs until SIGTERM/SIGINT, then finishes in-flight events."""

from __future__ import annotations

import sys

from bus.runner import run_service

from executor.app import MissingHandlers, create_app
from executor.settings import ExecutorSettings


def main() -> int:
    return run_service("executor", ExecutorSettings, create_app, refusals=(MissingHandlers,))


if __name__ == "__main__":
    sys.exit(main())
