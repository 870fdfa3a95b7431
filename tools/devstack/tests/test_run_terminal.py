"""What `make run` prints of the services' JSON lines: run events and warnings, as text."""

from __future__ import annotations

import json

from devstack import apps
from devstack.apps import terminal_line


def _line(**fields: object) -> str:
    base: dict[str, object] = {"time": "2026-11-29T20:27:17.752+00:00", "level": "INFO"}
    return json.dumps({**base, **fields}) + "\n"


def test_a_run_event_is_one_readable_line_with_its_run() -> None:
    raw = _line(
        logger="orchestrator",
        message="run completed in 0.03 s",
        runId="run_1",
        tenantId="dev",
        event="run.completed",
        durationMs=34,
    )
    assert terminal_line("orchestrator", raw) == (
        "20:27:17.752 run completed in 0.03 s  (runId=run_1 tenantId=dev)"
    )


def test_library_and_startup_chatter_is_left_to_the_log_file() -> None:
    raw = _line(logger="startup", message="Kafka reachable at 127.0.0.1:39092")
    assert terminal_line("executor", raw) is None
    assert terminal_line("executor", raw, show_all=True) == (
        "20:27:17.752 startup: Kafka reachable at 127.0.0.1:39092"
    )


def test_warnings_are_shown_with_their_level_and_traceback() -> None:
    raw = _line(
        level="ERROR", logger="bus.consumer", message="handling failed", exception="Trace\nboom"
    )
    assert terminal_line("executor", raw) == (
        "20:27:17.752 ERROR bus.consumer: handling failed\nTrace\nboom"
    )


def test_a_line_that_is_not_json_is_shown_as_it_is() -> None:
    assert terminal_line("ingress", "Traceback (most recent call last):\n") == (
        "Traceback (most recent call last):"
    )
    assert terminal_line("ingress", "\n") is None


def test_the_banner_says_how_to_turn_traces_on_when_they_are_off() -> None:
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=" in apps.traces_line({})
    assert "off" in apps.traces_line(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    )


def test_the_banner_names_where_traces_go_when_they_are_on() -> None:
    line = apps.traces_line({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert "http://collector:4318" in line


def test_the_banner_gives_the_demo_workflows_openapi_url() -> None:
    line = apps.openapi_line("http://127.0.0.1:38000")
    assert "http://127.0.0.1:38000/v1/workflows/studio-portrait/openapi.json" in line


def test_the_banner_gives_the_cli_line_with_the_key_next_to_the_curl_line() -> None:
    line = apps.cli_line("http://127.0.0.1:38000", "wfk_key")
    assert "WORKFLOW_API_URL=http://127.0.0.1:38000 WORKFLOW_API_KEY=wfk_key " in line
    assert "/.venv/bin/workflow run studio-portrait -i prompt=" in line
    assert "--download /tmp/studio-portrait" in line


def test_the_banner_gives_the_console_url() -> None:
    line = apps.console_line("http://127.0.0.1:38000")
    assert "http://127.0.0.1:38000/console " in line
