"""Ray sweeps: the speed-up from 1 to 2 workers on this machine, and what N machines would give.

    nox -s bench_ray            # or: python benchmarks/scale_out.py [--prompts 8]

A sweep of activation patching (every layer x position of a 4-layer GPT-2 built from a config)
over a dataset of prompts runs on a local Ray cluster with 1 and then 2 workers (one CPU each),
and in this process with one thread as the reference. Printed: wall times, the speed-up ratio,
the worker's start (actor process, imports, model build: a one-task sweep), the compute
(``RayExecutor.compute_seconds``) and the rest (scheduling, transfer of tasks and results), each
measured on one worker; and the projection to N machines of one worker each, where every
machine starts its worker at the same time and shares the tasks:
``(start + compute + transfer) / (start + (compute + transfer) / N)``.
Ratios only: this machine is shared, its absolute times are noise.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time

import ray
import torch
import transformers

import vene
import vene.patching as vp
import vene_ray.plugin
from vene.plugins import Registry
from vene_ray import RayExecutor

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def build(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = transformers.GPT2Config(n_layer=4, n_embd=256, n_head=4, vocab_size=500, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config).eval()


def dataset(n: int, seq: int) -> list[tuple[dict, dict]]:
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        clean = torch.randint(1, 500, (1, seq), generator=g)
        corrupt = clean.clone()
        corrupt[0, 3] = (clean[0, 3] + 101) % 499 + 1
        out.append(({"input_ids": corrupt}, {"input_ids": clean}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--seq", type=int, default=32)
    args = ap.parse_args()
    pm = vene.get_plugin_manager()
    if pm.get_plugin("ray") is None:
        pm.register(vene_ray.plugin, name="ray")
    registry = Registry(pm)
    factory = functools.partial(build, 0)
    data = dataset(args.prompts, args.seq)
    metric = vp.logit_diff(7, 8)
    kw = dict(layers=range(4), layers_per_task=1, registry=registry)

    torch.set_num_threads(1)
    t = time.perf_counter()
    local = vp.sweep(data, factory, metric, **kw)
    t_local = time.perf_counter() - t

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    walls, compute = {}, {}
    try:
        ex = RayExecutor(workers=1)  # the start of a worker: a sweep of one task
        t = time.perf_counter()
        vp.sweep(data[:1], factory, metric, executor=ex, layers=[0], registry=registry)
        start = time.perf_counter() - t - sum(ex.compute_seconds.values())
        for workers in (1, 2):
            ex = RayExecutor(workers=workers)
            t = time.perf_counter()
            res = vp.sweep(data, factory, metric, executor=ex, **kw)
            walls[workers] = time.perf_counter() - t
            compute[workers] = sum(ex.compute_seconds.values())
            assert torch.allclose(res.scores, local.scores, atol=1e-5), "ray and local results differ"
    finally:
        ray.shutdown()

    n_tasks = args.prompts * 4
    c1, w1 = compute[1], walls[1]
    transfer = max(w1 - start - c1, 0.0)
    print(f"sweep: {args.prompts} prompts x 4 layers x {args.seq} positions = {n_tasks} tasks, "
          f"{args.prompts * 4 * args.seq} patched runs")
    print(f"local (1 thread): {t_local:.2f} s   ray 1 worker: {w1:.2f} s   ray 2 workers: {walls[2]:.2f} s")
    print(f"speed-up 1 -> 2 workers: {w1 / walls[2]:.2f}x")
    shown = f"{transfer:.2f} s (compute / transfer = {c1 / transfer:.1f})" if transfer > 0.02 * w1 else \
        f"below what one run resolves (< {0.02 * w1:.2f} s)"
    print(f"1 worker: start {start:.2f} s, compute {c1:.2f} s, transfer and scheduling {shown}")
    for n in (2, 4, 8, 16):
        print(f"projected speed-up on {n:>2} machines: {(start + c1 + transfer) / (start + (c1 + transfer) / n):.2f}x")


if __name__ == "__main__":
    main()
