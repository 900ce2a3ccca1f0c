"""Attribution patching (the gradient approximation) and path patching (sender -> receiver)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from typing import Any

import torch
from torch import Tensor, nn

from .._errors import ConfigError, UnitLocationError
from .._sites import Side, Site
from ._api import _check_batch, _dims, _settings, prepare
from ._executor import Patch, execute, replace_site_tensor, site_tensor
from ._grid import KINDS, check_positions, metric_index, parse_kinds, record
from ._metrics import metric_name, metric_position
from ._result import PatchingResult

__all__ = ["attribution_patching", "path_patching", "gradients"]


def gradients(
    model: nn.Module, inputs: Mapping[str, Any], metric: Callable[[Tensor], Tensor], keys: Sequence[tuple[int, str]],
    registry: Any = None,
) -> tuple[dict[tuple[int, str], Tensor], dict[tuple[int, str], Tensor], float]:
    """One forward and backward of ``inputs``: each site's activation and d metric / d activation.

    Returns ``(activations, gradients, metric)``; tensors are ``[seq, width]`` (batch row 0).
    The model's parameters get no ``.grad`` (``torch.autograd.grad`` on the activations only).
    """
    m = prepare(model, registry)
    for key in keys:
        m.site(*key)
    mods = dict(model.named_modules())
    acts: dict[tuple[int, str], Tensor] = {}
    deltas: dict[tuple[int, str], Tensor] = {}

    def add_delta(key: tuple[int, str], x: Tensor) -> Tensor:
        acts[key] = x[0].detach()
        d = torch.zeros_like(x, requires_grad=True)
        deltas[key] = d
        return x + d

    def hook_for(key: tuple[int, str], site: Site) -> Any:
        if site.side is Side.OUTPUT:
            def out_hook(module: nn.Module, args: tuple, output: Any) -> Any:
                x = site_tensor(site, args, {}, output)
                return replace_site_tensor(site, args, {}, output, add_delta(key, x))

            return out_hook

        def in_hook(module: nn.Module, args: tuple, kwargs: dict) -> Any:
            x = site_tensor(site, args, kwargs)
            return replace_site_tensor(site, args, kwargs, None, add_delta(key, x))

        return in_hook

    seq = m.runner.seq_len(inputs)
    a = metric_index(metric_position(metric), seq)
    with ExitStack() as stack, torch.enable_grad():
        for key in keys:
            site = m.sites[key]
            mod = mods[site.module]
            if site.side is Side.OUTPUT:
                stack.enter_context(mod.register_forward_hook(hook_for(key, site)))
            else:
                stack.enter_context(mod.register_forward_pre_hook(hook_for(key, site), with_kwargs=True))
        logits = m.runner.run(model, inputs, keep=seq - a)
        value = metric(logits[:, a - (seq - logits.shape[1])])
        if tuple(value.shape) != (1,):
            raise ConfigError(f"the metric returned shape {tuple(value.shape)}; it must return one score per example.")
        order = list(deltas)
        grads = torch.autograd.grad(value.sum(), [deltas[k] for k in order], allow_unused=True)
    out = {k: (g[0].detach() if g is not None else torch.zeros_like(acts[k])) for k, g in zip(order, grads)}
    return acts, out, float(value.detach()[0])


def attribution_patching(
    model: nn.Module,
    base: Mapping[str, Any],
    source: Mapping[str, Any],
    metric: Callable[[Tensor], Tensor],
    *,
    kind: str | Sequence[str] = "resid",
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    position_pairs: Sequence[tuple[int, int]] | None = None,
    registry: Any = None,
) -> PatchingResult:
    """The first-order approximation of activation patching (denoising) over the whole grid.

    ``score = metric(base) + (source_act - base_act) . d metric / d act`` at each cell (for heads:
    summed over ``positions``), from one source forward and one base forward and backward.
    ``scores - baselines["base"]`` is the attribution proper.
    """
    _check_batch(base, "base")
    _check_batch(source, "source")
    kinds = parse_kinds(kind)
    m = prepare(model, registry)
    t_base, t_source = m.runner.seq_len(base), m.runner.seq_len(source)
    if position_pairs is not None:
        pairs = [(int(s), int(b)) for s, b in position_pairs]
        src_pos = check_positions([s for s, _ in pairs], t_source, "source")
        base_pos = check_positions([b for _, b in pairs], t_base, "base")
    else:
        if t_base != t_source:
            raise UnitLocationError(
                f"base has {t_base} positions but source has {t_source}; pass position_pairs=[(source_pos, "
                "base_pos), ...] to say how positions align."
            )
        base_pos = src_pos = check_positions(positions, t_base)
    layer_list = m.layers(layers)
    keys = [(layer, KINDS[k]) for k in kinds for layer in layer_list]
    for key in keys:
        m.site(*key)
    src, src_logits = record(m, source, keys, read=metric_index(metric_position(metric), t_source))
    acts, grads, base_metric = gradients(model, base, metric, keys, registry)
    source_metric = float(metric(src_logits).reshape(-1)[0])
    bp, sp = torch.tensor(base_pos), torch.tensor(src_pos)
    blocks = []
    for k in kinds:
        rows = []
        for layer in layer_list:
            key = (layer, KINDS[k])
            diff = (src[key][sp] - acts[key][bp]).float() * grads[key][bp].float()
            if k == "heads":
                nh = int(m.sites[key].heads or 1)
                rows.append(diff.view(len(base_pos), nh, -1).sum((0, 2)))
            else:
                rows.append(diff.sum(-1))
        blocks.append(torch.stack(rows))
    scores = base_metric + (blocks[0] if len(kinds) == 1 else torch.stack(blocks))
    dims, coords = _dims(kinds, layer_list, base_pos, m)
    return PatchingResult(
        scores=scores, dims=dims, coords=coords, tokens=None,
        baselines={"base": base_metric, "source": source_metric}, metric=metric_name(metric),
        kind=kinds[0] if len(kinds) == 1 else "custom", method="attribution_patching",
        settings=_settings(model, direction="denoise", components=[KINDS[k] for k in kinds]),
    )


Spec = tuple[int, str] | tuple[int, str, int]


def _spec(s: Sequence[Any]) -> tuple[int, str, int | None]:
    if len(s) not in (2, 3):
        raise ConfigError(f"a path-patching site is (layer, kind) or (layer, 'heads', head), got {s!r}.")
    layer, kind = int(s[0]), str(s[1])
    parse_kinds(kind)
    head = int(s[2]) if len(s) == 3 else None
    if (kind == "heads") != (head is not None):
        raise ConfigError(f"{s!r}: give a head index exactly for kind 'heads', as (layer, 'heads', head).")
    return layer, kind, head


def path_patching(
    model: nn.Module,
    base: Mapping[str, Any],
    source: Mapping[str, Any],
    metric: Callable[[Tensor], Tensor],
    *,
    senders: Sequence[Spec],
    receivers: Sequence[Spec],
    positions: Sequence[int] | None = None,
    registry: Any = None,
) -> PatchingResult:
    """Path patching: the effect of each sender on the metric *through the receivers only*.

    For each sender: (1) run ``base`` with the sender's state taken from ``source`` and every
    other site of the senders' and receivers' kinds frozen to its base value (so the change
    reaches the receivers directly, not through other components), recording the receivers;
    (2) run ``base`` with only the receivers' states replaced by those recordings, and read the
    metric. Sites are ``(layer, kind)`` or ``(layer, "heads", head)``; both runs go through the
    executor, one cell per sender. Returns dims ``("sender",)`` with string labels.
    """
    _check_batch(base, "base")
    _check_batch(source, "source")
    m = prepare(model, registry)
    seq = m.runner.seq_len(base)
    if m.runner.seq_len(source) != seq:
        raise UnitLocationError("path_patching needs base and source of the same length.")
    pos = check_positions(positions, seq)
    snd = [_spec(s) for s in senders]
    rcv = [_spec(r) for r in receivers]
    if not snd or not rcv:
        raise ConfigError("path_patching needs at least one sender and one receiver.")
    for layer, kind, _ in snd + rcv:
        m.site(layer, KINDS[kind])
    frozen_kinds = sorted({k for _, k, _ in snd + rcv})
    freeze_keys = [(layer, KINDS[k]) for k in frozen_kinds for layer in range(m.n_layers)]
    for key in freeze_keys:
        m.site(*key)
    base_acts, _ = record(m, base, freeze_keys)
    src_acts, _ = record(m, source, freeze_keys)
    a = metric_index(metric_position(metric), seq)
    rcv_set = {(layer, KINDS[k], h) for layer, k, h in rcv}

    def patch(layer: int, comp: str, p: int, h: int | None, acts: dict) -> Patch:
        v = acts[(layer, comp)][p]
        if h is not None:
            v = v.view(int(m.sites[(layer, comp)].heads or 1), -1)[h]
        return Patch(layer=layer, key=comp, position=p, value=v, head=h)

    # step 1: per sender, freeze everything of these kinds except the sender and the receivers
    step1 = []
    for layer, kind, h in snd:
        comp = KINDS[kind]
        cell = [patch(layer, comp, p, h, src_acts) for p in pos]
        for fl, fc in freeze_keys:
            if fl < layer or (fl == layer and fc != comp):
                continue  # unchanged below the sender anyway
            heads = range(m.heads(fl)) if fc == KINDS["heads"] else [None]
            for fh in heads:
                if (fl, fc, fh) == (layer, comp, h) or (fl, fc, fh) in rcv_set:
                    continue
                cell.extend(patch(fl, fc, p, fh, base_acts) for p in range(seq))
        step1.append(cell)
    recorded: list[dict] = []
    # the receivers' values in step 1 come from recording runs (one per sender)
    for cell in step1:
        got = _record_patched(m, base, cell, [(layer, KINDS[k]) for layer, k, _ in rcv])
        recorded.append(got)
    step2 = [[patch(layer, KINDS[k], p, h, got) for layer, k, h in rcv for p in pos] for got in recorded]
    scores, base_metric = execute(
        model, m.runner, base, step2, metric, blocks=m.blocks, sites=m.sites, metric_position=a,
        prefix_reuse=True,
    )
    labels = [f"{layer}.{k}" + (f".{h}" if h is not None else "") for layer, k, h in snd]
    return PatchingResult(
        scores=scores, dims=("sender",), coords={"sender": labels}, tokens=None,
        baselines={"base": base_metric, "source": float("nan")}, metric=metric_name(metric), kind="custom",
        method="path_patching",
        settings=_settings(model, receivers=[f"{layer}.{k}" + (f".{h}" if h is not None else "") for layer, k, h in rcv],
                           positions=pos),
    )


def _record_patched(m: Any, inputs: Mapping[str, Any], cell: list[Patch], keys: list[tuple[int, str]]) -> dict:
    """Run ``inputs`` with ``cell``'s patches applied (plain hooks), recording ``keys``' tensors."""
    from ._executor import _write

    mods = dict(m.model.named_modules())
    got: dict[tuple[int, str], Tensor] = {}
    by_key: dict[tuple[int, str], list[Patch]] = {}
    for p in cell:
        by_key.setdefault((p.layer, p.key), []).append(p)

    def hook_for(key: tuple[int, str], site: Site) -> Any:
        ps = by_key.get(key, [])

        def apply(x: Tensor) -> Tensor:
            for group in ([p for p in ps if p.head is None], [p for p in ps if p.head is not None]):
                if group:
                    rows = torch.zeros(len(group), dtype=torch.long)
                    pos = torch.tensor([p.position for p in group])
                    heads = torch.tensor([p.head for p in group]) if group[0].head is not None else None
                    x = _write(x, site, rows, pos, heads, torch.stack([p.value for p in group]))
            if key in keys:
                got[key] = x[0].detach()
            return x

        if site.side is Side.OUTPUT:
            return lambda mod, args, out: replace_site_tensor(site, args, {}, out, apply(site_tensor(site, args, {}, out)))
        return lambda mod, args, kw: replace_site_tensor(site, args, kw, None, apply(site_tensor(site, args, kw)))

    with ExitStack() as stack, torch.no_grad():
        for key in set(by_key) | set(keys):
            site = m.sites[key]
            mod = mods[site.module]
            if site.side is Side.OUTPUT:
                stack.enter_context(mod.register_forward_hook(hook_for(key, site)))
            else:
                stack.enter_context(mod.register_forward_pre_hook(hook_for(key, site), with_kwargs=True))
        m.runner.run(m.model, inputs)
    return got
