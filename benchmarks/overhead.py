"""Engine overhead, as ratios to the plain forward measured in the same run.

    python benchmarks/overhead.py [--quick]

On a random-init GPT-2 (12 layers, 768 wide; batch 8, 64 tokens; CPU, inference):
  * one interchange (1 source, 1 site, ``transformer.h[6].output``) / (2 plain forwards)
  * 12 sites, one per layer, one group fed by one source / (2 plain forwards) (pyvene 0.1.8 needs
    about 11.7 plain forwards for this)
  * the same through the abstract component ``block_output`` when vene-hf is installed
and, on a 2-layer 64-wide GPT-2 with a 128-token vocabulary, the per-call overhead in microseconds beyond the plain
forwards that the call needs. Timings interleave the variants and keep the median of many
repeats, because the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import vene as pv


def gpt2(n_layer: int, n_embd: int, n_head: int, vocab: int = 50257):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(
        n_layer=n_layer, n_embd=n_embd, n_head=n_head, vocab_size=vocab, n_positions=1024,
        bos_token_id=vocab - 1, eos_token_id=vocab - 1,
    )
    return GPT2LMHeadModel(cfg).eval()


def timeit(fns: dict, repeats: int, inner: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, interleaved round-robin."""
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            for _ in range(inner):
                fn()
            samples[k].append((time.perf_counter() - t) / inner)
    return {k: statistics.median(v) for k, v in samples.items()}


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args()
    repeats = 5 if args.quick else 15

    model = gpt2(12, 768, 12)
    g = torch.Generator().manual_seed(0)
    base = {"input_ids": torch.randint(0, 50257, (8, 64), generator=g)}
    source = {"input_ids": torch.randint(0, 50257, (8, 64), generator=g)}

    one = pv.IntervenableModel({"component": "transformer.h[6].output"}, model)
    twelve = pv.IntervenableModel(
        [{"component": f"transformer.h[{i}].output", "group_key": 0} for i in range(12)], model
    )
    fns = {
        "plain": lambda: model(**base),
        "one_site": lambda: one(base, [source], unit_locations={"sources->base": 10}),
        "twelve_sites": lambda: twelve(base, [source], unit_locations={"sources->base": 10}),
    }
    try:
        abstract = pv.IntervenableModel(
            [{"layer": i, "component": "block_output", "group_key": 0} for i in range(12)], model
        )
        fns["twelve_abstract"] = lambda: abstract(base, [source], unit_locations={"sources->base": 10})
    except pv.VeneError as e:
        print(f"(abstract components unavailable: {e})")
    t = timeit(fns, repeats)
    plain = t["plain"]
    print(f"GPT-2 12x768, batch 8 x 64 tokens, CPU threads={torch.get_num_threads()}")
    print(f"  plain forward                      {plain * 1e3:8.1f} ms")
    print(f"  one interchange  / (2 plain)       {t['one_site'] / (2 * plain):8.3f}  (target <= 1.10)")
    print(f"  12 sites, 1 group / (2 plain)      {t['twelve_sites'] / (2 * plain):8.3f}  (target <= 1.15)")
    if "twelve_abstract" in t:
        print(f"  12 sites via block_output / (2 plain) {t['twelve_abstract'] / (2 * plain):5.3f}  (target <= 1.15)")

    # a small vocabulary, so that the source run (which stops after the site) costs about as
    # much as a plain forward and the difference is the engine's own work
    small = gpt2(2, 64, 4, vocab=128)
    sb = {"input_ids": torch.randint(0, 128, (8, 64), generator=g)}
    ss = {"input_ids": torch.randint(0, 128, (8, 64), generator=g)}
    im = pv.IntervenableModel({"component": "transformer.h[1].output"}, small)
    collect = pv.IntervenableModel(
        {"component": "transformer.h[1].output", "intervention_type": pv.CollectIntervention}, small
    )
    ts = timeit(
        {
            "plain": lambda: small(**sb),
            "interchange": lambda: im(sb, [ss], unit_locations={"sources->base": 3}),
            "collect": lambda: collect(sb, unit_locations={"base": 3}),
        },
        repeats * 4,
        inner=5,
    )
    p = ts["plain"]
    print("GPT-2 2x64 (vocab 128), batch 8 x 64 tokens: per-call overhead beyond the plain forwards")
    print(f"  plain forward                      {p * 1e6:8.0f} us")
    print(f"  interchange (2 forwards)           {(ts['interchange'] - 2 * p) * 1e6:8.0f} us")
    print(f"  collect (1 forward)                {(ts['collect'] - p) * 1e6:8.0f} us")


if __name__ == "__main__":
    main()
