"""Phi-3 (``Phi3Model``, ``Phi3ForCausalLM``, ``Phi3ForSequenceClassification``).

Query, key and value come from one fused ``qkv_proj`` laid out ``[q | k | v]`` with widths
``heads * head_dim``, ``kv_heads * head_dim``, ``kv_heads * head_dim``: unequal under
grouped-query attention, so the parts are probed rather than chunked. The MLP fuses gate and up
projections; ``mlp_activation`` is ``activation_fn``'s output, ``act(gate)``.
"""

from __future__ import annotations

from typing import Any

from vene import LAYER, ComponentSpec

from ._family import (
    Family,
    Stack,
    attention_components,
    attention_weight,
    block_components,
    fused_qkv_components,
    kv_width,
    num_hidden_layers,
    q_width,
)

__all__ = ["FAMILY", "COMPONENTS"]


def _layout(c: Any) -> tuple[tuple[int, ...], None]:
    return (q_width(c), kv_width(c), kv_width(c)), None


L = ("layers", LAYER)
ATTN = (*L, "self_attn")
QKV = (*ATTN, "qkv_proj")

COMPONENTS: dict[str, ComponentSpec] = {
    **block_components(L, mlp=("mlp",), act=("mlp", "activation_fn")),
    # the q/k/v entries of attention_components are replaced by the fused split below
    **attention_components(ATTN, q=QKV, k=QKV, v=QKV, o=(*ATTN, "o_proj"), weight=attention_weight(ATTN)),
    **fused_qkv_components(QKV, _layout),
}

FAMILY = Family(name="phi3", model_types=("phi3",), stacks=(Stack(COMPONENTS, num_hidden_layers),))
