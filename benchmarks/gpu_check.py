"""On a CUDA device: correctness, no host synchronisation in a call, and overhead ratios.

    python benchmarks/gpu_check.py

1. An interchange at ``transformer.h[6].output`` (per-example positions) on a random GPT-2
   12x768 equals the same replacement done with a plain forward hook.
2. A whole call (a batched source run stopped early, then the base run) runs under
   ``torch.cuda.set_sync_debug_mode("error")``: any host-device synchronisation raises.
3. Ratios to the plain forward measured in the same run (CUDA events, median of repeats), for
   batch 8 x 64 and 32 x 256 tokens, through dotted paths and (with vene-hf importable) through
   the abstract ``block_output``.
"""

from __future__ import annotations

import statistics

import torch

import vene as pv
from vene.plugins import Registry


def registry() -> Registry:
    pm = pv.get_plugin_manager(load_entrypoints=False)
    try:
        import vene_hf.plugin

        pm.register(vene_hf.plugin, name="hf")
    except ImportError:
        pass
    return Registry(pm)


def cuda_time(fn, repeats: int = 20) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


@torch.inference_mode()
def main() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=12, n_embd=768, n_head=12)).to(dev).eval()
    reg = registry()
    print(torch.cuda.get_device_name(), "torch", torch.__version__)

    # 1. correctness against a plain hook
    g = torch.Generator(device=dev).manual_seed(0)
    base = {"input_ids": torch.randint(0, 50257, (8, 64), device=dev, generator=g)}
    src = {"input_ids": torch.randint(0, 50257, (8, 64), device=dev, generator=g)}
    pos_s = [[i] for i in range(8)]
    pos_b = [[63 - i] for i in range(8)]
    im = pv.IntervenableModel({"component": "transformer.h[6].output"}, model, registry=reg)
    _, out = im(base, [src], unit_locations={"sources->base": ([pos_s], [pos_b])})
    seen = {}
    h = model.transformer.h[6].register_forward_hook(lambda m, a, o: seen.setdefault("s", o))
    model(**src)
    h.remove()
    s = seen["s"][0] if isinstance(seen["s"], tuple) else seen["s"]

    def put(m, a, o):
        t = (o[0] if isinstance(o, tuple) else o).clone()
        for i in range(8):
            t[i, pos_b[i][0]] = s[i, pos_s[i][0]]
        return (t, *o[1:]) if isinstance(o, tuple) else t

    h = model.transformer.h[6].register_forward_hook(put)
    ref = model(**base).logits
    h.remove()
    err = (out.logits - ref).abs().max().item()
    print(f"1. interchange vs plain hook on CUDA: max |diff| = {err:.2e}", "OK" if err < 1e-4 else "FAIL")

    # 2. no host synchronisation inside a call
    twelve = pv.IntervenableModel(
        [{"layer": i, "component": "block_output", "group_key": 0} for i in range(12)]
        if "hf" in [n for n, _ in reg.pm.list_name_plugin()]
        else [{"component": f"transformer.h[{i}].output", "group_key": 0} for i in range(12)],
        model, registry=reg,
    )
    kw = {"unit_locations": {"sources->base": ([pos_s] * 12, [pos_b] * 12)}}
    twelve(base, [src], **kw)
    torch.cuda.synchronize()
    for name, fn in [("plain forward", lambda: model(**base)),
                     ("1-site interchange", lambda: im(base, [src], unit_locations={"sources->base": ([pos_s], [pos_b])})),
                     ("12-site interchange", lambda: twelve(base, [src], **kw))]:
        torch.cuda.set_sync_debug_mode("error")
        try:
            fn()
            verdict = "no host sync"
        except RuntimeError as e:
            verdict = f"SYNC: {str(e).splitlines()[0]}"
        finally:
            torch.cuda.set_sync_debug_mode(0)
        print(f"2. {name:22s} {verdict}")

    # 3. ratios
    for b, n in [(8, 64), (32, 256)]:
        ratios(model, twelve, reg, b, n, g)


def ratios(model, twelve, reg, b: int, n: int, g: torch.Generator) -> None:
    dev = g.device
    base = {"input_ids": torch.randint(0, 50257, (b, n), device=dev, generator=g)}
    src = {"input_ids": torch.randint(0, 50257, (b, n), device=dev, generator=g)}
    one = pv.IntervenableModel({"component": "transformer.h[6].output"}, model, registry=reg)
    plain = cuda_time(lambda: model(**base))
    t1 = cuda_time(lambda: one(base, [src], unit_locations={"sources->base": 10}))
    t12 = cuda_time(lambda: twelve(base, [src], unit_locations={"sources->base": 10}))
    print(f"3. batch {b} x {n}: plain {plain:.2f} ms; one interchange / 2 plain = {t1 / (2 * plain):.3f}; "
          f"12 sites / 2 plain = {t12 / (2 * plain):.3f}")

if __name__ == "__main__":
    main()
