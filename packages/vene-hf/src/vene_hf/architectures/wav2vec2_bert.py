"""Wav2Vec2-BERT (``Wav2Vec2BertModel``, ``Wav2Vec2BertForCTC``, ``...ForSequenceClassification``...).

A Conformer encoder over speech features (``encoder.layers[i]``): a half-step feed-forward
(``ffn1``), self-attention (``linear_q``/``linear_k``/``linear_v``/``linear_out``), a
convolution module, a second half-step feed-forward (``ffn2``) and a final norm. Components
are pyvene's: ``block_*``, ``attention_*``, ``query/key/value_output`` and their ``head_*``
forms, ``ffn1_input``/``ffn1_activation``/``ffn1_output`` and the same for ``ffn2``,
``conv_input``/``conv_output`` (the convolution module) and, inside it, ``conv_glu_output`` (after
the GLU) and ``conv_depth_output`` (after the depthwise convolution). Those two are channels-first
inside the model; here they are ``[batch, time, hidden]`` like every other component (a probe
transposes them on the way to the hook and back).
"""

from __future__ import annotations

from torch import Tensor, nn

from vene import LAYER, ComponentSpec, Side
from vene.sites import get_module

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
from ._probes import HookPoint, Probe, Undo, add_point, chain

__all__ = ["FAMILY", "COMPONENTS"]

POINT = "vene_time_major"


def _install_time_major(model: nn.Module, path: str) -> Undo:
    """Route a channels-first ``[batch, channels, time]`` output through a ``[batch, time, channels]`` point."""
    owner = get_module(model, path)
    if POINT in owner._modules:
        return lambda: None
    point = HookPoint()
    undos = [add_point(owner, POINT, point)]

    def hook(module: nn.Module, args: tuple, out: Tensor) -> Tensor | None:
        x = out.transpose(1, 2)
        new = point(x)
        return None if new is x else new.transpose(1, 2)

    undos.append(owner.register_forward_hook(hook).remove)
    return chain(undos)


time_major = Probe(install=_install_time_major)

L = ("encoder", "layers", LAYER)
A = (*L, "self_attn")
CONV = (*L, "conv_module")


def _ffn(name: str) -> dict[str, ComponentSpec]:
    ffn = (*L, name)
    return {
        f"{name}_input": ComponentSpec(ffn, Side.INPUT, dim=hidden, keyword=HS),
        f"{name}_activation": ComponentSpec((*ffn, "intermediate_act_fn"), Side.OUTPUT, dim=intermediate),
        f"{name}_output": ComponentSpec(ffn, Side.OUTPUT, dim=hidden),
    }


COMPONENTS: dict[str, ComponentSpec] = {
    "block_input": ComponentSpec(L, Side.INPUT, dim=hidden, keyword=HS),
    "block_output": ComponentSpec(L, Side.OUTPUT, dim=hidden),
    **_ffn("ffn1"),
    **_ffn("ffn2"),
    **attention_components(
        A, q=(*A, "linear_q"), k=(*A, "linear_k"), v=(*A, "linear_v"), o=(*A, "linear_out"),
        weight=attention_weight(A),
    ),
    "conv_input": ComponentSpec(CONV, Side.INPUT, dim=hidden, keyword=HS),
    "conv_output": ComponentSpec(CONV, Side.OUTPUT, dim=hidden),
    "conv_glu_output": ComponentSpec((*CONV, "glu", POINT), Side.OUTPUT, dim=hidden, context=time_major),
    "conv_depth_output": ComponentSpec(
        (*CONV, "depthwise_conv", POINT), Side.OUTPUT, dim=hidden, context=time_major
    ),
}


FAMILY = Family(
    name="wav2vec2_bert",
    model_types=("wav2vec2-bert",),
    stacks=(Stack(COMPONENTS, num_hidden_layers),),
)
