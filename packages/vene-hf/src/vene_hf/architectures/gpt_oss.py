"""GPT-OSS (``GptOssModel``, ``GptOssForCausalLM``, ``GptOssForSequenceClassification``).

Llama's attention (with learned attention sinks, and sliding-window layers); the MLP is a mixture
of experts (``layers[i].mlp``: a ``router`` and the ``experts``, stored as fused 3-D weights).
``mlp_input``/``mlp_output`` are the mixture's input and output. Two probed components reach
inside it, as for Mixtral:

* ``router_output``: the router logits, ``[batch, seq, num_local_experts]``. A changed value
  re-routes as the router does (top-k of the logits, softmax over the k chosen).
* ``expert_output`` with ``moe_key=e``: what expert ``e`` outputs at every position,
  ``[batch, seq, hidden]``, before its routing weight. A change at a position reaches the
  mixture's output scaled by expert e's routing weight there.

Both layouts are handled: transformers 5 (the router returns logits, scores of the top-k and
indices) and 4.5x (the router returns dense scores and indices). There is no ``mlp_activation``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vene import EXPERT, LAYER, ComponentSpec, Side, VeneError
from vene.sites import get_module

from ._family import Family, Stack, decoder_components, hidden, num_hidden_layers, transformers_major
from ._probes import HookPoint, Probe, Undo, add_point, chain, store_input_shape

__all__ = ["FAMILY", "COMPONENTS"]

ROUTER = "vene_router_output"
EXPERTS = "vene_expert_output"


def _num_experts(c: Any) -> int:
    return int(c.num_local_experts)


def _route(router: Any, logits: Tensor, like: tuple) -> tuple:
    """The router's output for ``logits``, in the layout ``like`` (the router's own output)."""
    top_value, top_index = torch.topk(logits, router.top_k, dim=-1)
    scores = F.softmax(top_value, dim=-1, dtype=top_value.dtype)
    if len(like) == 3:  # transformers 5: (logits, top-k scores, indices)
        return logits, scores, top_index
    # transformers 4.5x: (dense scores [tokens, experts], indices)
    return torch.zeros_like(logits).scatter_(1, top_index, scores), top_index


def _install_router(model: nn.Module, path: str) -> Undo:
    # GptOss modules: their sub-modules and sizes are read through Module.__getattr__ (typed Any)
    block: Any = get_module(model, path)
    if ROUTER in block._modules:
        return lambda: None
    point = HookPoint()
    undos = [add_point(block, ROUTER, point)]
    store: dict[str, torch.Size] = {}

    def on_router(router: Any, args: tuple, out: tuple) -> Any:
        x = args[0].reshape(-1, router.weight.shape[-1])
        logits = out[0] if len(out) == 3 else F.linear(x, router.weight, router.bias)
        view = logits.view(*store["shape"], logits.shape[-1])
        new = point(view)
        if new is view:
            return None
        return _route(router, new.reshape(logits.shape), out)

    undos.append(block.register_forward_pre_hook(store_input_shape(store), with_kwargs=True).remove)
    undos.append(block.router.register_forward_hook(on_router).remove)
    return chain(undos)


def _expert(experts: Any, x: Tensor, e: int) -> Tensor:
    """Expert ``e`` of ``GptOssExperts`` on every row of ``x`` (its clamped SwiGLU, for one expert)."""
    if experts.gate_up_proj.device.type == "meta":
        raise VeneError(
            "expert_output needs the expert weights in memory, but they are offloaded (accelerate "
            "device_map with CPU/disk offload). Keep the MoE layers on a device, or hook "
            "mlp_output instead."
        )
    gate_up = x @ experts.gate_up_proj[e] + experts.gate_up_proj_bias[e]
    gate = gate_up[..., ::2].clamp(max=experts.limit)
    up = gate_up[..., 1::2].clamp(min=-experts.limit, max=experts.limit)
    glu = gate * torch.sigmoid(gate * experts.alpha)
    return ((up + 1) * glu) @ experts.down_proj[e] + experts.down_proj_bias[e]


def _weight_of(index: Tensor, weights: Tensor, e: int) -> Tensor:
    """Expert ``e``'s routing weight per token: ``[tokens, 1]``."""
    if transformers_major() >= 5:  # scores of the top-k, aligned with the indices
        return (weights * (index == e)).sum(dim=-1, keepdim=True)
    return weights[:, e : e + 1]  # dense scores [tokens, experts] (transformers 4.5x)


def _install_experts(model: nn.Module, path: str) -> Undo:
    experts: Any = get_module(model, path)
    if EXPERTS in experts._modules:
        return lambda: None
    points = nn.ModuleList(HookPoint() for _ in range(experts.num_experts))
    undos = [add_point(experts, EXPERTS, points)]
    store: dict[str, torch.Size] = {}
    block = get_module(model, path.rpartition(".")[0])

    def on_experts(module: nn.Module, args: tuple, kwargs: dict, out: Tensor) -> Tensor | None:
        x = (args[0] if args else kwargs["hidden_states"]).reshape(-1, module.hidden_size)
        index = args[1] if len(args) > 1 else kwargs["router_indices"]
        weights = args[2] if len(args) > 2 else kwargs["routing_weights"]
        delta = None
        for e, point in enumerate(points):
            # only experts with a hook on their point are computed: each costs a dense MLP pass
            if not (point._forward_hooks or point._forward_pre_hooks):
                continue
            y = _expert(module, x, e)
            y3 = y.view(*store["shape"], y.shape[-1])
            new = point(y3)
            if new is y3:
                continue
            w = _weight_of(index, weights, e)
            d = w.to(y.dtype) * (new.reshape(y.shape) - y)
            delta = d if delta is None else delta + d
        return None if delta is None else out + delta.reshape(out.shape).to(out.dtype)

    undos.append(block.register_forward_pre_hook(store_input_shape(store), with_kwargs=True).remove)
    undos.append(experts.register_forward_hook(on_experts, with_kwargs=True).remove)
    return chain(undos)


router = Probe(install=_install_router)
experts = Probe(install=_install_experts, depth=2)

L = ("layers", LAYER)
COMPONENTS: dict[str, ComponentSpec] = {
    **decoder_components(act=None),
    "router_output": ComponentSpec((*L, "mlp", ROUTER), Side.OUTPUT, dim=_num_experts, context=router),
    "expert_output": ComponentSpec(
        (*L, "mlp", "experts", EXPERTS, EXPERT), Side.OUTPUT, dim=hidden, context=experts
    ),
}

FAMILY = Family(
    name="gpt_oss",
    model_types=("gpt_oss",),
    stacks=(Stack(COMPONENTS, num_hidden_layers),),
    num_experts=_num_experts,
)
