from typing import Any

import pytest


@pytest.fixture
def studio_portrait() -> dict[str, Any]:
    """The example definition of DESIGN.md §4, as the canvas exports it."""
    return {
        "name": "Studio portrait",
        "inputSchema": {
            "type": "object",
            "required": ["prompt"],
            "properties": {
                "prompt": {"type": "string", "maxLength": 2000},
                "assets": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
                "options": {
                    "type": "object",
                    "properties": {"quality": {"enum": ["draft", "high"]}},
                },
            },
        },
        "nodes": [
            {
                "id": "render",
                "type": "image.generate",
                "params": {"prompt": "{{ inputs.prompt }}", "width": 768, "height": 768},
            },
            {
                "id": "warm",
                "type": "image.adjust",
                "params": {"image": "{{ nodes.render.image }}", "temperature": 0.3},
            },
            {
                "id": "square",
                "type": "image.resize",
                "params": {
                    "image": "{{ nodes.warm.image }}",
                    "width": 512,
                    "height": 512,
                    "fit": "cover",
                },
            },
            {
                "id": "story",
                "type": "image.resize",
                "params": {
                    "image": "{{ nodes.warm.image }}",
                    "width": 540,
                    "height": 960,
                    "fit": "cover",
                },
            },
        ],
        "outputs": {"square": "{{ nodes.square.image }}", "story": "{{ nodes.story.image }}"},
    }
