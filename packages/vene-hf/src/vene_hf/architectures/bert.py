"""BERT (``BertModel``, ``BertForMaskedLM``, ``BertLMHeadModel``, ``BertForSequenceClassification``...).

BERT is post-norm: each sub-block adds its output to the residual and then normalises. Here
``attention_output`` and ``mlp_output`` are what the attention and the MLP contribute *before*
that residual sum and norm (the outputs of ``attention.output.dense`` and ``output.dense``), the
same quantity these names denote in pre-norm models; ``mlp_input`` is the normed attention
sub-block result that the MLP reads, and ``block_output`` the layer's output.
"""

from __future__ import annotations

from vene import LAYER, ComponentSpec, Side

from ._family import (
    HS,
    Family,
    Stack,
    attention_components,
    attention_weight,
    hidden,
    intermediate,
    num_hidden_layers,
)

__all__ = ["FAMILY", "COMPONENTS", "encoder_layer_components"]


def encoder_layer_components() -> dict[str, ComponentSpec]:
    """The table of a BERT-style encoder layer (``encoder.layer[i]``), shared by RoBERTa and ESM."""
    layer = ("encoder", "layer", LAYER)
    self_attn = (*layer, "attention", "self")
    dense = (*layer, "attention", "output", "dense")
    return {
        "block_input": ComponentSpec(layer, Side.INPUT, dim=hidden, keyword=HS),
        "block_output": ComponentSpec(layer, Side.OUTPUT, dim=hidden),
        "mlp_input": ComponentSpec((*layer, "intermediate"), Side.INPUT, dim=hidden, keyword=HS),
        "mlp_activation": ComponentSpec((*layer, "intermediate"), Side.OUTPUT, dim=intermediate),
        "mlp_output": ComponentSpec((*layer, "output", "dense"), Side.OUTPUT, dim=hidden),
        **attention_components(
            self_attn,
            q=(*self_attn, "query"),
            k=(*self_attn, "key"),
            v=(*self_attn, "value"),
            o=dense,
            attn_out=dense,
            weight=attention_weight(self_attn),
        ),
    }


COMPONENTS = encoder_layer_components()

FAMILY = Family(name="bert", model_types=("bert",), stacks=(Stack(COMPONENTS, num_hidden_layers),))
