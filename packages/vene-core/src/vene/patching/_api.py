"""Activation patching and causal tracing sweeps, built on the executor."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._errors import BatchSizeError, ConfigError, UnitLocationError
from ._executor import Patch, Perturbation, execute
from ._grid import KINDS, Model, check_positions, metric_index, parse_kinds, record, window_layers
from ._metrics import metric_name, metric_position
from ._result import PatchingResult
from ._runner import get_runner

__all__ = ["activation_patching", "causal_tracing", "prepare"]


def _check_batch(inputs: Any, what: str) -> None:
    if not isinstance(inputs, Mapping):
        raise ConfigError(f"{what} must be a dict of model inputs (input_ids=..., ...), got {type(inputs).__name__}.")
    for k, v in inputs.items():
        if isinstance(v, Tensor) and v.dim() >= 1 and v.shape[0] != 1:
            raise BatchSizeError(
                f"{what}[{k!r}] has batch size {v.shape[0]}; a patching sweep takes one example (batch 1) "
                "and batches the patched runs itself."
            )


def prepare(model: nn.Module, registry: Any = None) -> Model:
    """The model as sweeps see it (its blocks, sites and runner), through ``registry``'s plugins."""
    return Model(model, get_runner(model, registry), registry)


def _settings(model: nn.Module, **kw: Any) -> dict[str, Any]:
    name = getattr(getattr(model, "config", None), "_name_or_path", None) or getattr(getattr(model, "config", None), "name_or_path", None)
    return {"model": name or type(model).__name__, **kw}


def _grid(
    m: Model, kinds: list[str], layers: list[int], run_positions: list[int], donor_positions: list[int], window: int,
) -> tuple[list[tuple[Any, ...]], list[list[tuple[int, str, int, int, int | None]]]]:
    """Cells as (label, [(layer, component, run_pos, donor_pos, head)])."""
    labels: list[tuple[Any, ...]] = []
    cells: list[list[tuple[int, str, int, int, int | None]]] = []
    if kinds == ["heads"]:
        comp = KINDS["heads"]
        for layer in layers:
            for h in range(m.heads(layer)):
                labels.append((layer, h))
                cells.append([(wl, comp, rp, dp, h) for wl in window_layers(layer, window, m.n_layers)
                              for rp, dp in zip(run_positions, donor_positions)])
        return labels, cells
    for kind in kinds:
        comp = KINDS[kind]
        for layer in layers:
            for rp, dp in zip(run_positions, donor_positions):
                labels.append((kind, layer, rp) if len(kinds) > 1 else (layer, rp))
                cells.append([(wl, comp, rp, dp, None) for wl in window_layers(layer, window, m.n_layers)])
    return labels, cells


def _dims(kinds: list[str], layers: list[int], positions: list[int], m: Model) -> tuple[tuple[str, ...], dict[str, list]]:
    if kinds == ["heads"]:
        nh = {m.heads(x) for x in layers} or {0}
        if len(nh) > 1:
            raise ConfigError("layers with different head counts cannot share a (layer, head) grid; sweep them apart.")
        return ("layer", "head"), {"layer": layers, "head": list(range(nh.pop()))}
    if len(kinds) > 1:
        return ("component", "layer", "position"), {"component": kinds, "layer": layers, "position": positions}
    return ("layer", "position"), {"layer": layers, "position": positions}


def _to_patches(
    cells: list[list[tuple[int, str, int, int, int | None]]], donor: dict[tuple[int, str], Tensor], m: Model
) -> list[list[Patch]]:
    out = []
    for cell in cells:
        ps = []
        for layer, comp, rp, dp, h in cell:
            v = donor[(layer, comp)][dp]
            if h is not None:
                nh = int(m.sites[(layer, comp)].heads or 1)
                v = v.view(nh, -1)[h]
            ps.append(Patch(layer=layer, key=comp, position=rp, value=v, head=h))
        out.append(ps)
    return out


def _needed(m: Model, cells: list[list[tuple[int, str, int, int, int | None]]]) -> list[tuple[int, str]]:
    keys = sorted({(c[0], c[1]) for cell in cells for c in cell})
    for layer, comp in keys:
        m.site(layer, comp)
    return keys


def activation_patching(
    model: nn.Module,
    base: Mapping[str, Any],
    source: Mapping[str, Any],
    metric: Callable[[Tensor], Tensor],
    *,
    kind: str | Sequence[str] = "resid",
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    position_pairs: Sequence[tuple[int, int]] | None = None,
    direction: str = "denoise",
    window: int = 1,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    prefix_reuse: bool = True,
    progress: bool = False,
    registry: Any = None,
) -> PatchingResult:
    """Patch each site of the grid from one input into the other; return the metric per cell.

    ``direction="denoise"`` runs ``base`` with states taken from ``source``; ``"noise"`` runs
    ``source`` with states taken from ``base``. ``position_pairs=[(source_pos, base_pos), ...]``
    aligns inputs of different lengths (and sets the positions); otherwise both inputs must have
    the same number of positions. For ``kind="heads"`` a cell patches one head at every position
    in ``positions`` at once. See docs/patching.md.
    """
    _check_batch(base, "base")
    _check_batch(source, "source")
    if direction not in ("denoise", "noise"):
        raise ConfigError(f"direction must be 'denoise' or 'noise', got {direction!r}.")
    kinds = parse_kinds(kind)
    m = prepare(model, registry)
    run, donor_in = (base, source) if direction == "denoise" else (source, base)
    t_base, t_source = m.runner.seq_len(base), m.runner.seq_len(source)
    if position_pairs is not None:
        if positions is not None:
            raise ConfigError("give positions or position_pairs, not both.")
        pairs = [(int(s), int(b)) for s, b in position_pairs]
        check_positions([s for s, _ in pairs], t_source, "source")
        check_positions([b for _, b in pairs], t_base, "base")
        base_pos = [b for _, b in pairs]
        run_pos, donor_pos = (base_pos, [s for s, _ in pairs]) if direction == "denoise" else ([s for s, _ in pairs], base_pos)
    else:
        if t_base != t_source:
            raise UnitLocationError(
                f"base has {t_base} positions but source has {t_source}; patching position j of one into "
                "the other needs equal lengths. Pass position_pairs=[(source_pos, base_pos), ...] to say "
                "how positions align."
            )
        base_pos = check_positions(positions, t_base)
        run_pos = donor_pos = base_pos
    layer_list = m.layers(layers)
    labels, raw = _grid(m, kinds, layer_list, run_pos, donor_pos, window)
    keys = _needed(m, raw)
    mpos = metric_position(metric)
    t_donor = m.runner.seq_len(donor_in)
    donor, donor_logits = record(m, donor_in, keys, read=metric_index(mpos, t_donor))
    t_run = m.runner.seq_len(run)
    a_run = metric_index(mpos, t_run)
    scores, run_metric = execute(
        model, m.runner, run, _to_patches(raw, donor, m), metric, blocks=m.blocks, sites=m.sites,
        metric_position=a_run, chunk_size=chunk_size, memory_budget=memory_budget, prefix_reuse=prefix_reuse,
        progress=progress, desc=f"patching {'/'.join(kinds)}",
    )
    donor_metric = float(metric(donor_logits).reshape(-1)[0])
    dims, coords = _dims(kinds, layer_list, base_pos, m)
    baselines = {"base": run_metric, "source": donor_metric} if direction == "denoise" else {"base": donor_metric, "source": run_metric}
    return PatchingResult(
        scores=scores.reshape(tuple(len(coords[d]) for d in dims)),
        dims=dims, coords=coords, tokens=None, baselines=baselines, metric=metric_name(metric),
        kind=kinds[0] if len(kinds) == 1 else "custom", method="activation_patching",
        settings=_settings(model, direction=direction, window=window, components=[KINDS[k] for k in kinds],
                           position_pairs=None if position_pairs is None else [list(p) for p in position_pairs]),
    )


def _noise_scale(noise: float | str, emb_weight: Tensor | None, clean_embeds: Tensor) -> float:
    if noise == "auto":
        return 3.0 * float(clean_embeds.float().std())
    if isinstance(noise, bool) or not isinstance(noise, (int, float)):
        raise ConfigError(f"noise must be a number (a multiple of the embeddings' std) or 'auto', got {noise!r}.")
    spread = emb_weight if emb_weight is not None else clean_embeds
    return float(noise) * float(spread.float().std())


def causal_tracing(
    model: nn.Module,
    inputs: Mapping[str, Any],
    subject_positions: Sequence[int],
    metric: Callable[[Tensor], Tensor],
    *,
    kind: str | Sequence[str] = "resid",
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    window: int = 1,
    noise: float | str = 3.0,
    samples: int = 10,
    seed: int = 0,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    prefix_reuse: bool = True,
    progress: bool = False,
    embeddings: str | None = None,
    registry: Any = None,
) -> PatchingResult:
    """Causal tracing (Meng et al. 2022): noise the subject's embeddings, restore clean states.

    Gaussian noise of std ``noise`` x (the std of the embedding matrix) is added to the token
    embeddings at ``subject_positions`` (``noise="auto"``: 3 x the std of this prompt's
    embeddings); ``samples`` noise draws from ``torch.Generator().manual_seed(seed)``. Each cell
    restores one state (or a ``window`` of layers) from the clean run into the noised run; scores
    are averaged over the samples. The noise goes on the output of ``embeddings`` (a module path)
    when given, else of ``model.get_input_embeddings()``, else on ``inputs["inputs_embeds"]``.
    Keyword ``registry`` (all sweeps): the plugins to resolve sites with (default: installed ones).
    """
    _check_batch(inputs, "inputs")
    kinds = parse_kinds(kind)
    if not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"samples must be a positive int, got {samples!r}.")
    m = prepare(model, registry)
    seq = m.runner.seq_len(inputs)
    subj = check_positions(list(subject_positions), seq, "inputs")
    if not subj:
        raise UnitLocationError("subject_positions is empty; give the positions of the subject's tokens.")
    pos = check_positions(positions, seq, "inputs")
    layer_list = m.layers(layers)
    labels, raw = _grid(m, kinds, layer_list, pos, pos, window)
    keys = _needed(m, raw)
    mpos = metric_position(metric)
    a = metric_index(mpos, seq)
    clean, clean_logits = record(m, inputs, keys, read=a)
    clean_metric = float(metric(clean_logits).reshape(-1)[0])
    patches = _to_patches(raw, clean, m)

    direct = "inputs_embeds" in inputs and embeddings is None
    if embeddings is not None:
        emb = dict(model.named_modules()).get(embeddings)
        if emb is None:
            raise ConfigError(f"embeddings={embeddings!r} is not a module of the model (see model.named_modules()).")
    else:
        emb = None if direct else m.runner.embedding_module(model)
    if not direct and emb is None:
        raise ConfigError("causal tracing needs the model's input embeddings (get_input_embeddings()) or inputs_embeds.")
    if direct:
        clean_embeds = inputs["inputs_embeds"][0]
        weight = None
    else:
        assert emb is not None  # refused above when there is no embedding module to noise
        captured: list[Tensor] = []
        handle = emb.register_forward_hook(lambda mod, i, o: captured.append(o.detach()))
        try:
            with torch.no_grad():
                m.runner.run(model, inputs)
        finally:
            handle.remove()
        clean_embeds = captured[0][0]
        w = getattr(emb, "weight", None)
        weight = w.detach() if isinstance(w, Tensor) else None
    scale = _noise_scale(noise, weight, clean_embeds)
    gen = torch.Generator().manual_seed(int(seed))
    draws = torch.randn(samples, len(subj), clean_embeds.shape[-1], generator=gen) * scale
    subj_t = torch.tensor(subj)

    total = torch.zeros(len(patches))
    corrupted = 0.0
    run: Mapping[str, Any]
    perts: tuple[Perturbation, ...]
    for s in range(samples):
        noise_s = draws[s].to(clean_embeds.device, clean_embeds.dtype)
        if direct:
            e = inputs["inputs_embeds"].clone()
            e[0, subj_t] = e[0, subj_t] + noise_s
            run, perts = {**inputs, "inputs_embeds": e}, ()
        else:
            run = inputs

            def add(out: Tensor, offset: int, noise_s: Tensor = noise_s) -> Tensor:
                sel = subj_t >= offset
                if not bool(sel.any()):
                    return out
                out = out.clone()
                out[:, subj_t[sel] - offset] = out[:, subj_t[sel] - offset] + noise_s[sel].to(out.dtype)
                return out

            assert emb is not None
            perts = (Perturbation(module=emb, fn=add),)
        scores, noised = execute(
            model, m.runner, run, patches, metric, blocks=m.blocks, sites=m.sites, metric_position=a,
            chunk_size=chunk_size, memory_budget=memory_budget, prefix_reuse=prefix_reuse,
            perturbations=perts, progress=progress, desc=f"causal tracing {s + 1}/{samples}",
        )
        total += scores
        corrupted += noised
    dims, coords = _dims(kinds, layer_list, pos, m)
    return PatchingResult(
        scores=(total / samples).reshape(tuple(len(coords[d]) for d in dims)),
        dims=dims, coords=coords, tokens=None,
        baselines={"clean": clean_metric, "corrupted": corrupted / samples}, metric=metric_name(metric),
        kind=kinds[0] if len(kinds) == 1 else "custom", method="causal_tracing",
        settings=_settings(model, window=window, noise=noise, noise_std=scale, samples=samples, seed=seed,
                           subject_positions=subj, components=[KINDS[k] for k in kinds]),
    )
