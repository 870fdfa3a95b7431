from __future__ import annotations

from pathlib import Path

from devstack.envfile import HEADER, parse_env, read_env_file, render_env, write_env


def test_render_puts_owned_values_first_and_keeps_foreign_lines() -> None:
    existing = "KAFKA_BOOTSTRAP_SERVERS=old:1\nWORKFLOW_API_URL=http://x\n# a note\n"
    text = render_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:39092"}, existing)
    assert text.splitlines() == [
        HEADER,
        "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:39092",
        "WORKFLOW_API_URL=http://x",
        "# a note",
    ]


def test_render_replaces_exported_owned_keys_too() -> None:
    text = render_env({"A": "1"}, "export A=0\nB=2\n")
    assert parse_env(text) == {"A": "1", "B": "2"}
    assert "export A=0" not in text


def test_rendering_twice_does_not_repeat_the_header() -> None:
    once = render_env({"A": "1"})
    assert render_env({"A": "1"}, once) == once


def test_values_needing_quotes_round_trip_through_the_shell_syntax() -> None:
    values = {"SECRET": "a b'c$d", "URL": "mongodb://127.0.0.1:37017"}
    text = render_env(values)
    assert "URL=mongodb://127.0.0.1:37017" in text
    assert parse_env(text) == values


def test_write_env_merges_into_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "env"
    path.write_text("WORKFLOW_API_KEY=k1\nS3_ENDPOINT=http://old\n")
    write_env(path, {"S3_ENDPOINT": "http://127.0.0.1:38333"})
    assert read_env_file(path) == {
        "S3_ENDPOINT": "http://127.0.0.1:38333",
        "WORKFLOW_API_KEY": "k1",
    }
    assert [p.name for p in tmp_path.iterdir()] == ["env"]  # no temp file left


def test_reading_a_missing_env_file_gives_nothing(tmp_path: Path) -> None:
    assert read_env_file(tmp_path / "env") == {}
