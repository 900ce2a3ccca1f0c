"""A full layer x position block_output patching sweep: vene vs TransformerLens vs a pyvene loop.

    python benchmarks/patching.py [--repeats 3] [--pyvene-cells N] [--skip-peers]

A random-init GPT-2-small shape (12 layers x 768 wide, vocabulary 50257), one 64-token prompt
pair, CPU. Measured in one run, each ratio against the plain forward timed next to it:

* vene's exact sweep (``vene.patching.activation_patching``, 12 x 64 = 768 patched runs);
* TransformerLens's ``patching.get_act_patch_resid_pre`` (one full forward per patched run);
* a pyvene 0.1.8 loop: one ``IntervenableModel`` call per cell.

Both peers do the same work for every cell (full forwards), so ``--peer-cells N`` times N cells
(TransformerLens through ``generic_activation_patch`` with an index of N (layer, position) rows,
the same routine ``get_act_patch_resid_pre`` calls) and scales to 768; the default is all 768.
Times are CPU seconds of the process (all threads), which the other jobs of a shared machine do
not inflate; wall-clock ratios are printed too.
* vene's attribution patching over the same grid.

It also prints the limit: what the 768 patched runs strictly need in plain-forward units (layers
above the site, positions from the patched one on, the unembedding at one position), from a
FLOP count of the blocks and the head. Needs torch, transformers<5, transformer-lens and
pyvene==0.1.8 for the peers (``nox -s bench`` builds that environment).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import vene.patching as vp

L, D, H, V, T = 12, 768, 12, 50257, 64


def flops_limit(n_layers: int = L, d: int = D, vocab: int = V, seq: int = T) -> tuple[float, float]:
    """(needed FLOPs of the sweep, FLOPs of one plain forward), from a per-token count."""

    def token(t: int) -> float:
        return 24 * d * d + 4 * d * (t + 1)  # projections + MLP, attention over t + 1 keys

    plain = sum(n_layers * token(t) for t in range(seq)) + seq * 2 * d * vocab
    need = 0.0
    for layer in range(n_layers):
        for p in range(seq):
            need += sum((n_layers - 1 - layer) * token(t) for t in range(p, seq)) + 2 * d * vocab
    return need, plain


def hf_model():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=L, n_embd=D, n_head=H, vocab_size=V, bos_token_id=V - 1, eos_token_id=V - 1)
    return GPT2LMHeadModel(cfg).eval()


def tl_model():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(0)
    cfg = HookedTransformerConfig(
        n_layers=L, d_model=D, n_heads=H, d_head=D // H, d_mlp=4 * D, d_vocab=V, n_ctx=1024,
        act_fn="gelu_new", normalization_type="LN",
    )
    return HookedTransformer(cfg).eval()


def once(fn) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one call."""
    c, w = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c, time.perf_counter() - w


def plain_time(fn, n: int = 5) -> tuple[float, float]:
    fn()
    ts = [once(fn) for _ in range(n)]
    return statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--peer-cells", type=int, default=T * L, help="cells of each peer to time (scaled to 768)")
    ap.add_argument("--skip-peers", action="store_true", help="vene only (no TransformerLens/pyvene needed)")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    model = hf_model()
    g = torch.Generator().manual_seed(0)
    base = {"input_ids": torch.randint(0, V, (1, T), generator=g)}
    source = {"input_ids": torch.randint(0, V, (1, T), generator=g)}
    metric = vp.logit_diff(11, 12)
    need, plain_flops = flops_limit()
    print(f"limit: the sweep strictly needs {need / plain_flops:.1f} plain forwards (FLOP count)")

    def plain() -> None:
        model(**base)

    def vene_sweep() -> None:
        vp.activation_patching(model, base, source, metric, kind="resid")

    def vene_attr() -> None:
        with torch.enable_grad():
            vp.attribution_patching(model, base, source, metric, kind="resid")

    peers = {}
    if not args.skip_peers:
        import pyvene as pv
        from transformer_lens import patching

        tl = tl_model()
        tl_base, tl_source = base["input_ids"], source["input_ids"]
        _, clean_cache = tl.run_with_cache(tl_source)

        def tl_metric(logits: torch.Tensor) -> torch.Tensor:
            return logits[0, -1, 11] - logits[0, -1, 12]

        import pandas as pd

        grid = [(layer, p) for layer in range(L) for p in range(T)]
        step = max(1, len(grid) // args.peer_cells)
        cells = grid[::step][: args.peer_cells]
        scale = len(grid) / len(cells)
        index = pd.DataFrame(cells, columns=["layer", "pos"])

        def tl_sweep() -> None:
            if len(cells) == len(grid):
                patching.get_act_patch_resid_pre(tl, tl_base, clean_cache, tl_metric)
            else:
                patching.generic_activation_patch(
                    tl, tl_base, clean_cache, tl_metric, patching.layer_pos_patch_setter, "resid_pre",
                    index_df=index,
                )

        ims = [pv.IntervenableModel({"layer": layer, "component": "block_output"}, model) for layer in range(L)]

        def pyvene_loop() -> None:
            for layer, p in cells:
                _, out = ims[layer](base, [source], unit_locations={"sources->base": p})
                metric(out.logits[:, -1])

        peers = {"TransformerLens": tl_sweep, "pyvene loop": pyvene_loop}
        print(f"peers: {len(cells)} of {len(grid)} cells timed, scaled x{scale:.1f}")

    for rep in range(args.repeats):
        rows = {}
        for name, fn in [("vene exact", vene_sweep), *peers.items(), ("vene attribution", vene_attr)]:
            p0 = plain_time(plain)
            cpu, wall = once(fn)
            p1 = plain_time(plain)
            unit_cpu, unit_wall = (p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2
            k = scale if name in peers else 1.0
            rows[name] = (cpu * k, cpu * k / unit_cpu, wall * k / unit_wall)
        print(f"repeat {rep + 1}: plain forward {unit_cpu * 1000:.0f} ms CPU, {unit_wall * 1000:.0f} ms wall")
        for name, (t, units, wall_units) in rows.items():
            print(f"  {name:18s} {t:8.2f} CPU s  {units:7.1f} plain forwards (wall: {wall_units:7.1f})")
        v = rows["vene exact"][1]
        print(f"  vene exact vs limit: {v / (need / plain_flops):.2f}x the strictly needed work")
        if peers:
            print(f"  speed-up vs TransformerLens: {rows['TransformerLens'][1] / v:.2f}x (target >= 3)")
            print(f"  speed-up vs pyvene loop:     {rows['pyvene loop'][1] / v:.2f}x (target >= 6)")
        print(f"  attribution: {rows['vene attribution'][1]:.2f} plain forwards (target <= 5)")


if __name__ == "__main__":
    main()
