"""Tutorial: activation patching, causal tracing and attribution patching on a tiny model.

    python docs/tutorials/patching_and_tracing.py [--out DIR]

Runs offline in a few seconds: a tiny GPT-2 is built from a config (random weights, so the
numbers illustrate the mechanics, not a finding), then

1. activation patching: every block output (layer x position) of a "corrupted" prompt is
   replaced by the "clean" prompt's, and the logit difference of two tokens is read;
2. the same for MLP and attention outputs, and per attention head;
3. causal tracing (Meng et al. 2022): the subject's embeddings are noised, and each state is
   restored from the clean run, single layers and windows of 3 layers;
4. attribution patching: the gradient approximation of step 1 from a forward and a backward,
   compared with the exact sweep;
5. saving the result as JSON and reading it back.

With a real model, pass its tokenizer's ids instead and label the positions with
``result.with_tokens(tokenizer.convert_ids_to_tokens(ids[0]))``.
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile

import torch
from transformers import GPT2Config, GPT2LMHeadModel

import vene.patching as vp


def main(out: pathlib.Path) -> dict[str, float]:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=4, n_embd=64, n_head=4, vocab_size=200,
                                       bos_token_id=0, eos_token_id=0)).eval()
    g = torch.Generator().manual_seed(0)
    clean = {"input_ids": torch.randint(1, 200, (1, 8), generator=g)}
    corrupted = {"input_ids": clean["input_ids"].clone()}
    corrupted["input_ids"][0, 2] = 7  # the "subject" token differs at position 2
    tokens = [f"tok{int(i)}" for i in clean["input_ids"][0]]
    with torch.no_grad():
        top = model(**clean).logits[0, -1].topk(2).indices.tolist()
    metric = vp.logit_diff(top[0], top[1])  # logit(clean top-1) - logit(clean top-2), last position

    # 1. denoising: run the corrupted prompt, patch each clean block output in
    resid = vp.activation_patching(model, corrupted, clean, metric, kind="resid").with_tokens(tokens)
    print("resid:", resid.dims, tuple(resid.scores.shape), "baselines", resid.baselines)
    print("patching the subject position, by layer:", [round(x, 3) for x in resid.scores[:, 2].tolist()])

    # 2. other components, and heads (one head at every position per cell)
    both = vp.activation_patching(model, corrupted, clean, metric, kind=["mlp", "attn"])
    heads = vp.activation_patching(model, corrupted, clean, metric, kind="heads")
    print("mlp/attn:", both.dims, tuple(both.scores.shape), "heads:", heads.dims, tuple(heads.scores.shape))

    # 3. causal tracing from noise on the subject's embeddings, single states and windows
    prob = vp.target_prob(top[0])
    trace = vp.causal_tracing(model, clean, subject_positions=[2], metric=prob, samples=5, seed=0)
    window = vp.causal_tracing(model, clean, subject_positions=[2], metric=prob, samples=5, seed=0,
                               kind="mlp", window=3)
    print("causal tracing:", trace.baselines, "restoring the last layer at the last position:",
          round(float(trace.scores[-1, -1]), 4))
    print("mlp windows of 3 layers, at the subject:", [round(x, 4) for x in window.scores[:, 2].tolist()])

    # 4. attribution patching: one forward and one backward for the whole grid
    attr = vp.attribution_patching(model, corrupted, clean, metric, kind="resid")
    r = torch.corrcoef(torch.stack([attr.scores.flatten(), resid.scores.flatten()]))[0, 1]
    print(f"attribution vs exact, Pearson r = {float(r):.3f}")

    # 5. results are plain JSON
    path = out / "resid.json"
    resid.save(path)
    back = vp.PatchingResult.load(path)
    assert torch.equal(back.scores, resid.scores) and back.tokens == tokens
    print("saved", path)
    return {"clean_restored": float(trace.scores[-1, -1]), "clean": trace.baselines["clean"], "r": float(r)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=pathlib.Path, default=None)
    args = ap.parse_args()
    if args.out is None:
        with tempfile.TemporaryDirectory() as d:
            main(pathlib.Path(d))
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        main(args.out)
