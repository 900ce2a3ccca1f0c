"""The README's examples run, and it documents every visualizer and option."""

from __future__ import annotations

import pathlib
import re

import pytest

import vene.plugins
import vene_viz

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
VISUALIZERS = [
    vene_viz.PatchingHeatmap, vene_viz.HeadMap, vene_viz.DasMask,
    vene_viz.TrainingCurves, vene_viz.AttentionMap, vene_viz.HtmlReport,
]


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path, monkeypatch):
    # The examples need vene-core and vene-viz only; other plugins stay out of the way.
    monkeypatch.setenv("VENE_DISABLE_PLUGINS", "hf,train")
    vene.plugins.reset_default_registry()
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {"__name__": "readme"})
    finally:
        vene.plugins.reset_default_registry()
    for written in tmp_path.iterdir():
        assert written.stat().st_size > 0


def test_readme_covers_every_visualizer_and_option():
    text = README.read_text(encoding="utf-8")
    assert len(BLOCKS) >= 7
    for cls in VISUALIZERS:
        assert f"`{cls.type_name}`" in text and f"`{cls.__name__}`" in text
        for option in cls.defaults:
            assert f"`{option}`" in text, f"README does not mention {cls.__name__}'s option {option!r}"
