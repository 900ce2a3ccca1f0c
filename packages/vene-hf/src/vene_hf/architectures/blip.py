"""BLIP (``BlipForQuestionAnswering``, ``BlipForImageTextRetrieval``: BLIP-ITM).

The components are those of the text encoder (``text_encoder.encoder.layer[i]``), a BERT-style
post-norm layer with a cross-attention over the image features between its self-attention and
its MLP; they mean what they mean for BERT (see ``bert``): ``attention_output`` and
``mlp_output`` are what the sub-block contributes before its residual sum and norm. Dimensions
are read from ``text_config``. Added: ``cross_attention_input`` (the text states that attend to the
image), ``cross_attention_value_output`` (the input of the cross-attention's output projection)
and ``cross_attention_output`` (its output); on the image-text matching model, ``itm_output``:
the two matching logits ``[batch, 2]`` (layer ignored). The text encoder's attention does not go
through transformers' attention functions, so there is no ``attention_weight``.
"""

from __future__ import annotations

from typing import Any

from vene import LAYER, ComponentSpec, Layout, Side

from ._family import HS, Family, Stack, hidden, nested
from .bert import encoder_layer_components

__all__ = ["FAMILY", "COMPONENTS"]


def _two(c: Any) -> int:
    return 2


_cross = ("encoder", "layer", LAYER, "crossattention")
_text = {
    **{k: v for k, v in encoder_layer_components().items() if k != "attention_weight"},
    "cross_attention_input": ComponentSpec((*_cross, "self"), Side.INPUT, dim=hidden, keyword=HS),
    "cross_attention_value_output": ComponentSpec((*_cross, "output", "dense"), Side.INPUT, dim=hidden),
    "cross_attention_output": ComponentSpec((*_cross, "output", "dense"), Side.OUTPUT, dim=hidden),
}

COMPONENTS: dict[str, ComponentSpec] = {
    **nested(_text, path=("text_encoder",), config="text_config"),
    "itm_output": ComponentSpec(("itm_head",), Side.OUTPUT, dim=_two, layout=Layout.BD),
}

FAMILY = Family(
    name="blip",
    model_types=("blip",),
    stacks=(Stack(COMPONENTS, num_layers=lambda c: int(c.text_config.num_hidden_layers)),),
)
