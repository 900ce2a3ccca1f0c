"""T5 (``T5Model``, ``T5ForConditionalGeneration``, ``T5EncoderModel``, ``T5ForSequenceClassification``).

T5 has two stacks. **Every component name says which one**: ``encoder_<component>`` for the
encoder (``encoder.block[i]``), ``decoder_<component>`` for the decoder's self-attention, MLP and
blocks (``decoder.block[i]``), and ``decoder_cross_<attention component>`` for the decoder's
attention over the encoder states (``decoder_cross_attention_weight``,
``decoder_cross_key_output``...; its keys and values are computed from the encoder output). On a
model with only an encoder (``T5EncoderModel``) the plain names (``block_output``...) mean the
encoder's. Layer counts: ``num_layers`` for the encoder, ``num_decoder_layers`` for the decoder.
Blocks return a tuple; its first element is the hidden state.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from vene import LAYER, ComponentSpec

from ._family import (
    Family,
    Stack,
    attention_components,
    attention_weight,
    block_components,
)

__all__ = ["FAMILY", "ENCODER", "DECODER"]


def _width(c: Any) -> int:
    return int(c.d_model)


def _heads(c: Any) -> int:
    return int(c.num_heads)


def _hdim(c: Any) -> int:
    return int(c.d_kv)


def _ff(c: Any) -> int:
    return int(c.d_ff)


def _attention(attn: tuple, prefix: str) -> dict[str, ComponentSpec]:
    return attention_components(
        attn,
        q=(*attn, "q"),
        k=(*attn, "k"),
        v=(*attn, "v"),
        o=(*attn, "o"),
        prefix=prefix,
        width=_width,
        heads=_heads,
        kv_heads=_heads,
        hdim=_hdim,
        weight=attention_weight(attn, heads=_heads),
    )


def _stack(side: str, ff_index: str) -> dict[str, ComponentSpec]:
    block = (side, "block", LAYER)
    ff = ("layer", ff_index, "DenseReluDense")
    table = {
        **block_components(block, mlp=ff, act=(*ff, "act"), width=_width, mlp_width=_ff),
        **_attention((*block, "layer", "0", "SelfAttention"), ""),
    }
    return {f"{side}_{name}": spec for name, spec in table.items()}


ENCODER: dict[str, ComponentSpec] = _stack("encoder", "1")
DECODER: dict[str, ComponentSpec] = {
    **_stack("decoder", "2"),
    **_attention(("decoder", "block", LAYER, "layer", "1", "EncDecAttention"), "decoder_cross_"),
}


def _plain_names(base: nn.Module) -> str | None:
    """Plain component names mean the encoder's on an encoder-only model."""
    return "encoder_" if getattr(base, "decoder", None) is None else None


FAMILY = Family(
    name="t5",
    model_types=("t5",),
    stacks=(
        Stack(ENCODER, num_layers=lambda c: int(c.num_layers)),
        Stack(DECODER, num_layers=lambda c: int(c.num_decoder_layers)),
    ),
    plain_names=_plain_names,
)
