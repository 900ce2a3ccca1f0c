"""Each HTML file vene-viz writes, opened in headless Chromium as a reader would: the page
raises no console error, draws the expected number of cells or points, shows the expected
hover label, and leaves a screenshot (under the test's tmp dir and ``$VENE_TEST_ARTIFACTS``).

Locally, the tests skip when Chromium is absent; on CI (``CI=true``) its absence is a failure.
"""

from __future__ import annotations

import pathlib

import matplotlib.image as mpimg
import pytest
import torch
from browser import chromium, open_page, screenshot
from results import heads, layer_position

from vene_viz import AttentionMap, DasMask, HeadMap, HtmlReport, PatchingHeatmap, TrainingCurves


@pytest.fixture(scope="module", autouse=True)
def _browser() -> None:
    chromium()


def _check(path: pathlib.Path, tmp_path: pathlib.Path, hover=None, size=(1100, 800)) -> dict:
    seen = open_page(path, hover=hover)
    assert seen["errors"] == [], f"{path.name}: console errors {seen['errors']}"
    shot = screenshot(path, tmp_path / f"{path.stem}.png", size=size)
    assert mpimg.imread(shot).shape[:2] == (size[1], size[0])
    return seen


def test_a_patching_result_in_the_browser(patching, tmp_path):
    result = layer_position(patching)
    path = PatchingHeatmap().save(tmp_path / "patching_result.html", result)
    seen = _check(path, tmp_path, hover=[1, 2])  # position 1, layer 2
    (plot,) = seen["plots"]
    assert plot["traces"] == [{"type": "heatmap", "cells": 15, "points": None}]
    assert plot["heatmap_images"] == 1
    assert plot["xticks"] == [t.strip() for t in patching["tokens"]]
    assert plot["yticks"] == ["0", "1", "2"]  # layers tick at integers
    value = result.scores[2, 1].item()
    assert "layer 2" in plot["hover"] and "position 1: 'Roman'" in plot["hover"]
    assert f"= {value:.4g}" in plot["hover"]
    assert plot["title"].startswith("Activation patching: residual stream (denoise)")


def test_heads_in_the_browser(head_patching, tmp_path):
    result = heads(head_patching)
    path = HeadMap().save(tmp_path / "heads_result.html", result)
    (plot,) = _check(path, tmp_path, hover=[3, 1])["plots"]
    assert plot["traces"][0]["cells"] == 12
    assert plot["xticks"] == ["0", "1", "2", "3"]
    assert "layer 1" in plot["hover"] and "head 3" in plot["hover"]
    assert f"= {result.scores[1, 3].item():.4g}" in plot["hover"]


def test_components_side_by_side_in_the_browser(patching, tmp_path):
    grid = patching["vene"]
    result = layer_position(patching, scores=torch.stack([grid, grid / 2, grid / 4]),
                            dims=("component", "layer", "position"),
                            coords={"component": ["resid", "mlp", "attn"], "layer": [0, 1, 2],
                                    "position": list(range(5))})
    path = PatchingHeatmap().save(tmp_path / "components.html", result)
    (plot,) = _check(path, tmp_path, hover=[4, 2, "x2y2"], size=(1600, 600))["plots"]
    assert [t["cells"] for t in plot["traces"]] == [15, 15, 15]
    assert plot["heatmap_images"] == 3
    assert f"= {grid[2, 4].item() / 2:.4g}" in plot["hover"] and "'in'" in plot["hover"]


def test_a_layer_curve_in_the_browser(patching, tmp_path):
    result = layer_position(patching, scores=patching["vene"][:, -1], dims=("layer",),
                            coords={"layer": [0, 1, 2]})
    path = PatchingHeatmap().save(tmp_path / "layer_curve.html", result)
    (plot,) = _check(path, tmp_path, hover=[1, result.scores[1].item()])["plots"]
    assert plot["traces"] == [{"type": "scatter", "cells": None, "points": 3}]
    assert plot["points_drawn"] == 3
    assert all(t.lstrip("−-").isdigit() for t in plot["xticks"])  # whole layers only
    assert "layer 1" in plot["hover"]


def test_training_curves_in_the_browser(das_training, tmp_path):
    records = das_training["boundless_records"]
    path = TrainingCurves(title="Boundless DAS").save(tmp_path / "curves.html", records)
    (plot,) = _check(path, tmp_path, hover=[9, records[9]["loss"]])["plots"]
    assert [t["points"] for t in plot["traces"]] == [40, 8]  # loss every step, IIA every 5th
    assert plot["points_drawn"] == 48
    assert all(t.isdigit() for t in plot["xticks"])  # steps tick at integers
    assert "step 9" in plot["hover"] and f"loss = {records[9]['loss']:.4g}" in plot["hover"]


def test_mask_and_attention_in_the_browser(das_training, attention, tmp_path):
    mask_page = DasMask().save(tmp_path / "mask.html", das_training["boundless"])
    (plot,) = _check(mask_page, tmp_path)["plots"]
    assert plot["traces"] == [{"type": "bar", "cells": None, "points": 8}]
    assert plot["bars_drawn"] == 8
    torch.testing.assert_close(attention["vene"], attention["hooks"])
    att_page = AttentionMap(tokens=attention["tokens"]).save(tmp_path / "attention.html", attention["vene"], head=1)
    (plot,) = _check(att_page, tmp_path, hover=[1, 3])["plots"]
    assert plot["traces"][0]["cells"] == 25
    assert "query 3: 'is'" in plot["hover"] and "key 1: 'Eiffel'" in plot["hover"]


def test_a_report_mixes_interactive_figures_and_images(patching, tmp_path):
    result = layer_position(patching)
    path = HtmlReport(title="Patching study").save(tmp_path / "report.html", {
        "text": "Block outputs of a small model.",
        "figures": {"Sweep": result, "Heads": HeadMap().interactive(torch.rand(3, 4)),
                    "As an image": PatchingHeatmap().plot(result)},
        "tables": {"Baselines": result.baselines},
    })
    page = path.read_text(encoding="utf-8")
    assert page.count("Plotly.newPlot") == 2 and page.count("plotly.js v") == 1  # the bundle once
    seen = _check(path, tmp_path, size=(1100, 1600))
    assert [p["traces"][0]["cells"] for p in seen["plots"]] == [15, 12]


def test_the_probe_does_see_console_errors(patching, tmp_path):
    # the harness itself: a page with a failing script must not pass as clean
    path = PatchingHeatmap().save(tmp_path / "broken.html", layer_position(patching))
    text = path.read_text(encoding="utf-8").replace("</body>", "<script>noSuchFunction();</script></body>")
    path.write_text(text, encoding="utf-8")
    seen = open_page(path)
    assert any("noSuchFunction" in e for e in seen["errors"])
