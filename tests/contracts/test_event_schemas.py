from __future__ import annotations

import copy
import json
from pathlib import Path

from contracts.compat import breaking_changes
from contracts.events import EVENT_MODELS

from contracts.schemas import SCHEMA_DIR, check, event_schemas, render


def test_every_event_model_matches_its_committed_schema() -> None:
    assert check() == [], "run `make schemas` and commit the result"


def test_every_event_type_has_a_committed_schema_file() -> None:
    committed = {p.name for p in SCHEMA_DIR.glob("*.json")}
    assert committed == {f"{m.event_type}.json" for m in EVENT_MODELS}


def test_a_changed_model_is_reported_against_the_committed_file(tmp_path: Path) -> None:
    for name, schema in event_schemas().items():
        (tmp_path / name).write_text(render(schema))
    name = "com.sprello.workflow.run.completed.v1.json"
    edited = json.loads((tmp_path / name).read_text())
    edited["properties"]["legacyField"] = {"type": "string"}
    (tmp_path / name).write_text(render(edited))
    problems = check(tmp_path)
    assert len(problems) == 1
    assert "legacyField removed" in problems[0]


BASE = {
    "type": "object",
    "required": ["runId"],
    "properties": {"runId": {"type": "string"}, "note": {"type": "string"}},
}


def test_a_new_optional_field_is_not_breaking() -> None:
    new = copy.deepcopy(BASE)
    new["properties"]["extra"] = {"type": "integer"}
    assert breaking_changes(BASE, new) == []


def test_a_removed_field_is_breaking() -> None:
    new = copy.deepcopy(BASE)
    del new["properties"]["note"]
    assert breaking_changes(BASE, new) == ["/note removed"]


def test_a_retyped_field_is_breaking() -> None:
    new = copy.deepcopy(BASE)
    new["properties"]["note"] = {"type": "integer"}
    assert breaking_changes(BASE, new) == ["/note retyped from ['string'] to ['integer']"]


def test_a_newly_required_field_is_breaking() -> None:
    new = copy.deepcopy(BASE)
    new["required"] = ["runId", "note"]
    assert breaking_changes(BASE, new) == ["/note became required"]


def test_widening_a_type_to_accept_null_is_not_breaking() -> None:
    new = copy.deepcopy(BASE)
    new["properties"]["note"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert breaking_changes(BASE, new) == []
