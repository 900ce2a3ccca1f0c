"""DasMask draws the mask of Boundless DAS and sigmoid-mask interventions trained with vene."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
import torch
from torch import nn

import vene
from vene.plugins import Registry
from vene_viz import (
    DasMask,
    DataShapeError,
    DataTypeError,
    VisualizationError,
    read_mask,
)


def heights(fig) -> np.ndarray:
    return np.array([bar.get_height() for bar in fig.axes[0].containers[0]])


def test_boundless_das_mask_is_computed_from_the_trained_boundary(das_training, tmp_path):
    iv = das_training["boundless"]
    records = das_training["boundless_records"]
    assert records[-1]["loss"] < records[0]["loss"]  # it trained
    b = iv.intervention_boundaries.detach().clamp(1e-3, 1)[0].item()
    assert b != 0.25  # the boundary moved from its initial value
    # pyvene's mask, written out independently: sigmoid(i/T) * sigmoid((b*n - i)/T)
    i, t, n = torch.arange(8.0), iv.temperature.item(), 8
    expected = torch.sigmoid(i / t) * torch.sigmoid((b * n - i) / t)

    fig = DasMask().plot(iv)
    np.testing.assert_allclose(heights(fig), expected.numpy(), rtol=1e-5, atol=1e-7)
    ax = fig.axes[0]
    boundary_line = [ln for ln in ax.lines if ln.get_label().startswith("boundary")]
    assert len(boundary_line) == 1
    assert boundary_line[0].get_xdata()[0] == pytest.approx(b * n - 0.5, rel=1e-6)
    assert ax.get_title().startswith("Boundless DAS mask (T = 0.5)")
    assert f"boundary {b * n:.2f} dims" in ax.get_title()
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "mask value"  # the colorbar
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(k) for k in range(8)]
    assert DasMask().save(tmp_path / "boundless.png", iv).stat().st_size > 0

    # a temperature given to plot() replaces the module's
    sharper = torch.sigmoid(i / 0.05) * torch.sigmoid((b * n - i) / 0.05)
    np.testing.assert_allclose(heights(DasMask().plot(iv, temperature=0.05)), sharper.numpy(), atol=1e-6)


def test_sigmoid_mask_is_sigmoid_of_the_trained_logits(das_training):
    iv = das_training["sigmoid"]
    assert not torch.equal(iv.mask.detach(), torch.zeros(8))  # it trained
    expected = torch.sigmoid(iv.mask.detach() / iv.temperature.detach())
    fig = DasMask().plot(iv)
    np.testing.assert_allclose(heights(fig), expected.numpy(), rtol=1e-5, atol=1e-7)
    above = int((expected > 0.5).sum())
    assert fig.axes[0].get_title() == f"sigmoid mask (T = 0.5)\n{above} of 8 dims > 0.5"
    # raw: the parameter itself
    np.testing.assert_allclose(heights(DasMask(raw=True).plot(iv)), iv.mask.detach().numpy(), rtol=1e-6)
    # sorted by decreasing value
    np.testing.assert_allclose(
        heights(DasMask(sort=True).plot(iv)), np.sort(expected.numpy())[::-1], rtol=1e-5, atol=1e-7
    )


def test_a_plain_tensor_is_drawn_as_given(das_training):
    iv = das_training["sigmoid"]
    values = torch.sigmoid(iv.mask / iv.temperature)  # requires grad: detached by the visualizer
    fig = DasMask(threshold=0.9, title="my mask").plot(values)
    np.testing.assert_array_equal(heights(fig), values.detach().double().numpy())
    ax = fig.axes[0]
    assert ax.get_title() == "my mask"
    threshold = [ln for ln in ax.lines if tuple(ln.get_ydata()) == (0.9, 0.9)]
    assert len(threshold) == 1
    np.testing.assert_array_equal(heights(DasMask().plot([[0.1, 0.7, 1.0]])), [0.1, 0.7, 1.0])


def test_a_wide_mask_draws_one_bar_per_dimension():
    torch.manual_seed(0)
    values = torch.rand(768)
    fig = DasMask(threshold=None).plot(values)
    np.testing.assert_array_equal(heights(fig), values.double().numpy())
    assert all(tuple(ln.get_ydata()) != (0.5, 0.5) for ln in fig.axes[0].lines)


@pytest.fixture(scope="module")
def train_registry() -> Registry:
    """vene-train's interventions, loaded through its entry point (skipped when not installed)."""
    pytest.importorskip("vene_train")
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group="vene")}
    pm = vene.get_plugin_manager(load_entrypoints=False)
    pm.register(eps["train"].load(), name="train")
    return Registry(pm)


def test_vene_train_interventions_are_asked_for_their_own_mask(train_registry):
    torch.manual_seed(0)
    boundless = train_registry.intervention_type("BoundlessRotatedSpaceIntervention")(embed_dim=6)
    with torch.no_grad():
        boundless.intervention_boundaries.fill_(0.5)
        boundless.temperature.fill_(0.2)
    fig = DasMask().plot(boundless)
    np.testing.assert_allclose(heights(fig), boundless.boundary_mask().detach().numpy(), rtol=1e-6)
    assert read_mask(boundless).boundary == pytest.approx(3.0)
    with pytest.raises(VisualizationError, match=r"computes its own mask \(boundary_mask\(\)\)"):
        DasMask().plot(boundless, temperature=0.1)

    sigmoid = train_registry.intervention_type("SigmoidMaskIntervention")(embed_dim=5)
    with torch.no_grad():
        sigmoid.mask.copy_(torch.randn(5) * 0.02)
    expected = torch.sigmoid(sigmoid.mask.detach() / sigmoid.temperature)
    np.testing.assert_allclose(heights(DasMask().plot(sigmoid)), expected.numpy(), rtol=1e-6)

    rotated = train_registry.intervention_type("SigmoidMaskRotatedSpaceIntervention")(embed_dim=4)
    np.testing.assert_allclose(heights(DasMask().plot(rotated)), rotated.mask().detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(heights(DasMask(raw=True).plot(rotated)), rotated.masks.detach().numpy())


class _NoTemperature(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mask = nn.Parameter(torch.tensor([-1.0, 0.0, 2.0]))


def test_bad_inputs_say_what_to_pass(das_training):
    with pytest.raises(DataShapeError, match=r"1-D.*\(2, 8\).*mask\[0\]"):
        DasMask().plot(torch.rand(2, 8))
    with pytest.raises(DataShapeError, match="empty"):
        DasMask().plot(torch.zeros(0))
    with pytest.raises(DataTypeError, match="cannot read a mask from Linear"):
        DasMask().plot(nn.Linear(3, 3))
    with pytest.raises(DataTypeError, match="no `temperature`.*temperature=<value>"):
        DasMask().plot(_NoTemperature())
    np.testing.assert_allclose(
        heights(DasMask().plot(_NoTemperature(), temperature=2.0)),
        torch.sigmoid(torch.tensor([-1.0, 0.0, 2.0]) / 2).numpy(), rtol=1e-6,
    )
    with pytest.raises(DataTypeError, match="a Boundless DAS intervention learns a boundary"):
        DasMask(raw=True).plot(das_training["boundless"])
    with pytest.raises(VisualizationError, match="plotted as it is"):
        DasMask(raw=True).plot(torch.rand(3))
    with pytest.raises(VisualizationError, match="temperature must be positive"):
        DasMask().plot(das_training["sigmoid"], temperature=0.0)


def test_an_intervenable_model_names_its_interventions(das_training):
    _, _, mlp = vene.create_mlp_classifier(vene.MLPConfig(h_dim=4, n_layer=1))
    im = vene.IntervenableModel(
        {"layer": 0, "component": "block_output"}, mlp,
        registry=Registry(vene.get_plugin_manager(load_entrypoints=False)),
    )
    key = next(iter(im.interventions))
    with pytest.raises(DataTypeError, match=rf"pass one of them.*'{key}'"):
        DasMask().plot(im)


def test_the_mask_goes_into_a_given_axes_and_its_dimensions_tick_at_integers():
    import matplotlib.figure

    from vene_viz import DasMask

    paper = matplotlib.figure.Figure(figsize=(6, 3))
    ax = paper.subplots()
    values = torch.tensor([0.9, 0.8, 0.1])
    assert DasMask().plot(values, ax=ax) is paper
    np.testing.assert_allclose([p.get_height() for p in ax.patches], values.double().numpy(), rtol=1e-6)
    paper.canvas.draw()
    labels = [t.get_text().replace("−", "-") for t in ax.get_xticklabels() if t.get_text()]
    assert labels and all(float(t).is_integer() for t in labels)
    bar = DasMask().interactive(values).data[0]
    np.testing.assert_allclose(bar.y, values.double().numpy(), rtol=1e-6)
    assert bar.customdata[2].startswith("dimension 2<br>mask value = 0.1")
