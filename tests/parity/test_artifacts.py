"""Artifacts saved by real pyvene 0.1.8 load in vene and give pyvene's numbers.

The oracle step of ``nox -s parity`` ran write_artifacts.py; here vene reads each folder with
``vene._pyvene_artifacts.load_pyvene_artifact`` (no import, no unpickling of code) on the same
GPT-2 weights and must reproduce the logits pyvene gave after its own ``load`` (atol 1e-5).
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest
import torch

OUT = os.environ.get("VENE_PARITY_OUT")
pytestmark = pytest.mark.skipif(OUT is None, reason="run by `nox -s parity`, which sets VENE_PARITY_OUT")


def _setup() -> tuple[pathlib.Path, dict, torch.nn.Module]:
    from safetensors.torch import load_file
    from transformers import GPT2Config, GPT2LMHeadModel

    assert OUT is not None
    root = pathlib.Path(OUT) / "artifacts"
    expected = json.loads((root / "expected.json").read_text())
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=50, n_positions=16)).eval()
    gpt2.load_state_dict(load_file(str(root / "gpt2.safetensors")))
    return root, expected, gpt2


def _run(im, n: int, with_source: list[bool], expected: dict) -> torch.Tensor:
    base = {"input_ids": torch.tensor(expected["base"])}
    source = {"input_ids": torch.tensor(expected["source"])}
    sources = [source if s else None for s in with_source]
    locs = {"sources->base": ([[[1]] * 2] * n, [[[2]] * 2] * n)}
    with torch.no_grad():
        _, out = im(base, sources, locs)
    return out.logits.flatten()


@pytest.mark.parametrize("name", ["rotation_and_constant", "low_rank"])
def test_pyvene_artifact_loads_with_pyvene_numbers(name: str) -> None:
    from vene._pyvene_artifacts import is_pyvene_artifact, load_pyvene_artifact

    root, expected, gpt2 = _setup()
    assert is_pyvene_artifact(str(root / name))
    im = load_pyvene_artifact(str(root / name), gpt2)
    want = expected["artifacts"][name]
    got = _run(im, len(want["sources"]), want["sources"], expected)
    torch.testing.assert_close(got, torch.tensor(want["logits"]), atol=1e-5, rtol=1e-5)


def test_intervenable_model_load_reads_pyvene_artifacts() -> None:
    import vene as pv

    root, expected, gpt2 = _setup()
    im = pv.IntervenableModel.load(str(root / "low_rank"), gpt2)
    want = expected["artifacts"]["low_rank"]
    torch.testing.assert_close(_run(im, 1, want["sources"], expected), torch.tensor(want["logits"]), atol=1e-5, rtol=1e-5)
