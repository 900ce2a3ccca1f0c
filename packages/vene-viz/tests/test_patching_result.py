"""PatchingHeatmap and HeadMap draw patching results (the contract's PatchingResult fields)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from results import OnlyToDict, heads, layer_position

import vene
from vene_viz import (
    DataShapeError,
    DataTypeError,
    HeadMap,
    LabelMismatchError,
    PatchingHeatmap,
    VisualizationError,
    interactive,
    repr_html,
)


def drawn(ax) -> np.ndarray:
    return np.ma.getdata(ax.images[0].get_array())


def ticks(labels) -> list[str]:
    return [t.get_text() for t in labels]


def test_a_result_is_drawn_with_its_labels_title_and_baselines(patching):
    torch.testing.assert_close(patching["vene"], patching["hooks"], atol=1e-5, rtol=0)
    result = layer_position(patching)
    fig = PatchingHeatmap().plot(result)
    ax = fig.axes[0]
    np.testing.assert_array_equal(drawn(ax), result.scores.double().numpy())
    assert ticks(ax.get_xticklabels()) == patching["tokens"]
    assert ticks(ax.get_yticklabels()) == ["0", "1", "2"]
    assert ax.get_title().startswith("Activation patching: residual stream (denoise)\n")
    assert "base 0, source 1" in ax.get_title()
    bar = ax.images[0].colorbar
    assert bar.ax.get_ylabel() == result.metric
    # every cell lies between the base run (0) and the source run (1): a sequential scale from
    # the unpatched baseline, so an unchanged cell is white
    assert ax.images[0].get_clim()[0] == 0.0
    assert ax.images[0].get_clim()[1] == pytest.approx(max(1.0, result.scores.max().item()))
    assert ax.images[0].get_cmap().name.startswith("Purples")


def test_effects_on_both_sides_of_the_base_get_a_diverging_scale_centred_there(patching):
    shifted = patching["vene"] * 4 - 1  # scores now below and above the base run's 0.5
    result = layer_position(patching, scores=shifted, baselines={"base": 0.5, "source": 3.0})
    image = PatchingHeatmap().plot(result).axes[0].images[0]
    assert image.get_cmap().name.startswith("RdBu_r")
    lo, hi = image.get_clim()
    reach = max((shifted - 0.5).abs().max().item(), 2.5)  # covers the source baseline too
    assert (lo, hi) == pytest.approx((0.5 - reach, 0.5 + reach))
    # the noising direction starts from the source run
    noised = layer_position(patching, scores=shifted, baselines={"base": 3.0, "source": 0.5},
                            settings={"direction": "noise"})
    assert np.mean(PatchingHeatmap().plot(noised).axes[0].images[0].get_clim()) == pytest.approx(0.5)


def test_to_dict_and_its_json_give_the_same_figure(patching, tmp_path):
    result = layer_position(patching)
    expected = drawn(PatchingHeatmap().plot(result).axes[0])
    via_method = drawn(PatchingHeatmap().plot(OnlyToDict(result)).axes[0])
    path = tmp_path / "result.json"
    path.write_text(json.dumps(result.to_dict()))
    via_json = drawn(PatchingHeatmap().plot(json.loads(path.read_text())).axes[0])
    np.testing.assert_allclose(via_method, expected, rtol=1e-6)
    np.testing.assert_allclose(via_json, expected, rtol=1e-6)


def test_the_cli_json_of_vene_patch_is_read_too(patching):
    scores = patching["vene"]
    doc = {"model": "tiny", "kind": "resid", "metric": "logit_diff", "targets": ["Paris", "Rome"],
           "tokens": patching["tokens"], "layers": [0, 1, 2], "scores": scores.tolist(),
           "base": 0.0, "source": 1.0}
    ax = PatchingHeatmap().plot(doc).axes[0]
    np.testing.assert_allclose(drawn(ax), scores.double().numpy(), rtol=1e-6)
    assert ticks(ax.get_xticklabels()) == patching["tokens"]


def test_a_subset_of_positions_is_labelled_with_its_own_tokens(patching):
    result = layer_position(patching, scores=patching["vene"][:, 2:], coords={"layer": [0, 1, 2], "position": [2, 3, 4]})
    ax = PatchingHeatmap().plot(result).axes[0]
    assert ticks(ax.get_xticklabels()) == patching["tokens"][2:]


def test_heads_results_are_a_head_grid(head_patching):
    result = heads(head_patching)
    for viz in (HeadMap(), PatchingHeatmap()):
        ax = viz.plot(result).axes[0]
        np.testing.assert_array_equal(drawn(ax), result.scores.double().numpy())
        assert ax.get_xlabel() == "head" and ax.get_ylabel() == "layer"
        assert ticks(ax.get_xticklabels()) == ["0", "1", "2", "3"]
        assert ax.get_title().startswith("Activation patching: attention heads")


def test_a_layer_curve_is_a_line_with_its_baselines(patching):
    last = patching["vene"][:, -1]  # restoring each layer at the last position
    result = layer_position(patching, scores=last, dims=("layer",), coords={"layer": [0, 1, 2]},
                            method="causal_tracing", baselines={"clean": 1.0, "corrupted": 0.0},
                            settings={"window": 3})
    ax = PatchingHeatmap().plot(result).axes[0]
    curve, clean, corrupted = ax.lines
    np.testing.assert_array_equal(curve.get_xdata(), [0, 1, 2])
    np.testing.assert_array_equal(curve.get_ydata(), last.double().numpy())
    assert list(clean.get_ydata()) == [1.0, 1.0] and list(corrupted.get_ydata()) == [0.0, 0.0]
    assert ax.get_title().startswith("Causal tracing: residual stream (window 3)")
    ax.figure.canvas.draw()
    assert all(float(t.get_text().replace("−", "-")).is_integer() for t in ax.get_xticklabels() if t.get_text())


def test_components_are_panels_sharing_one_scale_and_accept_axes(patching):
    import matplotlib.figure

    grid = patching["vene"]
    result = layer_position(patching, scores=torch.stack([grid, grid / 2]), dims=("component", "layer", "position"),
                            coords={"component": ["resid", "mlp"], "layer": [0, 1, 2], "position": list(range(5))})
    fig = PatchingHeatmap().plot(result)
    a, b = fig.axes[:2]
    np.testing.assert_array_equal(drawn(a), grid.double().numpy())
    np.testing.assert_array_equal(drawn(b), (grid / 2).double().numpy())
    assert a.images[0].get_clim() == b.images[0].get_clim()
    assert (a.get_title(), b.get_title()) == ("residual stream", "MLP outputs")
    # a paper figure: the two panels go into the caller's axes, beside one of their own
    paper = matplotlib.figure.Figure(figsize=(12, 3))
    axes = paper.subplots(1, 3)
    out = PatchingHeatmap().plot(result, ax=axes[:2])
    assert out is paper
    np.testing.assert_array_equal(drawn(axes[1]), (grid / 2).double().numpy())
    HeadMap().plot(torch.rand(3, 4), ax=axes[2])
    assert axes[2].images
    with pytest.raises(VisualizationError, match="sequence of 2 matplotlib Axes"):
        PatchingHeatmap().plot(result, ax=axes[0])


def test_wrong_shapes_and_tokens_say_what_to_fix(patching):
    with pytest.raises(DataShapeError, match=r"shape \(3, 5\).*coords give \(3, 4\)"):
        PatchingHeatmap().plot(layer_position(patching, coords={"layer": [0, 1, 2], "position": [0, 1, 2, 3]}))
    with pytest.raises(LabelMismatchError, match="4 tokens but a position coordinate 4"):
        PatchingHeatmap().plot(layer_position(patching, tokens=patching["tokens"][:4]))
    with pytest.raises(DataShapeError, match="no labels for dim 'position'"):
        PatchingHeatmap().plot(layer_position(patching, coords={"layer": [0, 1, 2]}))
    with pytest.raises(LabelMismatchError, match="list of strings"):
        PatchingHeatmap().plot(layer_position(patching, tokens="The Roman"))
    four = layer_position(patching, scores=torch.zeros(1, 1, 3, 5), dims=("a", "b", "layer", "position"),
                          coords={"a": [0], "b": [0], "layer": [0, 1, 2], "position": list(range(5))})
    with pytest.raises(DataShapeError, match="draws 1 .* 2 .* or 3"):
        PatchingHeatmap().plot(four)
    with pytest.raises(DataTypeError, match="cannot tell which figure"):
        interactive(object())
    with pytest.raises(vene.VeneError):
        PatchingHeatmap().save("x.html", layer_position(patching, tokens=["a"]))


def test_the_registry_gives_the_visualizer_the_cli_saves_png_and_html(patching, tmp_path, monkeypatch):
    monkeypatch.setenv("VENE_DISABLE_PLUGINS", "hf,train")
    vene.plugins.reset_default_registry()
    try:
        viz = vene.default_registry().get("visualizers", "patching_heatmap")()
    finally:
        vene.plugins.reset_default_registry()
    result = layer_position(patching)
    png = viz.save(tmp_path / "out" / "trace.png", result)
    page = viz.save(tmp_path / "out" / "trace.html", result)
    assert png.read_bytes().startswith(b"\x89PNG")
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc=", text)  # plotly.js is inline: nothing to fetch
    assert text.count("Plotly.newPlot") == 1
    fig = viz.interactive(result)
    (trace,) = fig.data
    np.testing.assert_allclose(np.array(trace.z, dtype=float), result.scores.double().numpy(), rtol=1e-6)
    assert "position 1: 'Roman'" in trace.customdata[2][1] and "layer 2" in trace.customdata[2][1]
    assert list(fig.layout.xaxis.ticktext) == patching["tokens"]
    shared = viz.save(tmp_path / "shared" / "trace.html", result, plotlyjs="directory")
    assert re.search(r'<script[^>]*src="plotly.min.js"', shared.read_text(encoding="utf-8"))
    assert (tmp_path / "shared" / "plotly.min.js").stat().st_size > 1_000_000
    with pytest.raises(VisualizationError, match="plotlyjs must be one of"):
        viz.save(tmp_path / "x.html", result, plotlyjs="cdn")


def test_notebook_html_of_a_result(patching):
    html = repr_html(layer_position(patching))
    assert html.startswith("<div") and "<html" not in html and "Plotly.newPlot" in html
    assert interactive(layer_position(patching)).data[0].type == "heatmap"
