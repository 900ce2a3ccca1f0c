"""Two sites sharing one source through group_key, then the same two sites in serial mode."""
# ruff: noqa: F821 -- record() and shared() are given by the runner (tests/parity/runner.py)
import pyvene as pv
import torch
from transformers import GPT2Config, GPT2LMHeadModel

config = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=50, n_positions=16)
gpt2 = shared("gpt2", GPT2LMHeadModel(config).eval())
base = {"input_ids": torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])}
s1 = {"input_ids": torch.tensor([[9, 10, 11, 12], [13, 14, 15, 16]])}
s2 = {"input_ids": torch.tensor([[17, 18, 19, 20], [21, 22, 23, 24]])}

grouped = pv.IntervenableModel(
    [
        {"layer": 0, "component": "block_output", "group_key": 0},
        {"layer": 1, "component": "mlp_output", "group_key": 0},
    ],
    model=gpt2,
)
_, out = grouped(base, [s1], {"sources->base": ([[[1]] * 2, [[2]] * 2], [[[1]] * 2, [[2]] * 2])})
record("grouped", out.logits)

serial = pv.IntervenableModel(
    pv.IntervenableConfig(
        [{"layer": 0, "component": "block_output"}, {"layer": 1, "component": "block_output"}],
        mode="serial",
    ),
    model=gpt2,
)
_, out = serial(
    base,
    [s1, s2],
    {"source_0->source_1": ([[[1]] * 2], [[[1]] * 2]), "source_1->base": ([[[2]] * 2], [[[3]] * 2])},
)
record("serial", out.logits)
