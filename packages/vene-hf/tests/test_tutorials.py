"""The tutorials under docs/tutorials run, and what they print holds."""

from __future__ import annotations

import pathlib
import runpy

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_patching_and_tracing_tutorial(tmp_path, capsys):
    ns = runpy.run_path(str(ROOT / "docs" / "tutorials" / "patching_and_tracing.py"))
    got = ns["main"](tmp_path)
    assert got["clean_restored"] == pytest.approx(got["clean"], abs=1e-6)
    assert got["r"] > 0.5
    assert (tmp_path / "resid.json").is_file()
    assert "causal tracing" in capsys.readouterr().out


def test_patching_doc_examples_run():
    import re

    text = (ROOT / "docs" / "patching.md").read_text()
    found = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert found
    namespace: dict = {}
    for code in found:
        exec(compile(code, "docs/patching.md example", "exec"), namespace)  # noqa: S102 -- the doc's own examples
