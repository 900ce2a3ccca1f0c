"""Mixtral (``MixtralModel``, ``MixtralForCausalLM``, ``MixtralForSequenceClassification``).

Llama's attention; the MLP is a sparse mixture of experts (``layers[i].mlp``: a top-k router
``gate`` and the ``experts``, stored as fused 3-D weights in transformers 5, so no module holds a
single expert). ``mlp_input``/``mlp_output`` are the mixture's input and output. Two probed
components reach inside it:

* ``router_output``: the router logits, ``[batch, seq, num_local_experts]``. A changed value
  re-routes: the top-k experts and their weights are recomputed from it as the router does
  (softmax, top-k, renormalise).
* ``expert_output`` with ``moe_key=e``: what expert ``e`` outputs at every position,
  ``[batch, seq, hidden]``, before its routing weight (computed for every position, routed or
  not). A change at a position reaches the mixture's output scaled by expert e's routing weight
  there, so it does nothing where e is not among the top-k.

There is no ``mlp_activation`` (each expert has its own). These components follow
transformers 5's ``MixtralSparseMoeBlock``; expert weights offloaded to disk or CPU by accelerate
are not supported for ``expert_output``. Under transformers 4.x the mixture is
``layers[i].block_sparse_moe`` (its ``gate`` a linear layer whose logits the block routes itself,
its experts a list of modules); ``mlp_*`` and ``router_output`` resolve there, ``expert_output``
needs transformers 5 (the error says so).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

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


def _install_router(model: nn.Module, path: str) -> Undo:
    block = get_module(model, path)
    if ROUTER in block._modules:
        return lambda: None
    point = HookPoint()
    undos = [add_point(block, ROUTER, point)]
    store: dict[str, torch.Size] = {}

    def on_gate(gate: nn.Module, args: tuple, out: Any) -> Any:
        if isinstance(out, Tensor):  # transformers 4.x: a linear layer; the block routes its logits
            x = out.view(*store["shape"], out.shape[-1])
            new = point(x)
            return None if new is x else new.reshape(out.shape)
        logits, scores, _ = out
        x = logits.view(*store["shape"], logits.shape[-1])
        new = point(x)
        if new is x:
            return None
        flat = new.reshape(logits.shape)
        # route as MixtralTopKRouter does, from the changed logits
        probs = F.softmax(flat.float(), dim=-1)
        top_value, top_index = torch.topk(probs, cast(int, gate.top_k), dim=-1)
        top_value = top_value / top_value.sum(dim=-1, keepdim=True)
        return flat, top_value.to(scores.dtype), top_index

    undos.append(block.register_forward_pre_hook(store_input_shape(store), with_kwargs=True).remove)
    undos.append(cast(nn.Module, block.gate).register_forward_hook(on_gate).remove)
    return chain(undos)


def _expert(experts: nn.Module, x: Tensor, e: int) -> Tensor:
    """Expert ``e`` of ``MixtralExperts`` on every row of ``x`` (its own forward, for one expert)."""
    weight = cast(Tensor, experts.gate_up_proj)
    if weight.device.type == "meta":
        raise VeneError(
            "expert_output needs the expert weights in memory, but they are offloaded (accelerate "
            "device_map with CPU/disk offload). Keep the MoE layers on a device, or hook "
            "mlp_output instead."
        )
    gate, up = F.linear(x, weight[e]).chunk(2, dim=-1)
    act_fn = cast(Callable[[Tensor], Tensor], experts.act_fn)
    return F.linear(act_fn(gate) * up, cast(Tensor, experts.down_proj)[e])


def _install_experts(model: nn.Module, path: str) -> Undo:
    experts = get_module(model, path)
    if EXPERTS in experts._modules:
        return lambda: None
    points = nn.ModuleList(HookPoint() for _ in range(cast(int, experts.num_experts)))
    undos = [add_point(experts, EXPERTS, points)]
    store: dict[str, torch.Size] = {}
    block = get_module(model, path.rpartition(".")[0])

    def on_experts(module: nn.Module, args: tuple, kwargs: dict, out: Tensor) -> Tensor | None:
        x = args[0] if args else kwargs["hidden_states"]
        index = args[1] if len(args) > 1 else kwargs["top_k_index"]
        weights = args[2] if len(args) > 2 else kwargs["top_k_weights"]
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
            w = (weights * (index == e)).sum(dim=-1, keepdim=True)
            d = w.to(y.dtype) * (new.reshape(y.shape) - y)
            delta = d if delta is None else delta + d
        return None if delta is None else out + delta.to(out.dtype)

    undos.append(block.register_forward_pre_hook(store_input_shape(store), with_kwargs=True).remove)
    undos.append(experts.register_forward_hook(on_experts, with_kwargs=True).remove)
    return chain(undos)


def _check_experts(experts: nn.Module) -> str | None:
    if isinstance(experts, nn.ModuleList):
        return (
            "expert_output on Mixtral needs transformers >= 5 (fused expert weights); under "
            "transformers 4.x hook one expert's MLP with a dotted path instead, e.g. "
            "'model.layers[0].block_sparse_moe.experts[3].output' (its routed tokens only)."
        )
    return None


router = Probe(install=_install_router)
experts = Probe(install=_install_experts, depth=2, check=_check_experts)

MLP = "mlp" if transformers_major() >= 5 else "block_sparse_moe"  # transformers 4.x's name
L = ("layers", LAYER)
COMPONENTS: dict[str, ComponentSpec] = {
    **decoder_components(act=None, mlp=MLP),
    "router_output": ComponentSpec((*L, MLP, ROUTER), Side.OUTPUT, dim=_num_experts, context=router),
    "expert_output": ComponentSpec(
        (*L, MLP, "experts", EXPERTS, EXPERT), Side.OUTPUT, dim=hidden, context=experts
    ),
}

FAMILY = Family(
    name="mixtral",
    model_types=("mixtral",),
    stacks=(Stack(COMPONENTS, num_hidden_layers),),
    num_experts=_num_experts,
)
