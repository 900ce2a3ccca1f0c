"""Components of the newer families that the generic tables cannot check.

* GPT-OSS's mixture of experts: ``router_output`` and ``expert_output`` (``moe_key``), against the
  router and one expert written out here from the module's weights;
* BLIP: the image-text matching logits (``itm_output``) and the VQA model's text encoder;
* Backpack GPT-2: the contextualization weights (``sense_weight_output``) against a hand-written
  Backpack forward from the model's senses, and the factory;
* names: Whisper's plain names are the encoder's, Mllama's the language model's.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import transformers as tf
from conftest import BATCH, CASES, SEQ, model_of, selected_families
from test_architectures import At, capture, collect_whole, run_replacing
from torch import nn

import vene as pv
from vene_hf.architectures import resolve_site

LAYER = 1
MLP = "model.layers.1.mlp"


def only(family: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(family not in selected_families(), reason=f"{family} not selected")


# ---------------------------------------------------------------------------------------------
# GPT-OSS
# ---------------------------------------------------------------------------------------------


def _oss_route(router: nn.Module, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GPT-OSS routing, written out: top-k of the logits, softmax over the chosen k."""
    top, index = logits.topk(router.top_k, dim=-1)
    return top.softmax(dim=-1), index


def _oss_expert(model: nn.Module, x: torch.Tensor, e: int) -> torch.Tensor:
    ex = model.get_submodule(f"{MLP}.experts")
    gu = x @ ex.gate_up_proj[e] + ex.gate_up_proj_bias[e]
    gate, up = gu[..., ::2].clamp(max=ex.limit), gu[..., 1::2].clamp(-ex.limit, ex.limit)
    return ((up + 1) * gate * torch.sigmoid(gate * ex.alpha)) @ ex.down_proj[e] + ex.down_proj_bias[e]


def _oss_output(router: nn.Module, weights: torch.Tensor, index: torch.Tensor, like: tuple) -> tuple:
    if len(like) == 3:  # transformers 5
        return like[0], weights, index
    return torch.zeros_like(like[0]).scatter_(1, index, weights), index


@only("gpt_oss")
def test_gpt_oss_router_output_and_rerouting(registry: Any) -> None:
    model = model_of("gpt_oss")
    base, source = CASES["gpt_oss"].inputs(0), CASES["gpt_oss"].inputs(1)
    router = model.get_submodule(f"{MLP}.router")
    x_base = capture(model, At(MLP.removeprefix("model."), "in"), base)
    x_src = capture(model, At(MLP.removeprefix("model."), "in"), source)
    logits = nn.functional.linear(x_base, router.weight, router.bias)
    (got,) = collect_whole(model, registry, ["router_output"], base)
    torch.testing.assert_close(got, logits, rtol=1e-5, atol=1e-5)

    im = pv.IntervenableModel({"layer": LAYER, "component": "router_output"}, model, registry=registry)
    _, out = im(base, [source], unit_locations={"sources->base": ([[[3], [1]]], [[[2], [4]]])})
    src_logits = nn.functional.linear(x_src, router.weight, router.bias)
    swapped = logits.clone()
    swapped[0, 2], swapped[1, 4] = src_logits[0, 3], src_logits[1, 1]

    def reroute(m: nn.Module, a: tuple, o: tuple) -> tuple:
        w, i = _oss_route(m, swapped.reshape(-1, swapped.shape[-1]))
        if len(o) == 3:
            return swapped.reshape(o[0].shape), w, i
        return _oss_output(m, w, i, (swapped.reshape(-1, swapped.shape[-1]), None))

    h = router.register_forward_hook(reroute)
    try:
        with torch.no_grad():
            want = model(**base).logits
    finally:
        h.remove()
    torch.testing.assert_close(out.logits, want, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(want, model(**base).logits, atol=1e-5)


@only("gpt_oss")
@pytest.mark.parametrize("expert", [0, 3])
def test_gpt_oss_expert_output_and_its_ablation(expert: int, registry: Any) -> None:
    model, inputs = model_of("gpt_oss"), CASES["gpt_oss"].inputs(0)
    x = capture(model, At(MLP.removeprefix("model."), "in"), inputs)
    with torch.no_grad():
        y = _oss_expert(model, x, expert)
    rep = {"layer": LAYER, "component": "expert_output", "moe_key": expert}
    im = pv.IntervenableModel({**rep, "intervention_type": pv.CollectIntervention}, model, registry=registry)
    (_, collected), _ = im(inputs, unit_locations=None)
    torch.testing.assert_close(collected[0], y, rtol=1e-4, atol=1e-4)

    im = pv.IntervenableModel({**rep, "intervention_type": pv.ZeroIntervention}, model, registry=registry)
    _, out = im(inputs, unit_locations=None)
    router = model.get_submodule(f"{MLP}.router")
    with torch.no_grad():
        w, i = _oss_route(router, nn.functional.linear(x, router.weight, router.bias))
        weight = (w * (i == expert)).sum(-1, keepdim=True)
    assert weight.gt(0).any() and weight.eq(0).any()
    want = run_replacing(model, At(MLP.removeprefix("model."), "out"), inputs, lambda m: m - weight * y)
    torch.testing.assert_close(out.logits, want, rtol=1e-4, atol=1e-4)
    assert [n for n, _ in model.named_modules() if "vene" in n] == []


@only("gpt_oss")
def test_gpt_oss_expert_needs_a_valid_moe_key() -> None:
    model = model_of("gpt_oss")
    with pytest.raises(pv.ConfigError, match="moe_key"):
        resolve_site(model, pv.RepresentationConfig(layer=1, component="expert_output"))
    with pytest.raises(pv.ConfigError, match="4 experts"):
        resolve_site(model, pv.RepresentationConfig(layer=1, component="expert_output", moe_key=7))


# ---------------------------------------------------------------------------------------------
# BLIP
# ---------------------------------------------------------------------------------------------


@only("blip")
def test_blip_itm_output_collect_and_zero(registry: Any) -> None:
    model, inputs = model_of("blip"), CASES["blip"].inputs(0)
    with torch.no_grad():
        want = model(**inputs).itm_score
    im = pv.IntervenableModel(
        {"component": "itm_output", "intervention_type": pv.CollectIntervention}, model, registry=registry
    )
    (_, collected), _ = im(inputs, unit_locations=None)
    torch.testing.assert_close(collected[0], want)
    assert im._slots[0].site.dim == 2
    im = pv.IntervenableModel(
        {"component": "itm_output", "intervention_type": pv.ZeroIntervention}, model, registry=registry
    )
    _, out = im(inputs, unit_locations=None)
    assert torch.equal(out.itm_score, torch.zeros_like(want))


@only("blip")
def test_blip_vqa_model_resolves_the_text_encoder(registry: Any) -> None:
    torch.manual_seed(0)
    model = tf.BlipForQuestionAnswering(CASES["blip"].config()).eval()
    inputs = {**CASES["blip"].inputs(0), "decoder_input_ids": torch.randint(4, 50, (BATCH, SEQ))}
    site = resolve_site(model, pv.RepresentationConfig(layer=1, component="block_output"))
    assert site.module == "text_encoder.encoder.layer.1"
    im = pv.IntervenableModel(
        {"layer": 1, "component": "block_output", "intervention_type": pv.CollectIntervention},
        model,
        registry=registry,
    )
    (_, collected), _ = im(inputs, unit_locations={"base": 3})
    want = capture(model, At("text_encoder.encoder.layer.{L}", "out"), inputs)[:, 3]
    torch.testing.assert_close(collected[0][:, 0], want)
    with pytest.raises(pv.SiteResolutionError, match="itm_head"):
        resolve_site(model, pv.RepresentationConfig(component="itm_output"))


# ---------------------------------------------------------------------------------------------
# Backpack GPT-2
# ---------------------------------------------------------------------------------------------


def _backpack_by_hand(model: nn.Module, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Logits from the senses and given contextualization weights: sum_l alpha_l @ C_l, times E."""
    senses = model.backpack.senses(ids)  # [b, k, s, d]
    out = torch.einsum("bkij,bkjd->bid", weights, senses)
    return out @ model.backpack.gpt2_model.wte.weight.T


@only("backpack_gpt2")
def test_backpack_contextualization_weights(registry: Any) -> None:
    model, inputs = model_of("backpack_gpt2"), CASES["backpack_gpt2"].inputs(0)
    (got,) = collect_whole(model, registry, ["sense_weight_output"], inputs)
    k = model.config.num_senses
    assert got.shape == (BATCH, k, SEQ, SEQ)
    torch.testing.assert_close(got.sum(-1), torch.ones(BATCH, k, SEQ))  # a softmax per row
    assert torch.all(got.triu(1) == 0)  # causal
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, _backpack_by_hand(model, inputs["input_ids"], got))

    def uniform(base: torch.Tensor, source: Any = None) -> torch.Tensor:
        causal = torch.ones(SEQ, SEQ).tril()
        return (causal / causal.sum(-1, keepdim=True)).expand_as(base)

    im = pv.IntervenableModel({"component": "sense_weight_output", "intervention": uniform}, model, registry=registry)
    _, out = im(inputs, unit_locations=None)
    with torch.no_grad():
        want = _backpack_by_hand(model, inputs["input_ids"], uniform(got))
    torch.testing.assert_close(out.logits, want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(want, model(**inputs).logits, atol=1e-4)


@only("backpack_gpt2")
def test_backpack_sense_heads_are_senses(registry: Any) -> None:
    """Unit h.pos on sense_output swaps one sense vector of one word."""
    model = model_of("backpack_gpt2")
    base, source = CASES["backpack_gpt2"].inputs(0), CASES["backpack_gpt2"].inputs(1)
    im = pv.IntervenableModel({"component": "sense_output", "unit": "h.pos"}, model, registry=registry)
    _, out = im(base, [source], unit_locations={"sources->base": ([[[[2]] * 2, [[3]] * 2]], [[[[2]] * 2, [[1]] * 2]])})
    with torch.no_grad():
        senses = model.backpack.senses(base["input_ids"]).clone()
        src = model.backpack.senses(source["input_ids"])
        senses[:, 2, 1] = src[:, 2, 3]
        weights = collect_whole(model, registry, ["sense_weight_output"], base)[0]
        want = torch.einsum("bkij,bkjd->bid", weights, senses) @ model.backpack.gpt2_model.wte.weight.T
    torch.testing.assert_close(out.logits, want, rtol=1e-5, atol=1e-5)


def test_create_backpack_gpt2_builds_from_a_config(tmp_path: Any) -> None:
    from vene_hf.backpack import BackpackGPT2Config, BackpackGPT2LMHeadModel

    config, tokenizer, model = pv.create_backpack_gpt2(
        config={"n_layer": 1, "n_embd": 16, "n_head": 2, "vocab_size": 30, "num_senses": 4}
    )
    assert isinstance(config, BackpackGPT2Config) and tokenizer is None
    assert type(model) is BackpackGPT2LMHeadModel and not model.training
    model.save_pretrained(tmp_path / "bp")
    loaded = BackpackGPT2LMHeadModel.from_pretrained(tmp_path / "bp").eval()
    ids = torch.randint(0, 30, (1, 4))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    with pytest.raises(pv.ConfigError, match="BackpackGPT2Config"):
        pv.create_backpack_gpt2(config=tf.GPT2Config(n_layer=1))


# ---------------------------------------------------------------------------------------------
# plain names
# ---------------------------------------------------------------------------------------------


@only("whisper")
def test_whisper_plain_names_are_the_encoders() -> None:
    model = model_of("whisper")
    site = resolve_site(model, pv.RepresentationConfig(layer=1, component="block_output"))
    assert site.module == "model.encoder.layers.1"
    cross = resolve_site(model, pv.RepresentationConfig(layer=0, component="decoder_cross_head_key_output"))
    assert cross.module == "model.decoder.layers.0.encoder_attn.k_proj" and cross.heads == 4


@only("mllama")
def test_mllama_names_and_cross_attention_layers() -> None:
    model = model_of("mllama")
    plain = resolve_site(model, pv.RepresentationConfig(layer=1, component="head_key_output"))
    assert plain.module == "model.language_model.layers.1.self_attn.k_proj" and (plain.heads, plain.dim) == (2, 4)
    vision = resolve_site(model, pv.RepresentationConfig(layer=1, component="global.mlp_output"))
    assert vision.module == "model.vision_model.global_transformer.layers.1.mlp"
    with pytest.raises(pv.SiteResolutionError, match="self_attn"):  # layer 2 is a cross-attention layer
        resolve_site(model, pv.RepresentationConfig(layer=2, component="language.attention_output"))
