"""Collect activations, then interchange a subspace and a partition of the MLP output."""
# ruff: noqa: F821 -- record() and shared() are given by the runner (tests/parity/runner.py)
import pyvene as pv
import torch
from transformers import GPT2Config, GPT2LMHeadModel

config = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=50, n_positions=16)
gpt2 = shared("gpt2", GPT2LMHeadModel(config).eval())
base = {"input_ids": torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])}
source = {"input_ids": torch.tensor([[9, 10, 11, 12], [13, 14, 15, 16]])}

collect = pv.IntervenableModel(
    {"layer": 0, "component": "block_output", "intervention_type": pv.CollectIntervention}, model=gpt2
)
(_, collected), _ = collect(base, unit_locations={"base": 2})
record("collected", torch.stack([c for c in collected]))

sub = pv.IntervenableModel({"layer": 1, "component": "mlp_output"}, model=gpt2)
_, out = sub(base, [source], {"sources->base": 1}, subspaces=[[[0, 1, 2, 3]] * 2])
record("subspace", out.logits)

part = pv.IntervenableModel(
    pv.IntervenableConfig(
        [{"layer": 1, "component": "mlp_output", "subspace_partition": [[0, 16], [16, 32]]}],
    ),
    model=gpt2,
)
_, out = part(base, [source], {"sources->base": 1}, subspaces=[[[1]] * 2])
record("partition", out.logits)
