from __future__ import annotations

from pathlib import Path

import pytest
from devstack.cache import content_key, provision


def test_an_entry_is_built_once_then_served_from_the_cache(tmp_path: Path) -> None:
    builds: list[Path] = []

    def build(tmp: Path) -> None:
        builds.append(tmp)
        (tmp / "artifact").write_text("ok")

    target = tmp_path / "entry"
    assert provision(target, build) is True
    assert provision(target, build) is False
    assert len(builds) == 1
    assert (target / "artifact").read_text() == "ok"


def test_an_interrupted_build_leaves_no_cache_entry_and_no_temp_dir(tmp_path: Path) -> None:
    def build(tmp: Path) -> None:
        (tmp / "half-written.jar").write_text("partial")
        raise KeyboardInterrupt

    target = tmp_path / "entry"
    with pytest.raises(KeyboardInterrupt):
        provision(target, build)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_leftovers_of_a_killed_build_are_removed_by_the_next_one(tmp_path: Path) -> None:
    stale = tmp_path / ".tmp-entry-999-dead"
    stale.mkdir()
    (stale / "partial").write_text("x")
    provision(tmp_path / "entry", lambda tmp: (tmp / "f").mkdir())
    assert not stale.exists()
    assert (tmp_path / "entry" / "f").is_dir()


def test_the_key_changes_with_content(tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text("<a/>")
    first = content_key(pom)
    assert content_key(pom) == first
    pom.write_text("<b/>")
    assert content_key(pom) != first
