"""The patching executor: many patched runs per batch, each example routed to its own sites.

A *cell* is one patched run: a set of :class:`Patch` records (a site, a position, an optional
head, the value to write). The executor runs cells in chunks and, for each chunk, exploits what
a patched run can skip:

- **layers below the site are unchanged**: the batch starts with one unpatched row and grows
  between blocks. A cell whose earliest patch is block ``l``'s output joins at block ``l + 1``
  with the recorded unpatched hidden state (patched at its position); a cell patching inside
  block ``l`` (MLP, attention, heads) joins at block ``l``'s input. No row computes a block whose
  result it would share with the unpatched run;
- **positions before the patch are unchanged** (causal models, with a runner that supports it):
  the unpatched prefix is run once and its keys and values are reused, so a chunk runs only the
  positions from its earliest patch on;
- **logits only where the metric reads them**: the runner computes the head at that position
  only when the model allows it.

Results do not depend on the chunk size or on prefix reuse (up to float rounding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

import torch
from attrs import field, frozen
from torch import Tensor, nn

from .._errors import ConfigError, UnitLocationError
from .._sites import Side, Site
from ._runner import Runner

__all__ = ["Patch", "Perturbation", "execute", "site_tensor", "replace_site_tensor", "hidden_arg"]

DEFAULT_BUDGET = 1 << 30  # bytes of activations per chunk when neither chunk_size nor a budget is given


@frozen
class Patch:
    """Write ``value`` at ``position`` (and ``head``) of the site of ``layer``/``key``."""

    layer: int
    key: str
    position: int
    value: Tensor = field(eq=False)
    head: int | None = None


@frozen
class Perturbation:
    """Applied to ``module``'s output in every run: ``fn(output, offset) -> output``."""

    module: nn.Module = field(eq=False)
    fn: Callable[[Tensor, int], Tensor] = field(eq=False)


# ---------------------------------------------------------------------------------------------
# reading and writing a site's tensor inside hooks
# ---------------------------------------------------------------------------------------------
def site_tensor(site: Site, args: tuple, kwargs: dict, output: Any = None) -> Tensor:
    """The tensor of ``site`` in a hook's arguments (input side) or output (output side)."""
    if site.side is Side.OUTPUT:
        if isinstance(output, Tensor):
            return output
        if isinstance(output, (tuple, list)):
            return output[site.index if isinstance(site.index, int) else 0]
        if isinstance(output, dict) or hasattr(output, "__getitem__"):
            return output[site.index]
        raise ConfigError(f"cannot read the output of {site.module!r} ({type(output).__name__}).")
    if site.keyword is not None and site.keyword in kwargs:
        return kwargs[site.keyword]
    if isinstance(site.index, int) and site.index < len(args):
        return args[site.index]
    raise ConfigError(f"cannot find input {site.index!r} of {site.module!r} in its call.")


def replace_site_tensor(site: Site, args: tuple, kwargs: dict, output: Any, new: Tensor) -> Any:
    """Put ``new`` where :func:`site_tensor` found the old tensor; returns what the hook returns."""
    if site.side is Side.OUTPUT:
        if isinstance(output, Tensor):
            return new
        if isinstance(output, (tuple, list)):
            i = site.index if isinstance(site.index, int) else 0
            return type(output)((*output[:i], new, *output[i + 1 :]))
        output[site.index] = new
        return output
    if site.keyword is not None and site.keyword in kwargs:
        return args, {**kwargs, site.keyword: new}
    i = int(site.index)
    return (*args[:i], new, *args[i + 1 :]), kwargs


def hidden_arg(args: tuple, kwargs: dict) -> Tensor:
    """A block's hidden-state input: its first positional argument or ``hidden_states=``."""
    if args and isinstance(args[0], Tensor):
        return args[0]
    if isinstance(kwargs.get("hidden_states"), Tensor):
        return kwargs["hidden_states"]
    raise ConfigError("cannot find the hidden states a block is called with (first argument or hidden_states=).")


def _with_hidden(args: tuple, kwargs: dict, new: Tensor) -> tuple[tuple, dict]:
    if args and isinstance(args[0], Tensor):
        return (new, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": new}


def _write(x: Tensor, site: Site, rows: Tensor, pos: Tensor, heads: Tensor | None, vals: Tensor) -> Tensor:
    x = x.clone()
    if heads is None:
        x[rows, pos] = vals.to(x.dtype)
        return x
    h = int(site.heads or 1)
    view = x.view(*x.shape[:-1], h, x.shape[-1] // h)
    view[rows, pos, heads] = vals.to(x.dtype)
    return x


# ---------------------------------------------------------------------------------------------
# the executor
# ---------------------------------------------------------------------------------------------
@frozen
class _Plan:
    """One chunk: cells (in row order), their join blocks, and the offset of the run."""

    cells: tuple[int, ...]
    joins: tuple[int, ...]
    offset: int


def _join(patches: Sequence[Patch], blocks: Sequence[str], sites: dict[tuple[int, str], Site]) -> int:
    def j(p: Patch) -> int:
        s = sites[(p.layer, p.key)]
        is_block_out = s.side is Side.OUTPUT and s.module == blocks[p.layer] and p.head is None
        return p.layer + 1 if is_block_out else p.layer

    return min(j(p) for p in patches)


def _row_bytes(seq: int, width: int, n_layers: int, vocab: int) -> int:
    # hidden states and the block's intermediates (~16 widths), the KV cache, the logits kept
    return 4 * (seq * width * 16 + 2 * n_layers * seq * width + 2 * vocab)


def _progress(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ConfigError("progress=True needs tqdm, which is not installed: pip install tqdm") from None
    return tqdm(total=total, desc=desc, unit="run")


def execute(
    model: nn.Module,
    runner: Runner,
    inputs: Any,
    cells: Sequence[Sequence[Patch]],
    metric: Callable[[Tensor], Tensor],
    *,
    blocks: Sequence[str],
    sites: dict[tuple[int, str], Site],
    metric_position: int,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    prefix_reuse: bool = True,
    perturbations: Sequence[Perturbation] = (),
    progress: bool = False,
    desc: str = "patching",
) -> tuple[Tensor, float]:
    """Run every cell on ``inputs`` (batch 1); return (the metric per cell, the unpatched metric)."""
    n_layers = len(blocks)
    seq = runner.seq_len(inputs)
    a = metric_position
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ConfigError(f"chunk_size must be a positive int or None, got {chunk_size!r}.")
    for patches in cells:
        for p in patches:
            if not 0 <= p.position < seq:
                raise UnitLocationError(f"position {p.position} is out of range for an input of {seq} positions.")
    prefix = prefix_reuse and runner.supports_prefix(model, inputs)
    keep = seq - a
    mods = {name: mod for name, mod in model.named_modules()}
    block_mods = [mods[b] for b in blocks]

    # 1. the unpatched run, recording every block's hidden input and the last block's output
    recorded: dict[int, Tensor] = {}

    def record_in(k: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            recorded[k] = hidden_arg(args, kwargs).detach()

        return hook

    def record_last(module: nn.Module, args: tuple, output: Any) -> None:
        recorded[n_layers] = (output if isinstance(output, Tensor) else output[0]).detach()

    state = None
    with ExitStack() as stack, torch.no_grad():
        for k, m in enumerate(block_mods):
            stack.enter_context(m.register_forward_pre_hook(record_in(k), with_kwargs=True))
        stack.enter_context(block_mods[-1].register_forward_hook(record_last))
        for pert in perturbations:
            stack.enter_context(pert.module.register_forward_hook(lambda m, i, o, f=pert.fn: f(o, 0)))
        if prefix:
            logits, state = runner.prefill(model, inputs, keep=keep)
        else:
            logits = runner.run(model, inputs, keep=keep)
        base_metric = _read_metric(metric, logits, seq, a, 1)[0]

    # 2. plan the chunks: by earliest patched position (the offset), then by join block
    joins = [_join(c, blocks, sites) for c in cells]
    first = [min(p.position for p in c) for c in cells]
    order = sorted(range(len(cells)), key=lambda i: (first[i], joins[i]))
    width = recorded[0].shape[-1]
    vocab = logits.shape[-1]
    if chunk_size is None:
        budget = memory_budget if memory_budget is not None else DEFAULT_BUDGET
        chunk_size = max(1, int(budget // _row_bytes(seq, width, n_layers, vocab)))
    plans = []
    for start in range(0, len(order), chunk_size):
        chunk = sorted(order[start : start + chunk_size], key=lambda i: joins[i])
        offset = min(min(first[i] for i in chunk), a) if prefix else 0
        plans.append(_Plan(tuple(chunk), tuple(joins[i] for i in chunk), offset))

    scores = torch.empty(len(cells))
    bar = _progress(len(cells), progress, desc)
    try:
        for plan in plans:
            m = _run_chunk(model, runner, inputs, cells, plan, metric, blocks, block_mods, sites, mods,
                           recorded, state, prefix, seq, a, keep, perturbations)
            scores[list(plan.cells)] = m[1:].float().cpu()
            if bar is not None:
                bar.update(len(plan.cells))
    finally:
        if bar is not None:
            bar.close()
    return scores, float(base_metric)


def _read_metric(metric: Callable[[Tensor], Tensor], logits: Tensor, seq: int, a: int, rows: int) -> Tensor:
    # a runner returns the logits of the last positions it ran (or kept): position a is then
    # at a - (seq - n), whether n counts the kept positions or those from the offset on
    at = logits[:, a - (seq - logits.shape[1])]
    out = metric(at)
    if not isinstance(out, Tensor) or tuple(out.shape) != (rows,):
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ConfigError(
            f"the metric returned {got} for logits of shape {tuple(at.shape)}; a metric must return one "
            f"score per example, a tensor of shape ({rows},)."
        )
    return out.detach()


def _run_chunk(
    model: nn.Module,
    runner: Runner,
    inputs: Any,
    cells: Sequence[Sequence[Patch]],
    plan: _Plan,
    metric: Callable[[Tensor], Tensor],
    blocks: Sequence[str],
    block_mods: Sequence[nn.Module],
    sites: dict[tuple[int, str], Site],
    mods: dict[str, nn.Module],
    recorded: dict[int, Tensor],
    state: Any,
    prefix: bool,
    seq: int,
    a: int,
    keep: int,
    perturbations: Sequence[Perturbation],
) -> Tensor:
    n_layers = len(blocks)
    o = plan.offset
    rows_per_layer = [1 + sum(1 for j in plan.joins if j <= k) for k in range(n_layers)]
    joining: dict[int, list[int]] = {}  # join block -> rows
    hooked: dict[tuple[int, str], list[tuple[int, Patch]]] = {}
    for r, (ci, j) in enumerate(zip(plan.cells, plan.joins), start=1):
        joining.setdefault(j, []).append(r)
        for p in cells[ci]:
            s = sites[(p.layer, p.key)]
            at_join = p.layer + 1 == j and s.side is Side.OUTPUT and s.module == blocks[p.layer] and p.head is None
            if not at_join:
                hooked.setdefault((p.layer, p.key), []).append((r, p))
    row_cell = dict(enumerate(plan.cells, start=1))

    def joined(j: int, like: Tensor) -> Tensor:
        rows = joining[j]
        new = recorded[j][:, o:].expand(len(rows), -1, -1).clone().to(like.dtype)
        for i, r in enumerate(rows):
            for p in cells[row_cell[r]]:
                s = sites[(p.layer, p.key)]
                if p.layer + 1 == j and s.side is Side.OUTPUT and s.module == blocks[p.layer] and p.head is None:
                    new[i, p.position - o] = p.value.to(new.dtype)
        return new

    def pre_join(j: int) -> Callable[..., Any]:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> Any:
            h = hidden_arg(args, kwargs)
            return _with_hidden(args, kwargs, torch.cat([h, joined(j, h)], dim=0))

        return hook

    def post_join(module: nn.Module, args: tuple, output: Any) -> Any:
        h = output if isinstance(output, Tensor) else output[0]
        new = torch.cat([h, joined(n_layers, h)], dim=0)
        return new if isinstance(output, Tensor) else type(output)((new, *output[1:]))

    def patcher(site: Site, items: list[tuple[int, Patch]]) -> Callable[..., Any]:
        dev = recorded[0].device
        rows = torch.tensor([r for r, _ in items], device=dev)
        pos = torch.tensor([p.position - o for _, p in items], device=dev)
        has_heads = items[0][1].head is not None
        heads = torch.tensor([p.head for _, p in items], device=dev) if has_heads else None
        vals = torch.stack([p.value for _, p in items]).to(dev)

        if site.side is Side.OUTPUT:
            def out_hook(module: nn.Module, args: tuple, output: Any) -> Any:
                x = site_tensor(site, args, {}, output)
                return replace_site_tensor(site, args, {}, output, _write(x, site, rows, pos, heads, vals))

            return out_hook

        def in_hook(module: nn.Module, args: tuple, kwargs: dict) -> Any:
            x = site_tensor(site, args, kwargs)
            return replace_site_tensor(site, args, kwargs, None, _write(x, site, rows, pos, heads, vals))

        return in_hook

    with ExitStack() as stack, torch.no_grad():
        for pert in perturbations:
            stack.enter_context(pert.module.register_forward_hook(lambda m, i, out, f=pert.fn: f(out, o)))
        for j in sorted(joining):
            if j < n_layers:
                stack.enter_context(block_mods[j].register_forward_pre_hook(pre_join(j), with_kwargs=True))
        # patches first, then rows that join after the last block (hooks run in registration order)
        for key, items in hooked.items():
            site = sites[key]
            by_kind: dict[bool, list[tuple[int, Patch]]] = {}
            for it in items:
                by_kind.setdefault(it[1].head is not None, []).append(it)
            for group in by_kind.values():
                mod = mods[site.module]
                if site.side is Side.OUTPUT:
                    stack.enter_context(mod.register_forward_hook(patcher(site, group)))
                else:
                    stack.enter_context(mod.register_forward_pre_hook(patcher(site, group), with_kwargs=True))
        if n_layers in joining:
            stack.enter_context(block_mods[-1].register_forward_hook(post_join))
        if prefix:
            logits = runner.run_suffix(model, inputs, offset=o, rows_per_layer=rows_per_layer, state=state, keep=keep)
        else:
            logits = runner.run(model, inputs, keep=keep)
        return _read_metric(metric, logits, seq, a, 1 + len(plan.cells))
