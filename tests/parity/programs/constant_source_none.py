"""A constant-source intervention given a None source is applied (the ROME-style noise run)."""
# ruff: noqa: F821 -- record() and shared() are given by the runner (tests/parity/runner.py)
import pyvene as pv
import torch
from transformers import GPT2Config, GPT2LMHeadModel

config = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=50, n_positions=16)
gpt2 = shared("gpt2", GPT2LMHeadModel(config).eval())
base = {"input_ids": torch.tensor([[1, 2, 3, 4]])}
steer = torch.ones(32)
im = pv.IntervenableModel(
    [
        {"layer": 0, "component": "block_output", "intervention_type": pv.AdditionIntervention,
         "source_representation": steer},
        {"layer": 1, "component": "block_output", "intervention_type": pv.VanillaIntervention},
    ],
    model=gpt2,
)
_, out = im(base, [None, base], {"sources->base": ([None, [[2]]], [[[1]], [[2]]])})
record("logits", out.logits)
