"""GPT-NeoX and Pythia (``GPTNeoXModel``, ``GPTNeoXForCausalLM``, ...).

The fused ``query_key_value`` projection is laid out *per head*: viewed as
``[batch, seq, heads, 3 * head_dim]``, head h holds ``[q_h | k_h | v_h]``. A plain ``chunk`` of
its output would mix heads and parts (pyvene leaves these components out for that reason), so
the query/key/value components are probed: the output is split per head into q, k and v (each
``[batch, seq, heads * head_dim]``, heads in order), each passes through a hook point, and the
parts are interleaved back. ``query_output``/``key_output`` are before rotary embeddings.
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
    head_dim,
    n_heads,
    num_hidden_layers,
)

__all__ = ["FAMILY", "COMPONENTS"]


def _layout(c: Any) -> tuple[tuple[int, ...], int]:
    d = head_dim(c)
    return (d, d, d), n_heads(c)


L = ("layers", LAYER)
ATTN = (*L, "attention")
QKV = (*ATTN, "query_key_value")

COMPONENTS: dict[str, ComponentSpec] = {
    **block_components(L, mlp=("mlp",), act=("mlp", "act")),
    # the q/k/v entries of attention_components are replaced by the fused split below
    **attention_components(ATTN, q=QKV, k=QKV, v=QKV, o=(*ATTN, "dense"), weight=attention_weight(ATTN)),
    **fused_qkv_components(QKV, _layout, kv_heads=n_heads),
}

FAMILY = Family(name="gpt_neox", model_types=("gpt_neox",), stacks=(Stack(COMPONENTS, num_hidden_layers),))
