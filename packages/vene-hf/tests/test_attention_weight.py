"""``attention_weight``: attention probabilities under the default SDPA attention.

* Collected probabilities equal ``output_attentions`` of the same model run eagerly.
* Replacing them really changes the output: setting every head's probabilities to the identity
  (each query attends to itself only) equals replacing the input of the output projection with
  the values of each position, done with plain hooks; for GPT-2 and Llama, swapping one head's
  probability row between inputs equals a hand-written attention with that row swapped.
* The model's attention implementation, configs and modules are exactly as before after every
  call, also when the intervention raises; nothing is a KeyError.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import transformers
from conftest import (
    CASES,
    attention_input,
    first_output,
    gpt2_attention,
    llama_attention,
    model_of,
    run_with_attention_output,
    selected_families,
)
from test_architectures import EXPECTED, capture, kv_heads, run_replacing
from torch import nn

import vene as pv
from vene_hf.architectures import FAMILIES, resolve_site

LAYER = 1


def weight_components(family: str) -> list[str]:
    if family == "t5":
        return ["encoder_attention_weight", "decoder_attention_weight", "decoder_cross_attention_weight"]
    return sorted(c for c in FAMILIES[family].components if c.endswith("attention_weight"))


CASES_AW = [pytest.param(f, c, id=f"{f}-{c}") for f in selected_families() for c in weight_components(f)]


def eager_attentions(family: str, component: str, inputs: dict) -> torch.Tensor:
    """``output_attentions`` of an eager copy of the model (same weights)."""
    model = CASES[family].build("lm")
    model.set_attn_implementation("eager")
    if family == "backpack_gpt2":  # the attention is the GPT-2 trunk's, which reports it
        model = model.backpack.gpt2_model
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    name = {
        "encoder_attention_weight": "encoder_attentions",
        "decoder_attention_weight": "decoder_attentions",
        "decoder_cross_attention_weight": "cross_attentions",
    }.get(component, "attentions")
    return getattr(out, name)[LAYER]


def skip_if_unprobed_on_4x(model: nn.Module, component: str) -> None:
    """transformers 4.x: families whose attention does not go through its attention functions
    (BERT, T5, GPT-J... before their transformers 5 rewrite) refuse attention_weight, by design."""
    try:
        resolve_site(model, pv.RepresentationConfig(layer=LAYER, component=component))
    except pv.SiteResolutionError as e:
        if "cannot be probed" in str(e) and int(transformers.__version__.split(".")[0]) < 5:
            pytest.skip(str(e))
        raise


def state_of(model: nn.Module) -> tuple:
    """What the probe may touch: module names, forward hooks, attention settings of every config."""
    configs = {id(m.config): m.config for m in model.modules() if hasattr(m, "config")}
    return (
        [n for n, _ in model.named_modules()],
        [(n, dict(m._forward_hooks), dict(m._forward_pre_hooks)) for n, m in model.named_modules()],
        sorted((k, vars(c).get("_attn_implementation_internal", "<unset>")) for k, c in configs.items()),
    )


@pytest.mark.parametrize(("family", "component"), CASES_AW)
def test_collected_probabilities_equal_eager_output_attentions(
    family: str, component: str, registry: Any
) -> None:
    model = model_of(family)
    skip_if_unprobed_on_4x(model, component)
    inputs = CASES[family].inputs(0)
    with torch.no_grad():  # transformers adds its own output-capturing hooks at a first forward
        model(**inputs)
    before = state_of(model)
    im = pv.IntervenableModel(
        {"layer": LAYER, "component": component, "intervention_type": pv.CollectIntervention},
        model,
        registry=registry,
    )
    (_, collected), out = im(inputs, unit_locations=None)
    want = eager_attentions(family, component, inputs)
    torch.testing.assert_close(collected[0], want, rtol=1e-5, atol=1e-6)
    # collecting leaves the output as the plain model computes it
    with torch.no_grad():
        torch.testing.assert_close(first_output(out), first_output(model(**inputs)), rtol=1e-5, atol=1e-5)
    assert state_of(model) == before
    # one query row per head at a position: unit h.pos
    im = pv.IntervenableModel(
        {
            "layer": LAYER,
            "component": component,
            "unit": "h.pos",
            "intervention_type": pv.CollectIntervention,
        },
        model,
        registry=registry,
    )
    (_, rows), _ = im(inputs, unit_locations={"base": [[[[1], [3]], [[2], [4]]]]})
    torch.testing.assert_close(rows[0][0, 0, 0], want[0, 1, 2], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rows[0][1, 0, 0], want[1, 3, 4], rtol=1e-5, atol=1e-6)


def _identity(base: torch.Tensor, source: Any = None) -> torch.Tensor:
    s, k = base.shape[-2:]
    return torch.eye(s, k, dtype=base.dtype).expand_as(base)


@pytest.mark.parametrize(("family", "component"), CASES_AW)
def test_identity_probabilities_equal_values_fed_to_the_output_projection(
    family: str, component: str, registry: Any
) -> None:
    """probs = I means each query reads its own value: ctx[b, s, head j] = v[b, s, kv head of j]."""
    model = model_of(family)
    skip_if_unprobed_on_4x(model, component)
    before = state_of(model)
    inputs = CASES[family].inputs(0)
    im = pv.IntervenableModel(
        {"layer": LAYER, "component": component, "intervention": _identity}, model, registry=registry
    )
    _, out = im(inputs, unit_locations=None)

    prefix = component.removesuffix("attention_weight")
    exp = EXPECTED[family]
    v = capture(model, exp[f"{prefix}value_output"], inputs)
    queries = capture(model, exp[f"{prefix}attention_value_output"], inputs).shape[1]
    v = v[:, :queries]  # cross-attention: probs = I picks the first `queries` encoder positions
    cfg = getattr(model.config, "text_config", model.config)  # a multimodal model's language model
    h, kvh = (cfg.num_heads, cfg.num_heads) if family == "t5" else (cfg.num_attention_heads, kv_heads(cfg))
    b, s, width = v.shape
    d = width // kvh
    ctx = v.view(b, s, kvh, d).repeat_interleave(h // kvh, dim=2).reshape(b, s, h * d)
    want = run_replacing(model, exp[f"{prefix}attention_value_output"], inputs, lambda x: ctx)
    torch.testing.assert_close(first_output(out), want, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(want, first_output(model(**inputs)), atol=1e-4)
    assert state_of(model) == before


PATHS = {"gpt2": "transformer.h.1.attn", "llama": "model.layers.1.self_attn"}


@pytest.mark.parametrize("family", [f for f in ("gpt2", "llama") if f in selected_families()])
def test_probability_row_interchange_matches_hand_written_attention(family: str, registry: Any) -> None:
    model = model_of(family)
    base, source = CASES[family].inputs(0), CASES[family].inputs(1)
    heads, src_pos, base_pos = [[2], [0]], [[3], [4]], [[3], [4]]
    im = pv.IntervenableModel(
        {"layer": LAYER, "component": "attention_weight", "unit": "h.pos"}, model, registry=registry
    )
    locs = ([[heads, src_pos]], [[heads, base_pos]])
    _, out = im(base, [source], unit_locations={"sources->base": locs})

    def attention(x: torch.Tensor, edit: Any) -> torch.Tensor:
        attn = model.get_submodule(PATHS[family])
        return (
            gpt2_attention(attn, x, edit)
            if family == "gpt2"
            else llama_attention(attn, x, model.config, edit)
        )

    captured: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        attention(attention_input(model, PATHS[family], source), lambda n, t: captured.setdefault(n, t))
    src = captured["probs"]

    def swap(name: str, t: torch.Tensor) -> torch.Tensor:
        if name != "probs":
            return t
        t = t.clone()
        for b in range(2):
            t[b, heads[b][0], base_pos[b][0]] = src[b, heads[b][0], src_pos[b][0]]
        return t

    with torch.no_grad():
        value = attention(attention_input(model, PATHS[family], base), swap)
    want = run_with_attention_output(model, PATHS[family], base, value).logits
    torch.testing.assert_close(out.logits, want, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(want, model(**base).logits, atol=1e-5)


def test_attention_implementation_restored_after_an_error(registry: Any) -> None:
    model = model_of("llama")
    before = state_of(model)
    assert model.config._attn_implementation == "sdpa"

    def boom(base: torch.Tensor, source: Any = None) -> torch.Tensor:
        assert model.config._attn_implementation != "sdpa"  # eager attention while probed
        raise RuntimeError("boom")

    im = pv.IntervenableModel(
        {"layer": LAYER, "component": "attention_weight", "intervention": boom}, model, registry=registry
    )
    with pytest.raises(RuntimeError, match="boom"):
        im(CASES["llama"].inputs(0), unit_locations=None)
    assert state_of(model) == before
    assert model.config._attn_implementation == "sdpa"


def test_unset_attention_implementation_is_restored_unset(registry: Any) -> None:
    model = CASES["gpt2"].build("lm")
    vars(model.config).pop("_attn_implementation_internal")
    im = pv.IntervenableModel(
        {"layer": 0, "component": "attention_weight", "intervention_type": pv.CollectIntervention},
        model,
        registry=registry,
    )
    im(CASES["gpt2"].inputs(0), unit_locations=None)
    assert "_attn_implementation_internal" not in vars(model.config)


def test_several_weight_sites_and_other_sites_together(registry: Any) -> None:
    """Two layers' probabilities and a head component in one model: one switch, all restored."""
    model = model_of("llama")
    before = state_of(model)
    inputs = CASES["llama"].inputs(0)
    reps = [
        {"layer": 0, "component": "attention_weight", "intervention_type": pv.CollectIntervention},
        {"layer": 1, "component": "attention_weight", "intervention_type": pv.CollectIntervention},
        {
            "layer": 1,
            "component": "head_query_output",
            "unit": "h.pos",
            "intervention_type": pv.CollectIntervention,
        },
    ]
    im = pv.IntervenableModel(reps, model, registry=registry)
    (_, collected), _ = im(inputs, unit_locations={"base": [None, None, [[[0], [1]], [[2], [3]]]]})
    model_eager = CASES["llama"].build("lm")
    model_eager.set_attn_implementation("eager")
    with torch.no_grad():
        attentions = model_eager(**inputs, output_attentions=True).attentions
    torch.testing.assert_close(collected[0], attentions[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(collected[1], attentions[1], rtol=1e-5, atol=1e-6)
    assert collected[2].shape == (2, 1, 1, 4)
    assert state_of(model) == before


def test_works_when_the_model_is_already_eager(registry: Any) -> None:
    model = CASES["qwen2"].build("lm")
    model.set_attn_implementation("eager")
    inputs = CASES["qwen2"].inputs(0)
    im = pv.IntervenableModel(
        {"layer": 1, "component": "attention_weight", "intervention": _identity}, model, registry=registry
    )
    _, out = im(inputs, unit_locations=None)
    assert model.config._attn_implementation == "eager"
    with torch.no_grad():
        assert not torch.allclose(out.logits, model(**inputs).logits, atol=1e-4)


def test_gpt_neo_reads_its_dropout_input_without_a_probe(registry: Any) -> None:
    if "gpt_neo" not in selected_families():
        pytest.skip("gpt_neo not selected")
    model = model_of("gpt_neo")
    im = pv.IntervenableModel({"layer": 1, "component": "attention_weight"}, model, registry=registry)
    site = im._slots[0].site
    assert site.module == "transformer.h.1.attn.attention.attn_dropout" and site.context is None
