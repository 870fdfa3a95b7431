"""`python -m orchestrator`: runs until SIGTERM/SIGINT, then finishes in-flight events."""

from __future__ import annotations

import sys

from bus.runner import run_service

from orchestrator.app import create_app
from orchestrator.settings import OrchestratorSettings


def main() -> int:
    return run_service("orchestrator", OrchestratorSettings, create_app)


if __name__ == "__main__":
    sys.exit(main())
