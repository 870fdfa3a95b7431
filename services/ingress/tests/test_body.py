"""The edge's JSON parser refuses, as a 400 naming the limit, what would later be a 500."""

from __future__ import annotations

import json

import pytest
from ingress.body import loads_limited
from ingress.problems import ProblemError
from workflow.limits import Limits

LIMITS = Limits.model_construct()


def _refusal(raw: bytes, status: int = 400) -> ProblemError:
    with pytest.raises(ProblemError) as caught:
        loads_limited(raw, LIMITS)
    assert caught.value.status == status
    return caught.value


def test_nesting_deeper_than_the_limit_is_refused_without_recursing() -> None:
    error = _refusal(b"[" * 3000 + b"]" * 3000)
    assert "MAX_JSON_DEPTH (64)" in error.detail


def test_nesting_at_the_limit_is_accepted() -> None:
    assert loads_limited(b"[" * 64 + b"]" * 64, LIMITS) is not None


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    body = json.dumps({"text": "[" * 500 + '\\"{' * 100}).encode()
    assert loads_limited(body, LIMITS)["text"].startswith("[[[")


def test_a_number_literal_longer_than_the_limit_is_refused() -> None:
    error = _refusal(b'{"n": ' + b"9" * 5000 + b"}")
    assert "MAX_NUMBER_CHARS (64)" in error.detail


def test_a_float_that_overflows_to_infinity_is_refused() -> None:
    assert "too large" in _refusal(b'{"n": 1e400}').detail


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_refused(constant: bytes) -> None:
    assert "not a JSON number" in _refusal(b'{"n": ' + constant + b"}").detail


def test_a_lone_surrogate_in_a_value_is_refused_with_its_path() -> None:
    error = _refusal(b'{"metadata": {"note": ["ok", "\\ud800"]}}', 422)
    assert "/metadata/note/1" in error.detail


def test_a_lone_surrogate_in_a_key_is_refused() -> None:
    assert "surrogate" in _refusal(b'{"\\udc00": 1}', 422).detail


def test_a_nul_character_is_refused_with_its_path_since_postgresql_cannot_store_it() -> None:
    error = _refusal(b'{"name": "a\\u0000b"}', 422)
    assert "U+0000" in error.detail
    assert "/name" in error.detail


def test_an_escaped_backslash_before_u0000_is_no_nul() -> None:
    assert loads_limited(b'{"path": "C:\\\\u0000"}', LIMITS) == {"path": "C:\\u0000"}


def test_a_surrogate_pair_is_a_valid_character() -> None:
    assert loads_limited(b'{"emoji": "\\ud83d\\ude00"}', LIMITS) == {"emoji": "\U0001f600"}


def test_malformed_json_names_where_it_broke() -> None:
    assert "line 1 column" in _refusal(b'{"inputs": ').detail


def test_bytes_that_are_not_utf8_are_refused() -> None:
    assert "not valid JSON" in _refusal(b'{"a": "\xff"}').detail


def test_ordinary_numbers_keep_their_types() -> None:
    assert loads_limited(b'{"i": 12, "f": 1.5, "e": 2e3}', LIMITS) == {
        "i": 12,
        "f": 1.5,
        "e": 2000.0,
    }
