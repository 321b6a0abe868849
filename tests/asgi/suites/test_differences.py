"""The reviewed lists of known differences: well formed, each test listed once, and each
difference explained in docs/asgi-differences.md (and nothing explained there that is not
listed).  No network, no server: part of the default run."""
from __future__ import annotations

import pathlib
import re

import pytest

from .realsocket.report import Difference, load_differences

_HERE = pathlib.Path(__file__).resolve().parent
_DOC = _HERE.parent.parent.parent / "docs" / "asgi-differences.md"
_KINDS = {"in-process", "protocol", "server-specific", "environment", "not-applicable"}
_LISTS = sorted((_HERE / "differences").glob("*.toml"))


def _documented() -> dict[str, str]:
    """``### `id` `` headings of the doc, with the section's text."""
    text = _DOC.read_text(encoding="utf-8")
    parts = re.split(r"^### `([a-z0-9-]+)`\s*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


@pytest.mark.parametrize("path", _LISTS, ids=[p.stem for p in _LISTS])
def test_each_difference_is_well_formed_and_lists_each_test_once(path: pathlib.Path) -> None:
    differences = load_differences(str(path))
    assert differences, f"{path.name} lists nothing"
    ids = [d.id for d in differences]
    assert len(ids) == len(set(ids)), f"an id appears twice in {path.name}"
    seen: dict[str, str] = {}
    for difference in differences:
        assert difference.kind in _KINDS, (difference.id, difference.kind)
        assert difference.loops and set(difference.loops) <= {"uvloop", "asyncio"}, difference.id
        assert len(difference.reason) >= 60, f"{difference.id}: a reason says why, in a sentence or more"
        assert difference.tests, difference.id
        for test in difference.tests:
            assert test.startswith("tests/") and "::" in test, (difference.id, test)
            assert test not in seen, f"{test} is listed under {seen.get(test)} and {difference.id}"
            seen[test] = difference.id


def test_the_doc_explains_every_listed_difference_and_no_other() -> None:
    documented = _documented()
    listed: list[Difference] = [d for path in _LISTS for d in load_differences(str(path))]
    missing = sorted({d.id for d in listed} - set(documented))
    extra = sorted(set(documented) - {d.id for d in listed})
    assert not missing, f"listed but not explained in {_DOC.name}: {missing}"
    assert not extra, f"explained in {_DOC.name} but not listed: {extra}"
    for difference in listed:
        assert difference.kind in documented[difference.id], \
            f"{_DOC.name} does not give {difference.id}'s kind ({difference.kind})"
