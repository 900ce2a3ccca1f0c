"""pyvene's extension tables and helpers: an entry in type_to_module_mapping resolves a site."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import vene as pv
from vene.models.constants import CONST_INPUT_HOOK, CONST_OUTPUT_HOOK


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(6, 6) for _ in range(2)])
        self.config = type("Cfg", (), {"hidden": 6})()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x


@pytest.fixture
def tiny_entry():
    pv.type_to_module_mapping[Tiny] = {
        "block_output": ("layers[%s]", CONST_OUTPUT_HOOK),
        "block_input": ("layers[%s]", CONST_INPUT_HOOK),
        "bad": ("layers[%s]", "register_hook"),
    }
    pv.type_to_dimension_mapping[Tiny] = {"block_output": ("missing", "hidden")}
    yield
    del pv.type_to_module_mapping[Tiny]
    del pv.type_to_dimension_mapping[Tiny]


def test_user_entry_is_read_into_a_resolver(tiny_entry) -> None:
    torch.manual_seed(0)
    model = Tiny().eval()
    base, source = torch.randn(3, 4, 6), torch.randn(3, 4, 6)
    im = pv.IntervenableModel({"layer": 0, "component": "block_output"}, model=model)
    _, out = im({"x": base}, [{"x": source}], {"sources->base": 2})
    # independent computation: run layer 0 on both, swap position 2, run layer 1 by hand
    with torch.no_grad():
        h_base = torch.tanh(model.layers[0](base))
        h_src = torch.tanh(model.layers[0](source))
        h_base[:, 2] = h_src[:, 2]
        want = torch.tanh(model.layers[1](h_base))
    torch.testing.assert_close(out, want)
    assert im.representations[next(iter(im.representations))].dim == 6  # first present alternative


def test_gradient_hook_entry_is_refused(tiny_entry) -> None:
    with pytest.raises(pv.SiteResolutionError, match="CONST_INPUT_HOOK or CONST_OUTPUT_HOOK"):
        pv.IntervenableModel({"layer": 0, "component": "bad"}, model=Tiny())


def test_helpers() -> None:
    assert pv.GET_LOC((1, 2), batch_size=2) == [[[[1], [1]], [[2], [2]]]]
    with pytest.raises(pv.ConfigError, match="h.pos"):
        pv.GET_LOC((1, 2), unit="pos")
    with pytest.raises(pv.ConfigError, match="get_batch_size"):
        pv.get_batch_size([1, 2])
    x = torch.linspace(-1, 1, 5)
    mask = pv.sigmoid_boundary(x, torch.tensor(-0.5), torch.tensor(0.5), 0.01)
    assert mask.tolist() == pytest.approx([0, 0.5, 1, 0.5, 0], abs=1e-6)  # at a boundary: one half
    assert pv.count_parameters(nn.Linear(3, 2)) == 8
    assert pv.models.interventions.VanillaIntervention is pv.VanillaIntervention
