"""Each limit's default lives in `workflow.limits` and the README states it: the README's
table is the one `python -m workflow.limits` prints, so changing a default without the README
(or the other way round) fails here."""

from __future__ import annotations

from pathlib import Path

from workflow.limits import Limits, table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_states_every_limit_with_its_default() -> None:
    readme = README.read_text()
    assert table() in readme, "README's limits table is stale: paste `python -m workflow.limits`"


def test_every_limit_has_a_description() -> None:
    undocumented = [name for name, f in Limits.model_fields.items() if not f.description]
    assert not undocumented
