from typing import Any

import pytest
from pydantic import ValidationError
from workflow.catalog import CATALOG, NodeKind, OutputKind, get_node_type
from workflow.validation import parse_definition

IMAGE = "s3://brand-kit/model.png"


def valid(name: str, **params: Any) -> Any:
    node_type = get_node_type(name)
    assert node_type is not None
    return node_type.params_model.model_validate(params)


EXECUTABLE = {
    "image.generate",
    "image.adjust",
    "image.resize",
    "image.crop",
    "image.text",
    "image.composite",
    "image.convert",
    "text.template",
}


def test_catalog_holds_the_executable_and_control_types() -> None:
    assert set(CATALOG) == {*EXECUTABLE, "http.request", "wait", "workflow.run", "map"}
    executable = {name for name, t in CATALOG.items() if t.kind is NodeKind.EXECUTABLE}
    assert executable == {*EXECUTABLE, "http.request"}


def test_http_request_outputs_status_body_and_headers_and_refuses_other_schemes() -> None:
    assert set(CATALOG["http.request"].outputs) == {"status", "body", "headers"}
    params = valid("http.request", url="https://example.com/hook")
    assert params.model_dump(by_alias=True)["method"] == "GET"
    with pytest.raises(ValidationError):
        valid("http.request", url="file:///etc/passwd")


def test_image_nodes_output_an_image_and_template_outputs_text() -> None:
    for name in EXECUTABLE:
        node_type = CATALOG[name]
        expected = (
            {"text": OutputKind.TEXT} if name == "text.template" else {"image": OutputKind.IMAGE}
        )
        if name == "image.generate":
            # A generation may make several images, and says who made them.
            expected |= {"images": OutputKind.JSON, "provider": OutputKind.JSON}
        assert dict(node_type.outputs) == expected


def test_unknown_type_is_none() -> None:
    assert get_node_type("http.nope") is None


def test_generate_defaults() -> None:
    params = valid("image.generate", prompt="a cat")

    assert (params.width, params.height, params.quality, params.seed) == (1024, 1024, "high", None)


def test_params_take_camel_case_names() -> None:
    params = valid("image.generate", prompt="a cat", negativePrompt="dogs")

    assert params.negative_prompt == "dogs"
    assert params.model_dump(by_alias=True)["negativePrompt"] == "dogs"


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("image.generate", {"prompt": ""}),
        ("image.generate", {"prompt": "x" * 4001}),
        ("image.generate", {"prompt": "a", "width": 63}),
        ("image.generate", {"prompt": "a", "height": 4097}),
        ("image.generate", {"prompt": "a", "quality": "ultra"}),
        ("image.generate", {"prompt": "a", "steps": 20}),
        ("image.adjust", {"image": IMAGE, "brightness": 4.5}),
        ("image.adjust", {"image": IMAGE, "temperature": -1.5}),
        ("image.adjust", {"image": "https://example.com/a.png"}),
        ("image.adjust", {"image": "s3://Bucket/a.png"}),
        ("image.adjust", {"image": "s3://bucket/"}),
        ("image.resize", {"image": IMAGE, "width": 0, "height": 10}),
        ("image.resize", {"image": IMAGE, "width": 10, "height": 8193}),
        ("image.resize", {"image": IMAGE, "width": 10, "height": 10, "fit": "stretch"}),
        ("image.resize", {"image": IMAGE, "width": 10, "height": 10, "background": "black"}),
        ("image.crop", {"image": IMAGE, "x": -1, "y": 0, "width": 1, "height": 1}),
        ("image.crop", {"image": IMAGE, "x": 0, "y": 0, "width": 0, "height": 1}),
        ("image.text", {"image": IMAGE, "text": ""}),
        ("image.text", {"image": IMAGE, "text": "hi", "size": 3}),
        ("image.text", {"image": IMAGE, "text": "hi", "color": "#fff"}),
        ("image.composite", {"image": IMAGE, "overlay": IMAGE, "opacity": 1.1}),
        ("image.composite", {"image": IMAGE}),
        ("image.convert", {"image": IMAGE, "format": "gif"}),
        ("image.convert", {"image": IMAGE, "format": "png", "quality": 0}),
        ("text.template", {"template": "x" * 100_001}),
        ("text.template", {}),
    ],
)
def test_params_outside_their_bounds_are_rejected(name: str, params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        valid(name, **params)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("image.adjust", {"image": IMAGE}),
        ("image.resize", {"image": IMAGE, "width": 8192, "height": 1, "background": "#A0b1C2"}),
        ("image.crop", {"image": IMAGE, "x": 0, "y": 0, "width": 1, "height": 1}),
        ("image.text", {"image": IMAGE, "text": "Sale", "x": -5}),
        ("image.composite", {"image": IMAGE, "overlay": "s3://b.c-d/logo.png", "opacity": 0}),
        ("image.convert", {"image": IMAGE, "format": "webp"}),
        ("text.template", {"template": ""}),
    ],
)
def test_params_within_bounds_are_accepted(name: str, params: dict[str, Any]) -> None:
    valid(name, **params)


def test_params_models_describe_their_fields() -> None:
    node_type = get_node_type("image.adjust")
    assert node_type is not None

    schema = node_type.params_model.model_json_schema(by_alias=True)

    assert "warmer" in schema["properties"]["temperature"]["description"]


def test_an_unknown_image_provider_is_refused_at_registration() -> None:
    defn = {
        "name": "unknown provider",
        "nodes": [
            {"id": "r", "type": "image.generate", "params": {"prompt": "x", "provider": "dalle"}}
        ],
        "outputs": {"image": "{{ nodes.r.image }}"},
    }
    _, problems = parse_definition(defn)
    assert [p.path for p in problems] == ["/nodes/0/params/provider"]
    assert "openai" in problems[0].message


def test_an_image_provider_must_be_written_out_literally() -> None:
    defn = {
        "name": "templated provider",
        "inputSchema": {"type": "object", "properties": {"p": {"type": "string"}}},
        "nodes": [
            {
                "id": "r",
                "type": "image.generate",
                "params": {"prompt": "x", "provider": "{{ inputs.p }}"},
            }
        ],
        "outputs": {"image": "{{ nodes.r.image }}"},
    }
    _, problems = parse_definition(defn)
    assert any("literally" in p.message for p in problems)


def test_a_comfyui_node_needs_a_graph_and_only_comfyui_takes_one() -> None:
    with pytest.raises(ValidationError, match="graph"):
        valid("image.generate", prompt="x", provider="comfyui")
    with pytest.raises(ValidationError, match="for provider comfyui"):
        valid("image.generate", prompt="x", provider="openai", graph={"1": {}})
    assert valid("image.generate", prompt="x", provider="comfyui", graph={"1": {}})
