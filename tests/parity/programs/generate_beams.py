"""Beam search and several returned sequences with an interchange from a source prompt."""
# ruff: noqa: F821 -- record() and shared() are given by the runner (tests/parity/runner.py)
import pyvene as pv
import torch
from transformers import GPT2Config, GPT2LMHeadModel

config = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=50, n_positions=16, eos_token_id=None)
gpt2 = shared("gpt2", GPT2LMHeadModel(config).eval())
# one example: pyvene 0.1.8 fails on beams over a batch of two (its source is not repeated per beam)
base = {"input_ids": torch.tensor([[1, 2, 3, 4]])}
source = {"input_ids": torch.tensor([[45, 12, 40, 20]])}
im = pv.IntervenableModel({"layer": 1, "component": "block_output"}, model=gpt2)
for beams, returned in ((2, 1), (3, 2)):
    _, out = im.generate(
        base, [source], unit_locations={"sources->base": (3, 3)}, intervene_on_prompt=True,
        max_new_tokens=4, do_sample=False, num_beams=beams, num_return_sequences=returned, pad_token_id=0,
    )
    record(f"beams{beams}_return{returned}", out)
    plain = gpt2.generate(**base, max_new_tokens=4, do_sample=False, num_beams=beams,
                          num_return_sequences=returned, pad_token_id=0)  # the model alone
    record(f"beams{beams}_return{returned}_changed", bool((plain != out).any()))
