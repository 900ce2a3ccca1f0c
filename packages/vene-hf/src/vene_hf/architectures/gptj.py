"""GPT-J (``GPTJModel``, ``GPTJForCausalLM``, ``GPTJForSequenceClassification``).

Attention and MLP run in parallel on the same normed input: ``mlp_input`` equals
``attention_input``, and the block output is ``input + attention_output + mlp_output``.
"""

from __future__ import annotations

from typing import Any

from vene import LAYER, ComponentSpec

from ._family import Family, Stack, attention_components, attention_weight, block_components

__all__ = ["FAMILY", "COMPONENTS"]


def _inner(c: Any) -> int:
    return int(c.n_inner or 4 * c.n_embd)


L = ("h", LAYER)
ATTN = (*L, "attn")

COMPONENTS: dict[str, ComponentSpec] = {
    **block_components(L, mlp=("mlp",), act=("mlp", "act"), mlp_width=_inner),
    **attention_components(
        ATTN,
        q=(*ATTN, "q_proj"),
        k=(*ATTN, "k_proj"),
        v=(*ATTN, "v_proj"),
        o=(*ATTN, "out_proj"),
        weight=attention_weight(ATTN),
    ),
}

FAMILY = Family(
    name="gptj",
    model_types=("gptj",),
    stacks=(Stack(COMPONENTS, num_layers=lambda c: int(c.n_layer)),),
)
