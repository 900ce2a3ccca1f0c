"""Backpack GPT-2 (``vene_hf.backpack``: ``BackpackGPT2LMHeadModel``, ``BackpackGPT2Model``).

The GPT-2 trunk's components have GPT-2's names and meanings (``block_output``,
``head_query_output``... on ``gpt2_model.h[i]``). The Backpack's own components, named as pyvene
names them (layer ignored):

* ``sense_output``: the sense vectors of every position, ``[batch, seq, num_senses * n_embd]``; the
  senses are its heads, so unit ``h.pos`` picks one sense of one word (same tensor as
  ``sense_mlp_output``);
* ``sense_block_output``: the sense network's feed-forward block output ``[batch, seq, n_embd]``;
* ``sense_mlp_input`` / ``sense_mlp_activation``: the input and hidden activation of the MLP that
  makes the senses;
* ``sense_weight_input``: what the contextualization network reads (the trunk's last hidden
  state); ``sense_weight_output``: the contextualization weights ``[batch, num_senses, seq, seq]``
  (laid out like attention probabilities, one "head" per sense).
"""

from __future__ import annotations

from typing import Any

from vene import ComponentSpec, Layout, Side

from . import gpt2
from ._family import Family, Stack, hidden, nested

__all__ = ["FAMILY", "COMPONENTS"]


def _senses(c: Any) -> int:
    return int(c.num_senses)


def _sense_inner(c: Any) -> int:
    return int(c.sense_intermediate_scale * c.n_embd)


S = ("sense_network",)
COMPONENTS: dict[str, ComponentSpec] = {
    **nested(gpt2.COMPONENTS, path=("gpt2_model",)),
    "sense_output": ComponentSpec(S, Side.OUTPUT, dim=hidden, heads=_senses),
    "sense_block_output": ComponentSpec((*S, "block"), Side.OUTPUT, dim=hidden),
    "sense_mlp_input": ComponentSpec((*S, "final_mlp"), Side.INPUT, dim=hidden),
    "sense_mlp_activation": ComponentSpec((*S, "final_mlp", "act"), Side.OUTPUT, dim=_sense_inner),
    "sense_mlp_output": ComponentSpec((*S, "final_mlp"), Side.OUTPUT, dim=hidden, heads=_senses),
    "sense_weight_input": ComponentSpec(("sense_weight_net",), Side.INPUT, dim=hidden),
    "sense_weight_output": ComponentSpec(
        ("sense_weight_net",), Side.OUTPUT, heads=_senses, layout=Layout.BHSD
    ),
}

FAMILY = Family(
    name="backpack_gpt2",
    model_types=("backpack-gpt2",),
    stacks=(Stack(COMPONENTS, num_layers=lambda c: int(c.n_layer)),),
)
