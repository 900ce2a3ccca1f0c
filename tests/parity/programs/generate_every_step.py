"""Generation with a constant steering vector at position 0 and no prompt flag."""
# ruff: noqa: F821 -- record() and shared() are given by the runner (tests/parity/runner.py)
import pyvene as pv
import torch
from transformers import GPT2Config, GPT2LMHeadModel

config = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=50, n_positions=16, eos_token_id=None)
gpt2 = shared("gpt2", GPT2LMHeadModel(config).eval())
prompt = {"input_ids": torch.tensor([[1, 2, 3, 4]])}
im = pv.IntervenableModel(
    {"layer": 0, "component": "block_output", "intervention_type": pv.AdditionIntervention,
     "source_representation": torch.linspace(-3, 3, 32)},
    model=gpt2,
)
_, steered = im.generate(prompt, unit_locations={"base": 0}, max_new_tokens=5, do_sample=False, pad_token_id=0)
record("steered", steered)
_, plain = im.generate(prompt, unit_locations=None, intervene_on_prompt=True, max_new_tokens=5, do_sample=False, pad_token_id=0)
record("every_call", plain)
