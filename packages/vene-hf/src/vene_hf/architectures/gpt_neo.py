"""GPT-Neo (``GPTNeoModel``, ``GPTNeoForCausalLM``, ``GPTNeoForSequenceClassification``).

GPT-Neo always computes its attention eagerly (``h[i].attn.attention`` is a ``GPTNeoSelfAttention``)
and passes the probabilities through the ``attn_dropout`` module: ``attention_weight`` is that
module's input, and needs no probe. Blocks return a tuple; its first element is the hidden state.
"""

from __future__ import annotations

from typing import Any

from vene import LAYER, ComponentSpec, Layout, Side

from ._family import Family, Stack, attention_components, block_components, n_heads

__all__ = ["FAMILY", "COMPONENTS"]


def _inner(c: Any) -> int:
    return int(c.intermediate_size or 4 * c.hidden_size)


L = ("h", LAYER)
ATTN = (*L, "attn")
SELF = (*ATTN, "attention")

COMPONENTS: dict[str, ComponentSpec] = {
    **block_components(L, mlp=("mlp",), act=("mlp", "act"), mlp_width=_inner),
    **attention_components(
        ATTN,
        q=(*SELF, "q_proj"),
        k=(*SELF, "k_proj"),
        v=(*SELF, "v_proj"),
        o=(*SELF, "out_proj"),
        weight=ComponentSpec((*SELF, "attn_dropout"), Side.INPUT, heads=n_heads, layout=Layout.BHSD),
    ),
}

FAMILY = Family(
    name="gpt_neo",
    model_types=("gpt_neo",),
    stacks=(Stack(COMPONENTS, num_layers=lambda c: int(c.num_layers)),),
)
