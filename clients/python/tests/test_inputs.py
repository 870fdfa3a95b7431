"""Dotted `-i` assignments of the CLI."""

from __future__ import annotations

import pytest
from workflow_client.inputs import InputError, build_inputs


def test_dotted_paths_build_nested_objects() -> None:
    assert build_inputs(["prompt=Studio portrait", "options.quality=high", "a.b.c=1"]) == {
        "prompt": "Studio portrait",
        "options": {"quality": "high"},
        "a": {"b": {"c": 1}},
    }


def test_values_are_json_when_they_parse_as_json_else_text() -> None:
    got = build_inputs(
        ["n=3", "f=0.5", "yes=true", "none=null", "list=[1, 2]", 'obj={"k": "v"}', 'q="7"']
    )
    assert got == {
        "n": 3,
        "f": 0.5,
        "yes": True,
        "none": None,
        "list": [1, 2],
        "obj": {"k": "v"},
        "q": "7",
    }
    assert build_inputs(["prompt=a cat, warm light", "empty=", "eq=a=b"]) == {
        "prompt": "a cat, warm light",
        "empty": "",
        "eq": "a=b",
    }


def test_a_later_assignment_wins_and_merges_into_objects() -> None:
    assert build_inputs(['options={"quality": "draft"}', "options.seed=2", "x=1", "x=2"]) == {
        "options": {"quality": "draft", "seed": 2},
        "x": 2,
    }


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        (["prompt"], "expected PATH=VALUE"),
        (["a..b=1"], "names separated by dots"),
        (["=1"], "names separated by dots"),
        (["a=1", "a.b=2"], "a is already set to 1"),
    ],
)
def test_bad_assignments_say_what_is_wrong(assignment: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_inputs(assignment)
