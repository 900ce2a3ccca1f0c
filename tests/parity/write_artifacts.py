"""Oracle side: save real pyvene 0.1.8 artifacts, with the outputs pyvene gives after loading them.

``python write_artifacts.py OUTDIR`` (under the oracle interpreter) writes ``OUTDIR/<name>/``
as pyvene's ``IntervenableModel.save`` lays it out, the tiny GPT-2 they sit on
(``OUTDIR/gpt2.safetensors``) and ``OUTDIR/expected.json``: for each artifact, the logits of the
intervened run after ``pyvene.IntervenableModel.load``. test_artifacts.py reads them with vene.
"""

from __future__ import annotations

import json
import pathlib
import sys

import pyvene as pv
import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

BASE = [[1, 2, 3, 4], [5, 6, 7, 8]]
SOURCE = [[9, 10, 11, 12], [13, 14, 15, 16]]


def tiny_gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=50, n_positions=16)).eval()


def artifacts() -> dict[str, list[dict]]:
    return {
        "rotation_and_constant": [
            {"layer": 0, "component": "block_output", "intervention_type": pv.RotatedSpaceIntervention},
            {"layer": 1, "component": "mlp_output", "intervention_type": pv.AdditionIntervention,
             "source_representation": torch.linspace(-1, 1, 32)},
        ],
        "low_rank": [
            {"layer": 1, "component": "block_output", "intervention_type": pv.LowRankRotatedSpaceIntervention,
             "low_rank_dimension": 4},
        ],
    }


def main(outdir: str) -> None:
    out = pathlib.Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    gpt2 = tiny_gpt2()
    save_file({k: v.contiguous().clone() for k, v in gpt2.state_dict().items()}, str(out / "gpt2.safetensors"))
    base = {"input_ids": torch.tensor(BASE)}
    source = {"input_ids": torch.tensor(SOURCE)}
    expected = {}
    for name, reps in artifacts().items():
        torch.manual_seed(1)
        im = pv.IntervenableModel(reps, model=gpt2)
        for iv in im.interventions.values():  # trained-looking weights, not the initial ones
            for p in iv.parameters():
                noise = 0.1 * torch.randn_like(p)
                if p.dim() == 2 and p.shape[0] != p.shape[1]:
                    # a tall basis under torch's Householder map: moving the diagonal off +-1
                    # zeroes a column (a degenerate basis, refused by vene's reader), so only
                    # the entries below the diagonal move
                    noise = noise.tril(-1)
                p.data.add_(noise)
        im.save(str(out / name))
        loaded = pv.IntervenableModel.load(str(out / name), model=gpt2)
        n = len(reps)
        sources = [source if "source_representation" not in r else None for r in reps]
        locs = {"sources->base": ([[[1]] * 2] * n, [[[2]] * 2] * n)}
        with torch.no_grad():
            _, logits = loaded(base, sources, locs)
        expected[name] = {"logits": logits.logits.flatten().tolist(), "sources": [s is not None for s in sources]}
    (out / "expected.json").write_text(json.dumps({"base": BASE, "source": SOURCE, "artifacts": expected}))


if __name__ == "__main__":
    main(sys.argv[1])
