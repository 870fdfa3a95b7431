"""`python -m notifier`: runs until SIGTERM/SIGINT, then finishes in-flight events."""

from __future__ import annotations

import sys

from bus.runner import run_service

from notifier.app import create_app
from notifier.settings import NotifierSettings


def main() -> int:
    return run_service("notifier", NotifierSettings, create_app)


if __name__ == "__main__":
    sys.exit(main())
