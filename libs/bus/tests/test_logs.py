"""The services' logging: JSON lines, context bound per event, secrets never written."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from bus import logs, tracing
from contracts.events import StepRequested
from pydantic import SecretStr
from pydantic_settings import BaseSettings

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The logging setup of a service, writing to a buffer; the root logger put back after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buf = io.StringIO()
    logs.configure("testsvc", secrets=["literal-admin-secret-123"], stream=buf)
    yield buf
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_every_line_is_one_json_object_with_time_level_logger_and_message(
    captured: io.StringIO,
) -> None:
    logging.getLogger("orchestrator").info("run %s started", "run_1")
    logging.getLogger("orchestrator").warning("two\nlines")
    first, second = lines(captured)
    assert first["message"] == "run run_1 started"
    assert first["level"] == "INFO"
    assert first["logger"] == "orchestrator"
    assert first["time"].startswith("20")
    assert first["service"] == "testsvc"
    assert second["message"] == "two\nlines"  # still one line in the file
    assert len(captured.getvalue().splitlines()) == 2


def test_an_exception_is_a_field_of_its_line(captured: io.StringIO) -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        logging.getLogger("x").exception("failed")
    (line,) = lines(captured)
    assert "ValueError: broken" in line["exception"]


def test_an_events_run_tenant_node_and_trace_are_on_every_line_inside_its_scope(
    captured: io.StringIO,
) -> None:
    step = StepRequested.model_validate(
        {
            "runId": "run_7",
            "tenantId": "t1",
            "nodeId": "render",
            "nodeType": "image.generate",
            "attempt": 1,
            "params": {},
        }
    )
    with logs.scope(), tracing.consume_span("process", {"traceparent": TRACEPARENT}):
        logs.bind_event(step)
        logging.getLogger("executor").info("inside")
    logging.getLogger("executor").info("after")
    inside, after = lines(captured)
    assert inside["runId"] == "run_7"
    assert inside["tenantId"] == "t1"
    assert inside["nodeId"] == "render"
    assert inside["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert not {"runId", "tenantId", "nodeId", "traceId"} & set(after)


def test_tasks_started_inside_a_scope_keep_its_context_and_do_not_share_theirs(
    captured: io.StringIO,
) -> None:
    async def one(run_id: str) -> None:
        logs.bind(runId=run_id)
        await asyncio.sleep(0)
        logging.getLogger("notifier").info("attempt")

    async def main() -> None:
        with logs.scope(tenantId="t9"):
            await asyncio.gather(one("run_a"), one("run_b"))

    asyncio.run(main())
    got = sorted((line["runId"], line["tenantId"]) for line in lines(captured))
    assert got == [("run_a", "t9"), ("run_b", "t9")]


def test_a_lines_own_fields_are_written_and_name_its_node_over_the_bound_one(
    captured: io.StringIO,
) -> None:
    with logs.scope(runId="run_1", nodeId="a"):
        logging.getLogger("orchestrator").info(
            "step b done", extra={"nodeId": "b", "durationMs": 12, "event": "step.succeeded"}
        )
    (line,) = lines(captured)
    assert line["nodeId"] == "b"
    assert line["durationMs"] == 12
    assert line["runId"] == "run_1"
    assert line["event"] == "step.succeeded"


def test_a_line_can_say_it_is_not_about_the_bound_node(captured: io.StringIO) -> None:
    with logs.scope(runId="run_1", nodeId="last"):
        logging.getLogger("orchestrator").info("run completed", extra={"nodeId": None})
    (line,) = lines(captured)
    assert "nodeId" not in line
    assert line["runId"] == "run_1"


SECRETS = {
    "an API key": "wfk_q8Xz2mN4pL7rT1vB9cD3eF6gH0jK5sW",
    "an admin key": "wfadmin_Yh7tR2kP9mN4bV6cX1zQ8wE3rT5yU0iO",
    "a webhook signing secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZoo3tQ4XJc",
    "a configured secret": "literal-admin-secret-123",
    "a presigned signature": "3f9c2a7be1d04c6a8e5f7b9d2c4a6e8f0b1d3c5a7e9f",
    "a presigned credential": "devstack-access-key%2F20261129%2Fus-east-1",
    "a bearer token": "opaque.metrics.token-777",
    "a basic password": "dXNlcjpodW50ZXIy",
    "a query-string token": "tok3n-in-the-query",
    "a URL password": "hunter2pw",
}


# Each secret where it shows up in practice: a bare credential, a header, a URL.
LEAKS = [
    f"key {SECRETS['an API key']} was used",
    f"admin {SECRETS['an admin key']} and signing with {SECRETS['a webhook signing secret']}",
    f"settings loaded: {SECRETS['a configured secret']}",
    "GET http://127.0.0.1:38333/workflow-outputs/runs/a.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    f"&X-Amz-Credential={SECRETS['a presigned credential']}&X-Amz-Date=20261129T1"
    f"&X-Amz-Signature={SECRETS['a presigned signature']}",
    f"X-Amz-Signature={SECRETS['a presigned signature']} in a message, not a URL",
    f"headers {{'Authorization': 'Bearer {SECRETS['a bearer token']}', 'Accept': '*/*'}}",
    f"authorization={SECRETS['a bearer token']}",
    f"Authorization: Basic {SECRETS['a basic password']}",
    f"delivering to https://hooks.example.com/in?token={SECRETS['a query-string token']}&x=1",
    f"connecting to mongodb://app:{SECRETS['a URL password']}@db:27017/workflow",
]


@pytest.mark.parametrize("leak", LEAKS)
def test_no_secret_reaches_a_log_line(captured: io.StringIO, leak: str) -> None:
    logging.getLogger("any").warning(leak)  # in the message
    logging.getLogger("any").info("sending %s", leak)  # in an argument
    try:
        raise RuntimeError(leak)
    except RuntimeError:
        logging.getLogger("any").exception("failed")  # in a traceback
    written = captured.getvalue()
    assert len(lines(captured)) == 3
    for what, secret in SECRETS.items():
        assert secret not in written, f"{what} was written: {written}"
    assert "[redacted]" in written


def test_what_redaction_keeps_is_still_useful() -> None:
    assert logs.redact("key wfk_abc123def456 refused") == "key wfk_[redacted] refused"
    assert (
        logs.redact("POST https://hooks.example.com/in?token=x -> 500")
        == "POST https://hooks.example.com/in?[redacted] -> 500"
    )
    assert logs.redact("run run_01 step render done in 0.5 s") == (
        "run run_01 step render done in 0.5 s"
    )


def test_library_chatter_is_kept_at_warning(captured: io.StringIO) -> None:
    logging.getLogger("aiokafka.consumer.group_coordinator").info("Joined group")
    logging.getLogger("testsvc.kafka").warning("Auto create topics is disabled. Make sure…")
    logging.getLogger("pymongo.topology").info("heartbeat")
    logging.getLogger("httpx").info("HTTP Request: POST")
    logging.getLogger("aiokafka.conn").warning("connection lost")
    logging.getLogger("faststream").info("FastStream app started successfully!")
    messages = [line["message"] for line in lines(captured)]
    assert messages == ["connection lost", "FastStream app started successfully!"]


def test_the_secrets_of_a_settings_object_are_its_secret_fields() -> None:
    class S(BaseSettings):
        admin_api_key: SecretStr | None = SecretStr("adm-xyz-123456")
        plain: str = "not secret"

    assert logs.secrets_of(S()) == ["adm-xyz-123456"]


def test_the_text_format_shows_the_same_line_for_a_person() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buf = io.StringIO()
    try:
        logs.configure("testsvc", fmt="text", stream=buf)
        with logs.scope(runId="run_5"):
            logging.getLogger("orchestrator").info("run completed in 1.20 s with wfk_secret12345")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    text = buf.getvalue()
    assert "INFO    orchestrator: run completed in 1.20 s with wfk_[redacted]" in text
    assert text.rstrip().endswith("runId=run_5")
