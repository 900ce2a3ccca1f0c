"""The deliberate departures from pyvene, read from docs/design.md so the parity checks cannot drift.

The section "Departures from pyvene" of docs/design.md holds a table whose first column is a
backticked pattern (``fnmatch`` syntax) naming what pyvene has and vene deliberately lacks:
``pyvene.path.Name``, ``pyvene.path.Class.member``, or a parameter ``pyvene.path.func(param)``.
A row without a reason and a replacement is refused, so a departure is always explained.
"""

from __future__ import annotations

import fnmatch
import pathlib
import re

DESIGN = pathlib.Path(__file__).resolve().parents[2] / "docs" / "design.md"
SECTION = "## Departures from pyvene"


def departures(text: str | None = None) -> dict[str, tuple[str, str]]:
    """``{pattern: (reason, use instead)}`` from the departures table."""
    text = DESIGN.read_text() if text is None else text
    if SECTION not in text:
        raise AssertionError(f"docs/design.md has no section {SECTION!r}")
    body = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    out: dict[str, tuple[str, str]] = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        reason, instead = cells[1], cells[2]
        if not reason or not instead:
            raise AssertionError(f"departure {cells[0]} needs a reason and what to use instead")
        for pattern in re.findall(r"`([^`]+)`", cells[0]):
            out[pattern] = (reason, instead)
    return out


def departed(item: str, table: dict[str, tuple[str, str]]) -> str | None:
    """The pattern that lists ``item`` as a departure, or None."""
    for pattern in table:
        if fnmatch.fnmatchcase(item, pattern):
            return pattern
    return None
