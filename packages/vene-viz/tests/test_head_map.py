"""HeadMap draws a layer × head grid: per-head patching computed with vene's ``h`` unit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vene_viz import DataShapeError, HeadMap, LabelMismatchError


def test_head_patching_is_real_and_is_drawn_as_given(head_patching, tmp_path):
    # vene (unit "h" through a resolver plugin) agrees with forward pre-hooks on attn.o
    torch.testing.assert_close(head_patching["vene"], head_patching["hooks"], atol=1e-5, rtol=0)
    grid = head_patching["vene"]
    fig = HeadMap(title="head patching").plot(grid)
    ax = fig.axes[0]
    np.testing.assert_array_equal(np.ma.getdata(ax.images[0].get_array()), grid.double().numpy())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1", "2"]
    assert ax.get_xlabel() == "head" and ax.get_ylabel() == "layer"
    assert ax.images[0].origin == "lower"
    assert ax.images[0].colorbar is not None
    assert len(ax.texts) == grid.numel()
    path = HeadMap().save(tmp_path / "heads.png", grid)
    assert path.stat().st_size > 0


def test_head_labels_and_their_count(head_patching):
    grid = head_patching["vene"]
    labels = ["h0", "h1", "h2", "h3"]
    fig = HeadMap(head_labels=labels, layer_labels=["a", "b", "c"], annotate=False).plot(grid)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == labels
    assert len(fig.axes[0].texts) == 0
    with pytest.raises(LabelMismatchError, match="got 3 head labels for 4 heads"):
        HeadMap(head_labels=labels[:3]).plot(grid)
    with pytest.raises(LabelMismatchError, match="layer labels"):
        HeadMap(layer_labels=["a"]).plot(grid)


def test_a_grid_per_position_must_be_reduced_first(head_patching):
    per_position = head_patching["vene"].unsqueeze(-1).repeat(1, 1, 5)  # [layers, heads, positions]
    with pytest.raises(DataShapeError, match=r"\[layers, heads\].*3-D"):
        HeadMap().plot(per_position)


def test_many_layers_thin_the_numeric_layer_ticks():
    grid = torch.arange(48 * 12, dtype=torch.float32).reshape(48, 12)
    fig = HeadMap().plot(grid)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [str(i) for i in range(0, 48, 2)]
    np.testing.assert_array_equal(np.ma.getdata(fig.axes[0].images[0].get_array()), grid.numpy())
