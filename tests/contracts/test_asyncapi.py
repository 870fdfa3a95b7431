"""The committed AsyncAPI document (contracts/asyncapi.json) is FastStream's description of the
publishers every service publishes through; it may not drift from the event models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from bus import asyncapi, publisher
from bus.asyncapi import ASYNCAPI_FILE, document
from bus.routing import TOPIC_OF
from bus.topics import Topic
from contracts.events import EVENT_MODELS, RunCompleted
from executor import app as executor_app
from executor.settings import ExecutorSettings
from faststream.specification import AsyncAPI
from notifier import app as notifier_app
from notifier.settings import NotifierSettings
from orchestrator import app as orchestrator_app
from orchestrator.settings import OrchestratorSettings
from pydantic import Field

from contracts.schemas import render


def test_the_committed_asyncapi_document_matches_the_publishers() -> None:
    assert ASYNCAPI_FILE.read_text() == render(document()), "run `make schemas` and commit"


def test_it_is_asyncapi_3_with_a_channel_and_a_send_operation_for_every_topic() -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    assert {c["address"] for c in doc["channels"].values()} == {t.value for t in Topic}
    sends = {op["channel"]["$ref"] for op in doc["operations"].values() if op["action"] == "send"}
    assert sends == {f"#/channels/{t.value}" for t in Topic}


def _payload_refs(doc: dict[str, Any], topic: Topic) -> list[str]:
    """The schemas a topic's message may be: one model, or a union of several."""
    ref = doc["components"]["messages"][f"{topic.value}:Message"]["payload"]["$ref"]
    payload = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return [r["$ref"] for r in payload["anyOf"]] if "anyOf" in payload else [ref]


def test_every_event_type_is_a_schema_of_the_topic_that_carries_it_naming_its_ce_type() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    for model in EVENT_MODELS:
        assert schemas[model.__name__]["x-cloudevents-type"] == model.event_type
        refs = _payload_refs(doc, TOPIC_OF[model])
        assert f"#/components/schemas/{model.__name__}" in refs, model.__name__
    run_events = _payload_refs(doc, Topic.RUN_EVENTS)
    assert [r.rsplit("/", 1)[1] for r in run_events] == [
        "RunStarted",
        "RunCompleted",
        "RunFailed",
        "RunCanceled",
    ]


def test_a_changed_event_model_without_a_new_document_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class ChangedRunCompleted(RunCompleted):
        cost_cents: int = Field(default=0, description="a field added without `make schemas`")

    ChangedRunCompleted.__name__ = "RunCompleted"
    changed = {
        (ChangedRunCompleted if model is RunCompleted else model): topic
        for model, topic in TOPIC_OF.items()
    }
    monkeypatch.setattr(publisher, "TOPIC_OF", changed)
    stale = render(document())
    assert ASYNCAPI_FILE.read_text() != stale
    assert "costCents" in stale
    assert asyncapi.main(["--check"]) == 1


def test_faststream_docs_gen_produces_the_committed_document(tmp_path: Path) -> None:
    out = tmp_path / "asyncapi.json"
    subprocess.run(
        [
            str(Path(sys.executable).with_name("faststream")),
            "docs",
            "gen",
            "--factory",
            "bus.asyncapi:create_app",
            "--out",
            str(out),
        ],
        check=True,
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    assert json.loads(out.read_text()) == json.loads(ASYNCAPI_FILE.read_text())


def _receives(broker: Any) -> dict[str, set[str]]:
    """Each receive operation's channel address → the schemas its messages may be."""
    doc = json.loads(AsyncAPI(broker, schema_version="3.0.0").to_specification().to_json())
    received: dict[str, set[str]] = {}
    for op in doc["operations"].values():
        if op["action"] != "receive":
            continue
        channel = doc["channels"][unquote(op["channel"]["$ref"].rsplit("/", 1)[1])]
        for message in channel["messages"].values():
            name = unquote(message["$ref"].rsplit("/", 1)[1])
            payload = doc["components"]["messages"][name]["payload"]
            refs = [r["$ref"] for r in payload.get("oneOf", [payload])]
            received.setdefault(channel["address"], set()).update(r.rsplit("/", 1)[1] for r in refs)
    return received


def test_each_worker_subscribes_with_one_typed_handler_per_event_it_handles() -> None:
    # The last handler of each subscriber takes what no typed one did (EmptyPayload): types
    # a service ignores, and records that fail to decode (parked on the dead-letter topic).
    orchestrator = orchestrator_app.create_app(OrchestratorSettings())
    handled = {m.__name__ for m in orchestrator_app.HANDLED} | {"EmptyPayload"}
    assert _receives(orchestrator.broker) == {
        t.value: handled
        for t in (Topic.RUN_REQUESTED, Topic.STEP_FINISHED, Topic.RUN_CANCEL, Topic.RUN_TIMERS)
    }
    executor = executor_app.create_app(ExecutorSettings())
    assert _receives(executor.broker) == {
        Topic.STEP_REQUESTED.value: {"StepRequested", "EmptyPayload"},
        Topic.RUN_CANCEL.value: {"RunCancelRequested", "EmptyPayload"},
    }
    notifier = notifier_app.create_app(NotifierSettings())
    assert _receives(notifier.broker) == {
        Topic.RUN_EVENTS.value: {m.__name__ for m in notifier_app.RUN_EVENTS} | {"EmptyPayload"}
    }
