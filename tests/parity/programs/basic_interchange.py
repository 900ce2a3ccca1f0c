"""Interchange at a block output, then an addition and a zero ablation (pyvene's first tutorial)."""
# ruff: noqa: F821 -- record() and shared() are given by the runner (tests/parity/runner.py)
import pyvene as pv
import torch
from transformers import GPT2Config, GPT2LMHeadModel

config = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=50, n_positions=16)
gpt2 = shared("gpt2", GPT2LMHeadModel(config).eval())
base = {"input_ids": torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])}
source = {"input_ids": torch.tensor([[9, 10, 11, 12], [13, 14, 15, 16]])}

pv_gpt2 = pv.IntervenableModel({"layer": 1, "component": "block_output"}, model=gpt2)
original, intervened = pv_gpt2(base, [source], {"sources->base": 3}, output_original_output=True)
record("original", original.logits)
record("vanilla", intervened.logits)

add = pv.IntervenableModel(
    {"layer": 0, "component": "mlp_output", "intervention_type": pv.AdditionIntervention}, model=gpt2
)
_, out = add(base, [source], {"sources->base": ([[[1]] * 2], [[[2]] * 2])})
record("addition", out.logits)

zero = pv.IntervenableModel(
    pv.IntervenableConfig([{"layer": 1, "component": "attention_output"}], pv.ZeroIntervention), model=gpt2
)
_, out = zero(base, unit_locations={"base": [[[0, 2]] * 2]})
record("zero", out.logits)
