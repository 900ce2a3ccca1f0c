"""AttentionMap draws attention probabilities collected with vene's CollectIntervention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vene_viz import AttentionMap, DataShapeError, LabelMismatchError, VisualizationError


def drawn(fig) -> np.ndarray:
    return np.ma.getdata(fig.axes[0].images[0].get_array())


def test_collected_attention_is_real_and_is_drawn_as_given(attention, tmp_path):
    probs, tokens = attention["vene"], attention["tokens"]
    torch.testing.assert_close(probs, attention["hooks"])  # the same as a plain forward hook
    assert probs.shape == (1, 4, 5, 5)
    torch.testing.assert_close(probs.sum(-1), torch.ones(1, 4, 5))  # rows are distributions

    fig = AttentionMap(tokens=tokens).plot(probs, head=2)
    ax = fig.axes[0]
    np.testing.assert_array_equal(drawn(fig), probs[0, 2].double().numpy())
    assert [t.get_text() for t in ax.get_xticklabels()] == tokens
    assert [t.get_text() for t in ax.get_yticklabels()] == tokens
    assert ax.get_xlabel() == "key" and ax.get_ylabel() == "query"
    assert ax.get_title() == "head 2"
    image = ax.images[0]
    assert image.origin == "upper" and image.get_clim() == (0.0, 1.0)
    assert image.colorbar is not None
    assert image.colorbar.ax.get_ylabel() == "attention probability"
    assert AttentionMap(tokens=tokens).save(tmp_path / "attention.png", probs, head=2).stat().st_size > 0


def test_heads_can_be_selected_averaged_or_passed_alone(attention):
    probs = attention["vene"]
    viz = AttentionMap()
    np.testing.assert_allclose(drawn(viz.plot(probs[0], head="mean")), probs[0].double().mean(0).numpy())
    np.testing.assert_array_equal(drawn(viz.plot(probs[0, 3])), probs[0, 3].double().numpy())
    np.testing.assert_array_equal(drawn(viz.plot(probs[:, :1])), probs[0, 0].double().numpy())
    np.testing.assert_array_equal(viz.select(probs, head=-1), probs[0, 3].double().numpy())
    batch = torch.cat([probs, probs.flip(0)])
    np.testing.assert_array_equal(drawn(viz.plot(batch, example=1, head=1)), batch[1, 1].double().numpy())


def test_choices_that_are_missing_or_out_of_range(attention):
    probs = attention["vene"]
    with pytest.raises(DataShapeError, match=r"4 heads; choose one with head=<0..3> or head='mean'"):
        AttentionMap().plot(probs)
    with pytest.raises(DataShapeError, match=r"head=7 is out of range.*4 heads"):
        AttentionMap().plot(probs, head=7)
    with pytest.raises(DataShapeError, match="2 examples; choose one with example="):
        AttentionMap().plot(torch.cat([probs, probs]), head=0)
    with pytest.raises(DataShapeError, match="example=0 needs a 4-D"):
        AttentionMap().plot(probs[0, 0], example=0)
    with pytest.raises(DataShapeError, match="head=1 needs a tensor with a heads axis"):
        AttentionMap().plot(probs[0, 0], head=1)
    with pytest.raises(VisualizationError, match="head must be an int"):
        AttentionMap().plot(probs, head="first")


def test_token_labels_must_match_queries_and_keys(attention):
    probs, tokens = attention["vene"][0, 0], attention["tokens"]
    with pytest.raises(LabelMismatchError, match="query token labels for 5 query positions"):
        AttentionMap(tokens=tokens[:3]).plot(probs)
    # cross-attention: 2 queries over 5 keys, each axis with its own labels
    cross = probs[-2:]
    fig = AttentionMap(query_tokens=["a", "b"], key_tokens=tokens).plot(cross)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b"]
    with pytest.raises(LabelMismatchError, match="key token labels"):
        AttentionMap(query_tokens=["a", "b"], key_tokens=tokens[:2]).plot(cross)


def test_scores_above_one_extend_the_scale():
    scores = torch.tensor([[0.5, 3.0], [1.0, 2.0]])
    assert AttentionMap().plot(scores).axes[0].images[0].get_clim() == (0.0, 3.0)
