"""Mllama, Llama 3.2 Vision (``MllamaModel``, ``MllamaForConditionalGeneration``).

Three stacks, named as pyvene names them: ``language.<component>`` for the text model's
self-attention layers (``language_model.layers[i]``; the cross-attention layers listed in
``text_config.cross_attention_layers`` have no ``self_attn``, reach them with a dotted path),
``vision.<component>`` for the local vision encoder (``vision_model.transformer.layers[i]``) and
``global.<component>`` for the global one (``vision_model.global_transformer.layers[i]``). Plain
names mean the language model's. Vision layers see every tile of every image as one sequence
(``[batch * images * tiles, patches, hidden]``); their MLP is ``fc1``/``activation_fn``/``fc2``.
``attention_weight`` exists for the language model only (``language.attention_weight``).
"""

from __future__ import annotations

from typing import Any

import attrs
from torch import nn

from vene import LAYER, ComponentSpec

from ._family import (
    Family,
    Stack,
    attention_components,
    block_components,
    decoder_components,
    nested,
    transformers_major,
)

__all__ = ["FAMILY", "LANGUAGE", "VISION", "GLOBAL"]


def _v_width(c: Any) -> int:
    return int(c.vision_config.hidden_size)


def _v_heads(c: Any) -> int:
    return int(c.vision_config.attention_heads)


def _v_hdim(c: Any) -> int:
    return _v_width(c) // _v_heads(c)


def _v_ff(c: Any) -> int:
    return int(c.vision_config.intermediate_size)


def _vision(stack: str, prefix: str) -> dict[str, ComponentSpec]:
    layer = ("vision_model", stack, "layers", LAYER)
    a = (*layer, "self_attn")
    table = {
        **block_components(
            layer, mlp=("mlp",), act=("mlp", "activation_fn"), width=_v_width, mlp_width=_v_ff
        ),
        **attention_components(
            a,
            q=(*a, "q_proj"),
            k=(*a, "k_proj"),
            v=(*a, "v_proj"),
            o=(*a, "o_proj"),
            width=_v_width,
            heads=_v_heads,
            kv_heads=_v_heads,
            hdim=_v_hdim,
        ),
    }
    if transformers_major() < 5:  # transformers 4.x calls vision layers with hidden_state=...
        table["block_input"] = attrs.evolve(table["block_input"], keyword="hidden_state")
    return {prefix + name: spec for name, spec in table.items()}


LANGUAGE = nested(decoder_components(), path=("language_model",), config="text_config", prefix="language.")
VISION = _vision("transformer", "vision.")
GLOBAL = _vision("global_transformer", "global.")


def _plain_names(base: nn.Module) -> str | None:
    return "language."


FAMILY = Family(
    name="mllama",
    model_types=("mllama",),
    stacks=(
        Stack(LANGUAGE, num_layers=lambda c: int(c.text_config.num_hidden_layers)),
        Stack(VISION, num_layers=lambda c: int(c.vision_config.num_hidden_layers)),
        Stack(GLOBAL, num_layers=lambda c: int(c.vision_config.num_global_layers)),
    ),
    plain_names=_plain_names,
)
