"""Fixtures for vene-train's tests: a registry holding the trainable interventions, and a tiny
MLP classifier with a hand-written forward so every intervened run can be recomputed.

The helpers are handed out as the ``hand`` fixture (not imported from this file), so that these
tests run in one pytest session with other packages' tests, whose conftest has the same name.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch

import vene as pv
from vene.plugins import Registry
from vene_train.interventions import TRAINABLE_INTERVENTIONS

H = 8  # hidden width of the test MLP


class TrainableInterventionsPlugin:
    """vene-train's intervention hook alone, so these tests need none of its other modules."""

    @pv.hookimpl
    def vene_intervention_types(self):
        return TRAINABLE_INTERVENTIONS


@pytest.fixture
def registry() -> Registry:
    """Core's built-ins plus vene-train's interventions, in a fresh manager (no entry points)."""
    pm = pv.get_plugin_manager(load_entrypoints=False)
    pm.register(TrainableInterventionsPlugin(), name="train-interventions")
    return Registry(pm)


def make_mlp(seed: int = 0, n_layer: int = 2) -> torch.nn.Module:
    torch.manual_seed(seed)
    _, _, model = pv.create_mlp_classifier(pv.MLPConfig(h_dim=H, n_layer=n_layer, num_classes=3))
    return model.eval()


@pytest.fixture
def mlp() -> torch.nn.Module:
    return make_mlp()


Edit = Callable[[int, torch.Tensor], torch.Tensor]


def mlp_forward(model: torch.nn.Module, x: torch.Tensor, edit: Edit | None = None) -> torch.Tensor:
    """The MLP classifier's logits, written out: ``h_i = relu(h_{i-1} W_iᵀ + b_i)``.

    ``edit(i, h)`` may replace ``h_i`` (``[batch, positions, width]``, the block_output of
    layer i). A 2-D input is one position, as in the model.
    """
    squeeze = x.dim() == 2
    h = x.unsqueeze(1) if squeeze else x
    for i, block in enumerate(model.mlp.h):
        h = torch.relu(h @ block.ff1.weight.T + block.ff1.bias)
        if edit is not None:
            h = edit(i, h)
    logits = h @ model.score.weight.T + model.score.bias
    return logits.squeeze(1) if squeeze else logits


def hidden(model: torch.nn.Module, x: torch.Tensor, layer: int) -> torch.Tensor:
    """The block_output of ``layer`` (``[batch, positions, width]``), from the hand forward."""
    seen: dict[int, torch.Tensor] = {}

    def keep(i: int, h: torch.Tensor) -> torch.Tensor:
        seen[i] = h
        return h

    with torch.no_grad():
        mlp_forward(model, x, keep)
    return seen[layer]


def at_layer(layer: int, fn: Callable[[torch.Tensor], torch.Tensor]) -> Edit:
    """An edit that applies ``fn`` to the block_output of ``layer`` only."""
    return lambda i, h: fn(h) if i == layer else h


@pytest.fixture
def hand() -> SimpleNamespace:
    """The hand-written computations: ``forward``, ``hidden``, ``at_layer``, ``make_mlp``, ``H``."""
    return SimpleNamespace(forward=mlp_forward, hidden=hidden, at_layer=at_layer, make_mlp=make_mlp, H=H)
