"""The README's ready-to-run provider workflows register as they are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from workflow.validation import parse_definition

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.mark.parametrize("name", ["openai", "replicate", "fal", "comfyui"])
def test_each_provider_example_is_a_valid_workflow_naming_its_provider(name: str) -> None:
    raw = json.loads((EXAMPLES / "providers" / f"{name}.json").read_text())
    defn, problems = parse_definition(raw)
    assert problems == []
    assert defn is not None
    generate = next(n for n in defn.nodes if n.type == "image.generate")
    assert generate.params["provider"] == name
    assert generate.retry is not None


def test_the_comfyui_example_carries_the_committed_graph() -> None:
    workflow = json.loads((EXAMPLES / "providers" / "comfyui.json").read_text())
    graph = json.loads((EXAMPLES / "comfyui" / "txt2img.api.json").read_text())
    assert workflow["nodes"][0]["params"]["graph"] == graph
