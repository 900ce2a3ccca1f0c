"""The grid of a sweep: kinds to components, sites resolved through vene's resolvers, recording."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

import torch
from torch import Tensor, nn

from .._config import RepresentationConfig
from .._errors import ConfigError, SiteResolutionError, UnitLocationError, VeneError
from .._sites import Side, Site
from ._executor import Perturbation, site_tensor
from ._runner import Runner

__all__ = ["KINDS", "Model", "parse_kinds", "record", "window_layers"]

KINDS: dict[str, str] = {
    "resid": "block_output",
    "mlp": "mlp_output",
    "attn": "attention_output",
    "heads": "head_attention_value_output",
}
"""A sweep's ``kind`` and the abstract component it patches."""


def parse_kinds(kind: str | Sequence[str]) -> list[str]:
    kinds = [kind] if isinstance(kind, str) else list(kind)
    if not kinds:
        raise ConfigError("kind must name at least one of 'resid', 'mlp', 'attn', 'heads'.")
    for k in kinds:
        if k not in KINDS:
            raise ConfigError(
                f"unknown kind {k!r}; use one of {', '.join(repr(x) for x in KINDS)} "
                "(block_output, mlp_output, attention_output, head_attention_value_output), or a list of them."
            )
    if "heads" in kinds and len(kinds) > 1:
        raise ConfigError("kind='heads' has its own dims (layer x head); sweep it on its own, not in a list.")
    return kinds


class Model:
    """A model seen by a sweep: its blocks, its sites (resolved once, cached), its runner."""

    def __init__(self, model: nn.Module, runner: Runner, registry: Any = None) -> None:
        from ..plugins import default_registry

        self.model = model
        self.runner = runner
        self._pm = (registry or default_registry()).pm
        self._sites: dict[tuple[int, str], Site] = {}
        blocks: list[str] = []
        while True:
            try:
                site = self._resolve(len(blocks), "block_output")
            except SiteResolutionError:
                if not blocks:
                    raise
                break
            if site.side is not Side.OUTPUT:
                raise ConfigError(f"block_output of {type(model).__name__} is not a module output.")
            blocks.append(site.module)
            if len(blocks) > 100000:  # pragma: no cover - a resolver that accepts every layer
                raise ConfigError("the model's resolver accepts any layer index; cannot count the layers.")
        self.blocks: list[str] = blocks

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    def _resolve(self, layer: int, component: str) -> Site:
        key = (layer, component)
        if key not in self._sites:
            rep = RepresentationConfig(layer=layer, component=component)
            try:
                site = self._pm.hook.vene_resolve_site(model=self.model, representation=rep)
            except SiteResolutionError as e:
                if layer == 0 and component == "block_output":
                    raise ConfigError(
                        f"patching sweeps need a model whose layers vene knows (an abstract 'block_output' "
                        f"component); {type(self.model).__name__} has none: {e}. Install vene-hf for Hugging "
                        "Face models, or give the model a vene component table."
                    ) from e
                raise
            if site is None:  # pragma: no cover - core's fallback resolver raises instead
                raise ConfigError(f"no resolver handles {component!r}")
            if site.chunk is not None or site.context is not None:
                raise ConfigError(f"component {component!r} is a fused or probed site, which sweeps do not patch.")
            self._sites[key] = site
        return self._sites[key]

    def site(self, layer: int, component: str) -> Site:
        if not 0 <= layer < self.n_layers:
            raise UnitLocationError(
                f"layer {layer} is out of range: the model has {self.n_layers} layers (0..{self.n_layers - 1})."
            )
        return self._resolve(layer, component)

    @property
    def sites(self) -> dict[tuple[int, str], Site]:
        return self._sites

    def layers(self, layers: Sequence[int] | None) -> list[int]:
        if layers is None:
            return list(range(self.n_layers))
        out = [int(x) for x in layers]
        for x in out:
            if not 0 <= x < self.n_layers:
                raise UnitLocationError(
                    f"layer {x} is out of range: the model has {self.n_layers} layers (0..{self.n_layers - 1})."
                )
        return out

    def heads(self, layer: int) -> int:
        site = self.site(layer, KINDS["heads"])
        if site.heads is None:
            raise ConfigError("the model's head_attention_value_output is not split into heads.")
        return int(site.heads)


def window_layers(layer: int, window: int, n_layers: int) -> list[int]:
    """The ``window`` consecutive layers centred on ``layer``, clipped to the model (ROME)."""
    if not isinstance(window, int) or window < 1:
        raise ConfigError(f"window must be a positive int, got {window!r}.")
    lo = max(0, layer - window // 2)
    hi = min(n_layers, layer - window // 2 + window)
    return list(range(lo, hi))


def check_positions(positions: Sequence[int] | None, seq: int, what: str = "base") -> list[int]:
    if positions is None:
        return list(range(seq))
    out = [int(p) for p in positions]
    for p in out:
        if not 0 <= p < seq:
            raise UnitLocationError(
                f"position {p} is out of range for the {what} input of {seq} positions (0..{seq - 1}); "
                "positions are absolute indices, negative ones are not read from the end."
            )
    return out


def metric_index(metric_pos: int, seq: int) -> int:
    a = metric_pos + seq if metric_pos < 0 else metric_pos
    if not 0 <= a < seq:
        raise UnitLocationError(f"the metric reads position {metric_pos}, out of range for {seq} positions.")
    return a


def record(
    m: Model, inputs: Any, keys: Sequence[tuple[int, str]], perturbations: Sequence[Perturbation] = (),
    read: int | None = None,
) -> tuple[dict[tuple[int, str], Tensor], Tensor]:
    """One run of ``inputs``; returns each site's tensor (``[seq, width]``, batch row 0) and the logits.

    With ``read`` (a position), the logits are ``[batch, vocab]`` at that position only, and the
    runner may compute the head there only.
    """
    mods = dict(m.model.named_modules())
    got: dict[tuple[int, str], Tensor] = {}

    def hook_for(key: tuple[int, str], site: Site) -> Any:
        if site.side is Side.OUTPUT:
            def out_hook(module: nn.Module, args: tuple, output: Any) -> None:
                got[key] = site_tensor(site, args, {}, output)[0].detach()

            return out_hook

        def in_hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            got[key] = site_tensor(site, args, kwargs)[0].detach()

        return in_hook

    with ExitStack() as stack, torch.no_grad():
        for key in keys:
            site = m.sites[key]
            mod = mods[site.module]
            if site.side is Side.OUTPUT:
                stack.enter_context(mod.register_forward_hook(hook_for(key, site)))
            else:
                stack.enter_context(mod.register_forward_pre_hook(hook_for(key, site), with_kwargs=True))
        for pert in perturbations:
            stack.enter_context(pert.module.register_forward_hook(lambda mod, i, o, f=pert.fn: f(o, 0)))
        seq = m.runner.seq_len(inputs)
        logits = m.runner.run(m.model, inputs, keep=None if read is None else seq - read)
        if read is not None:
            logits = logits[:, read - (seq - logits.shape[1])]
    missing = [k for k in keys if k not in got]
    if missing:
        raise VeneError(f"the sites {missing} were not reached in the model's forward.")
    return got, logits
