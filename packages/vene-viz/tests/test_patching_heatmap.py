"""PatchingHeatmap draws a layer × position patching sweep computed with vene."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

import vene
from vene_viz import (
    DataShapeError,
    DataTypeError,
    DataValueError,
    LabelMismatchError,
    PatchingHeatmap,
    VisualizationError,
)


def drawn(fig) -> np.ndarray:
    return np.ma.getdata(fig.axes[0].images[0].get_array())


def ticks(labels) -> list[str]:
    return [t.get_text() for t in labels]


def test_the_sweep_is_real_and_is_drawn_as_given(patching):
    # vene's vectorised sweep agrees with a sweep written with plain torch forward hooks
    torch.testing.assert_close(patching["vene"], patching["hooks"], atol=1e-5, rtol=0)
    scores, tokens = patching["vene"], patching["tokens"]
    assert scores[-1, -1].item() == pytest.approx(1.0, abs=1e-5)  # the last state restores all

    fig = PatchingHeatmap(tokens=tokens).plot(scores)
    ax = fig.axes[0]
    np.testing.assert_array_equal(drawn(fig), scores.double().numpy())
    assert ticks(ax.get_xticklabels()) == tokens
    assert ticks(ax.get_yticklabels()) == ["0", "1", "2"]
    assert ax.get_xlabel() == "token" and ax.get_ylabel() == "layer"
    image = ax.images[0]
    assert image.origin == "lower"  # layer 0 at the bottom
    assert image.colorbar is not None and image.colorbar.ax.get_ylabel() == "patching effect"
    # non-negative effects: a sequential map over the data's range
    assert image.get_cmap().name.startswith("Purples")
    assert image.get_clim() == pytest.approx((scores.min().item(), scores.max().item()), abs=1e-7)
    # small grid: every value is written into its cell
    texts = {(t.get_position(), t.get_text()) for t in ax.texts}
    assert len(texts) == scores.numel()
    assert ((4, 2), format(scores[2, 4].item(), ".2f")) in texts


def test_transpose_puts_tokens_on_the_y_axis(patching):
    scores, tokens = patching["vene"], patching["tokens"]
    fig = PatchingHeatmap(tokens=tokens, transpose=True).plot(scores)
    ax = fig.axes[0]
    np.testing.assert_array_equal(drawn(fig), scores.double().numpy().T)
    assert ticks(ax.get_yticklabels()) == tokens
    assert ticks(ax.get_xticklabels()) == ["0", "1", "2"]
    assert ax.images[0].origin == "upper"  # the first token at the top
    assert ax.get_xlabel() == "layer" and ax.get_ylabel() == "token"


def test_effects_of_both_signs_get_a_diverging_scale_centred_on_zero(patching):
    scores = patching["vene"] - 0.25
    fig = PatchingHeatmap(layer_labels=["L0", "L1", "L2"], title="shifted").plot(scores)
    image = fig.axes[0].images[0]
    reach = (scores - 0).abs().max().item()
    assert image.get_cmap().name.startswith("RdBu_r")
    assert image.get_clim() == pytest.approx((-reach, reach))
    assert ticks(fig.axes[0].get_yticklabels()) == ["L0", "L1", "L2"]
    assert fig.axes[0].get_title() == "shifted"
    # explicit limits and colormap win; plot() options override the constructor's for one call
    viz = PatchingHeatmap(cmap="viridis", vmin=-1, vmax=1)
    assert viz.plot(scores).axes[0].images[0].get_clim() == (-1, 1)
    assert viz.plot(scores, cmap="magma").axes[0].images[0].get_cmap().name.startswith("magma")
    assert viz.options == {"cmap": "viridis", "vmin": -1, "vmax": 1}


def test_save_writes_png_pdf_and_svg(patching, tmp_path):
    viz = PatchingHeatmap(tokens=patching["tokens"], figsize=(6, 3), dpi=50)
    path = viz.save(tmp_path / "out" / "patching.png", patching["vene"])
    assert path == tmp_path / "out" / "patching.png"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert mpimg.imread(path).shape[:2] == (150, 300)  # figsize × dpi
    for suffix, magic in ((".pdf", b"%PDF"), (".svg", b"<?xml")):
        written = viz.save(tmp_path / f"patching{suffix}", patching["vene"])
        assert written.read_bytes().startswith(magic)
    fig = viz.plot(patching["vene"])
    assert viz.save(tmp_path / "again.png", fig).stat().st_size > 0  # a figure is saved as is


def test_many_positions_keep_every_token_label_and_skip_annotations():
    torch.manual_seed(0)
    scores = torch.rand(12, 40)
    tokens = [f"tok{i}" for i in range(40)]
    fig = PatchingHeatmap(tokens=tokens).plot(scores)
    assert ticks(fig.axes[0].get_xticklabels()) == tokens
    assert len(fig.axes[0].texts) == 0  # 480 cells: no values written


def test_tokens_that_look_like_mathtext_are_shown_literally(patching):
    tokens = ["$5", "a\nb", "x_1", "^", "Ġthe"]
    fig = PatchingHeatmap(tokens=tokens).plot(patching["vene"])
    assert ticks(fig.axes[0].get_xticklabels()) == [r"\$5", "a\\nb", "x_1", "^", "Ġthe"]
    fig.canvas.draw()  # renders without a mathtext error


def test_nan_cells_are_allowed_but_infinite_ones_are_not(patching):
    scores = patching["vene"].clone()
    scores[0, 0] = float("nan")
    assert np.isnan(drawn(PatchingHeatmap().plot(scores))[0, 0])
    scores[0, 0] = float("inf")
    with pytest.raises(DataValueError, match="infinite"):
        PatchingHeatmap().plot(scores)
    with pytest.raises(DataValueError, match="NaN"):
        PatchingHeatmap().plot(torch.full((2, 3), float("nan")))


def test_wrong_dimensionality_says_how_to_fix_it(patching):
    per_example = patching["vene"].unsqueeze(0).repeat(4, 1, 1)  # [examples, layers, positions]
    with pytest.raises(DataShapeError, match=r"3-D.*\(4, 3, 5\).*mean\(0\)"):
        PatchingHeatmap().plot(per_example)
    with pytest.raises(DataShapeError, match=r"1-D.*reshape\(1, -1\)"):
        PatchingHeatmap().plot(patching["vene"][0])
    with pytest.raises(DataShapeError, match="empty"):
        PatchingHeatmap().plot(torch.zeros(0, 5))


def test_labels_must_match_their_axis(patching):
    scores, tokens = patching["vene"], patching["tokens"]
    with pytest.raises(LabelMismatchError, match="got 4 token labels for 5 positions"):
        PatchingHeatmap(tokens=tokens[:4]).plot(scores)
    with pytest.raises(LabelMismatchError, match="got 2 layer labels for 3 layers"):
        PatchingHeatmap(layer_labels=["a", "b"]).plot(scores)
    with pytest.raises(LabelMismatchError, match="single string"):
        PatchingHeatmap(tokens="The Roman Colosseum is in").plot(scores)


def test_bad_data_and_options_raise_vene_errors(patching, tmp_path):
    with pytest.raises(DataTypeError, match="nested list of numbers"):
        PatchingHeatmap().plot("scores")
    with pytest.raises(DataTypeError):
        PatchingHeatmap().plot([[1.0, "x"]])
    with pytest.raises(VisualizationError, match="no option 'token'.*Did you mean: tokens"):
        PatchingHeatmap(token=["a"])
    with pytest.raises(VisualizationError, match="no option 'colour'"):
        PatchingHeatmap().plot(patching["vene"], colour="red")
    with pytest.raises(VisualizationError, match="unknown colormap"):
        PatchingHeatmap(cmap="no-such-map").plot(patching["vene"])
    with pytest.raises(VisualizationError, match="figsize"):
        PatchingHeatmap(figsize=(6,))
    with pytest.raises(VisualizationError, match=r"suffix.*\.png"):
        PatchingHeatmap().save(tmp_path / "patching", patching["vene"])
    # every one of them is a vene error, and a ValueError for generic handlers
    with pytest.raises(vene.VeneError):
        PatchingHeatmap().plot(torch.zeros(2, 2, 2))
    with pytest.raises(ValueError):
        PatchingHeatmap().plot(torch.zeros(2, 2, 2))


def test_tensors_that_need_grad_or_are_half_precision_are_accepted():
    x = torch.rand(2, 3, requires_grad=True)
    np.testing.assert_array_equal(drawn(PatchingHeatmap().plot(x * 1)), x.detach().double().numpy())
    h = torch.rand(2, 3).to(torch.bfloat16)
    np.testing.assert_array_equal(drawn(PatchingHeatmap().plot(h)), h.float().double().numpy())
