"""A DAS rotation, its weights copied across, interchanging 8 rotated dimensions at one position."""
# ruff: noqa: F821 -- record() and shared() are given by the runner (tests/parity/runner.py)
import pyvene as pv
import torch
from transformers import GPT2Config, GPT2LMHeadModel

config = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=50, n_positions=16)
gpt2 = shared("gpt2", GPT2LMHeadModel(config).eval())
base = {"input_ids": torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])}
source = {"input_ids": torch.tensor([[9, 10, 11, 12], [13, 14, 15, 16]])}

im = pv.IntervenableModel(
    {"layer": 0, "component": "block_output", "intervention_type": pv.RotatedSpaceIntervention},
    model=gpt2,
)
rotation = shared("rotation", list(im.interventions.values())[0])
rotation.set_interchange_dim(8)
_, out = im(base, [source], {"sources->base": 2})
record("one_position", out.logits)
