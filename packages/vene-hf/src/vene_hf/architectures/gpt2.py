"""GPT-2 (``GPT2Model``, ``GPT2LMHeadModel``, ``GPT2ForSequenceClassification``...).

Query, key and value come from one fused ``c_attn`` projection laid out ``[q | k | v]``: each is
a ``chunk`` of its output. ``attention_weight`` is probed (see ``_probes``): under the eager
attention that the probe switches to, GPT-2's ``reorder_and_upcast_attn`` path is not taken.
"""

from __future__ import annotations

from typing import Any

from vene import LAYER, ComponentSpec, Side

from ._family import HS, Family, Stack, attention_weight, head_dim, hidden, n_heads

__all__ = ["FAMILY", "COMPONENTS"]


def _inner(c: Any) -> int:
    return int(c.n_inner or 4 * c.n_embd)


L = ("h", LAYER)
ATTN = (*L, "attn")
QKV = (*ATTN, "c_attn")

COMPONENTS: dict[str, ComponentSpec] = {
    "block_input": ComponentSpec(L, Side.INPUT, dim=hidden, keyword=HS),
    "block_output": ComponentSpec(L, Side.OUTPUT, dim=hidden),
    "mlp_input": ComponentSpec((*L, "mlp"), Side.INPUT, dim=hidden, keyword=HS),
    "mlp_activation": ComponentSpec((*L, "mlp", "act"), Side.OUTPUT, dim=_inner),
    "mlp_output": ComponentSpec((*L, "mlp"), Side.OUTPUT, dim=hidden),
    "attention_input": ComponentSpec(ATTN, Side.INPUT, dim=hidden, keyword=HS),
    "attention_output": ComponentSpec(ATTN, Side.OUTPUT, dim=hidden),
    "attention_value_output": ComponentSpec((*ATTN, "c_proj"), Side.INPUT, dim=hidden),
    "head_attention_value_output": ComponentSpec((*ATTN, "c_proj"), Side.INPUT, dim=head_dim, heads=n_heads),
    "attention_weight": attention_weight(ATTN),
    "query_output": ComponentSpec(QKV, Side.OUTPUT, dim=hidden, chunk=(0, 3)),
    "key_output": ComponentSpec(QKV, Side.OUTPUT, dim=hidden, chunk=(1, 3)),
    "value_output": ComponentSpec(QKV, Side.OUTPUT, dim=hidden, chunk=(2, 3)),
    "head_query_output": ComponentSpec(QKV, Side.OUTPUT, dim=head_dim, heads=n_heads, chunk=(0, 3)),
    "head_key_output": ComponentSpec(QKV, Side.OUTPUT, dim=head_dim, heads=n_heads, chunk=(1, 3)),
    "head_value_output": ComponentSpec(QKV, Side.OUTPUT, dim=head_dim, heads=n_heads, chunk=(2, 3)),
}

FAMILY = Family(
    name="gpt2",
    model_types=("gpt2",),
    stacks=(Stack(COMPONENTS, num_layers=lambda c: int(c.n_layer)),),
)
