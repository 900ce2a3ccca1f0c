"""The built-in default job: an interchange and a collection on a small model built offline."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ._interventions import CollectIntervention, VanillaIntervention
from ._model import IntervenableModel
from ._models import MLPConfig, create_mlp_classifier


@torch.no_grad()
def main(seed: int = 0) -> Iterator[str]:
    """Train nothing, download nothing: build an MLP, patch one hidden state, report what moved.

    Yields the report's lines; the caller (``vene quickstart``) prints them."""
    torch.manual_seed(seed)
    _, _, mlp = create_mlp_classifier(MLPConfig(input_dim=6, h_dim=16, n_layer=2, num_classes=3))
    base = {"inputs_embeds": torch.randn(4, 6)}
    source = {"inputs_embeds": torch.randn(4, 6)}
    plain_base = mlp(**base)["logits"]
    plain_source = mlp(**source)["logits"]

    patch = IntervenableModel(
        {"layer": 1, "component": "block_output", "intervention_type": VanillaIntervention}, mlp
    )
    _, patched = patch(base, [source], unit_locations={"sources->base": 0})
    patched = patched["logits"]
    yield ("interchange at layer 1 block_output (base <- source):")
    for i in range(4):
        yield (
            f"  example {i}: base logits {_fmt(plain_base[i])} -> patched {_fmt(patched[i])}"
            f" (source {_fmt(plain_source[i])})"
        )
    same = torch.allclose(patched, plain_source, atol=1e-6)
    yield (f"  patched output equals the source's: {same} (the last hidden layer was replaced)")

    collect = IntervenableModel(
        [{"layer": i, "component": "block_output", "intervention_type": CollectIntervention} for i in range(2)],
        mlp,
    )
    (_, activations), _ = collect(base, unit_locations={"base": 0})
    yield ("collected activations:")
    for i, a in enumerate(activations):
        yield (f"  layer {i} block_output: shape {tuple(a.shape)}, mean |h| {a.abs().mean():.4f}")


def _fmt(t: torch.Tensor) -> str:
    return "[" + ", ".join(f"{v:+.3f}" for v in t.tolist()) + "]"
