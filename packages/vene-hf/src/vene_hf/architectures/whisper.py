"""Whisper (``WhisperModel``, ``WhisperForConditionalGeneration``, ``WhisperForAudioClassification``).

An encoder over log-mel features (after two convolutions) and a text decoder. As for T5, names
say which stack: ``encoder_<component>`` (``encoder.layers[i]``), ``decoder_<component>`` for the
decoder's self-attention, MLP and blocks, and ``decoder_cross_<attention component>`` for its
attention over the encoder states. **Plain names mean the encoder's**, as pyvene's whisper
components do (``block_output`` is ``encoder_block_output``). The MLP is not a module: ``mlp_input``
is ``fc1``'s input, ``mlp_activation`` the activation's output and ``mlp_output`` ``fc2``'s output.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from vene import LAYER, ComponentSpec

from ._family import Family, Stack, attention_components, attention_weight, block_components

__all__ = ["FAMILY", "ENCODER", "DECODER"]


def _width(c: Any) -> int:
    return int(c.d_model)


def _side(side: str) -> dict[str, ComponentSpec]:
    def heads(c: Any) -> int:
        return int(getattr(c, f"{side}_attention_heads"))

    def hdim(c: Any) -> int:
        return _width(c) // heads(c)

    def ffn(c: Any) -> int:
        return int(getattr(c, f"{side}_ffn_dim"))

    def attention(attn: tuple, prefix: str) -> dict[str, ComponentSpec]:
        return attention_components(
            attn,
            q=(*attn, "q_proj"),
            k=(*attn, "k_proj"),
            v=(*attn, "v_proj"),
            o=(*attn, "out_proj"),
            prefix=prefix,
            width=_width,
            heads=heads,
            kv_heads=heads,
            hdim=hdim,
            weight=attention_weight(attn, heads=heads),
        )

    layer = (side, "layers", LAYER)
    table = {
        **block_components(
            layer, mlp=("fc1",), mlp_out=("fc2",), act=("activation_fn",), width=_width, mlp_width=ffn
        ),
        **attention((*layer, "self_attn"), ""),
    }
    out = {f"{side}_{name}": spec for name, spec in table.items()}
    if side == "decoder":
        out.update(attention((*layer, "encoder_attn"), "decoder_cross_"))
    return out


ENCODER: dict[str, ComponentSpec] = _side("encoder")
DECODER: dict[str, ComponentSpec] = _side("decoder")


def _plain_names(base: nn.Module) -> str | None:
    return "encoder_"


FAMILY = Family(
    name="whisper",
    model_types=("whisper",),
    stacks=(
        Stack(ENCODER, num_layers=lambda c: int(c.encoder_layers)),
        Stack(DECODER, num_layers=lambda c: int(c.decoder_layers)),
    ),
    plain_names=_plain_names,
)
