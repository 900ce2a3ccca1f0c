"""Every component of every family, checked against captures made with plain torch hooks.

The tables below are this test's own account of where each component lives (module path relative
to the base model, hook side, and which columns of the last dimension form it, for fused
projections). For every family and component:

* collected activations equal what a plain forward hook (or pre-hook) captures;
* an interchange equals the same replacement done by hand with a plain hook;
* head components swap exactly one head at one position per example (``h.pos``);
* the activations satisfy the architecture's own identities (residual sums, projections,
  ``output_hidden_states``), which pins each table entry to its meaning.

Attention probabilities and the mixture-of-experts components have their own tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import transformers
from conftest import BATCH, CASES, first_output, model_of, selected_families
from torch import nn

import vene as pv
from vene_hf.architectures import FAMILIES, resolve_site

Cols = Callable[[Any], list[int]] | None
TF5 = int(transformers.__version__.split(".")[0]) >= 5


def heads(c: Any) -> int:
    return int(getattr(c, "num_heads", None) or c.num_attention_heads)


def kv_heads(c: Any) -> int:
    return int(getattr(c, "num_key_value_heads", None) or heads(c))


def hdim(c: Any) -> int:
    return int(getattr(c, "d_kv", None) or getattr(c, "head_dim", None) or c.hidden_size // heads(c))


@dataclass(frozen=True)
class At:
    """Where a component lives: a module path ("{L}" = layer), a side, columns, and heads."""

    path: str
    side: str  # "in" or "out"
    cols: Cols = None
    heads: Callable[[Any], int] | None = None
    hdim: Callable[[Any], int] | None = None  # the head width, when not the config's own
    time_major: bool = False  # the module returns [batch, channels, time]: transpose


def attention(
    attn: str,
    q: str,
    k: str,
    v: str,
    o: str,
    p: str = "",
    out: str | None = None,
    sub: Callable[[Any], Any] | None = None,
) -> dict[str, At]:
    """``sub(config)`` is the config that holds the head counts (a multimodal model's text_config)."""
    if sub is None:
        hs, kvs, hd = heads, kv_heads, None
    else:
        hs, kvs, hd = (lambda c: heads(sub(c))), (lambda c: kv_heads(sub(c))), (lambda c: hdim(sub(c)))
    return {
        f"{p}attention_input": At(attn, "in"),
        f"{p}attention_output": At(out or attn, "out"),
        f"{p}attention_value_output": At(o, "in"),
        f"{p}head_attention_value_output": At(o, "in", heads=hs, hdim=hd),
        f"{p}query_output": At(q, "out"),
        f"{p}key_output": At(k, "out"),
        f"{p}value_output": At(v, "out"),
        f"{p}head_query_output": At(q, "out", heads=hs, hdim=hd),
        f"{p}head_key_output": At(k, "out", heads=kvs, hdim=hd),
        f"{p}head_value_output": At(v, "out", heads=kvs, hdim=hd),
    }


def fused(qkv: str, cols: Callable[[Any, int], list[int]]) -> dict[str, At]:
    out = {}
    for i, part in enumerate(("query", "key", "value")):
        hs = heads if part == "query" else kv_heads
        c = lambda cfg, i=i: cols(cfg, i)
        out[f"{part}_output"] = At(qkv, "out", c)
        out[f"head_{part}_output"] = At(qkv, "out", c, heads=hs)
    return out


def block(layer: str, mlp: str, act: str | None, mlp_out: str | None = None) -> dict[str, At]:
    out = {
        "block_input": At(layer, "in"),
        "block_output": At(layer, "out"),
        "mlp_input": At(mlp, "in"),
        "mlp_output": At(mlp_out or mlp, "out"),
    }
    if act:
        out["mlp_activation"] = At(act, "out")
    return out


def llama_like(
    act: str | None = "mlp.act_fn",
    at: str = "",
    p: str = "",
    sub: Callable[[Any], Any] | None = None,
    mlp: str = "mlp",
) -> dict[str, At]:
    a = f"{at}layers.{{L}}.self_attn"
    lay = f"{at}layers.{{L}}"
    table = {
        **block(lay, f"{lay}.{mlp}", act and f"{lay}.{act}"),
        **attention(a, f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj", f"{a}.o_proj", sub=sub),
    }
    return {p + k: v for k, v in table.items()}


def gpt2_cols(c: Any, i: int) -> list[int]:
    d = c.n_embd
    return list(range(i * d, (i + 1) * d))


def neox_cols(c: Any, i: int) -> list[int]:
    # query_key_value's output is [heads, 3, head_dim] per position: [q_h | k_h | v_h] per head
    h, d = heads(c), hdim(c)
    return [g * 3 * d + i * d + j for g in range(h) for j in range(d)]


def phi3_cols(c: Any, i: int) -> list[int]:
    q, kv = heads(c) * hdim(c), kv_heads(c) * hdim(c)
    start = [0, q, q + kv][i]
    return list(range(start, start + (q if i == 0 else kv)))


def bert_like() -> dict[str, At]:
    lay = "encoder.layer.{L}"
    s = f"{lay}.attention.self"
    dense = f"{lay}.attention.output.dense"
    return {
        **block(lay, f"{lay}.intermediate", f"{lay}.intermediate", f"{lay}.output.dense"),
        **attention(s, f"{s}.query", f"{s}.key", f"{s}.value", dense, out=dense),
    }


def t5_tables() -> dict[str, At]:
    out: dict[str, At] = {}
    for side, ff in (("encoder", "1"), ("decoder", "2")):
        b = f"{side}.block.{{L}}"
        sa = f"{b}.layer.0.SelfAttention"
        dense = f"{b}.layer.{ff}.DenseReluDense"
        table = {
            **block(b, dense, f"{dense}.act"),
            **attention(sa, f"{sa}.q", f"{sa}.k", f"{sa}.v", f"{sa}.o"),
        }
        out.update({f"{side}_{k}": v for k, v in table.items()})
    ca = "decoder.block.{L}.layer.1.EncDecAttention"
    out.update(attention(ca, f"{ca}.q", f"{ca}.k", f"{ca}.v", f"{ca}.o", p="decoder_cross_"))
    return out


def _gpt_neo() -> dict[str, At]:
    s = "h.{L}.attn.attention"
    return {
        **block("h.{L}", "h.{L}.mlp", "h.{L}.mlp.act"),
        **attention("h.{L}.attn", f"{s}.q_proj", f"{s}.k_proj", f"{s}.v_proj", f"{s}.out_proj"),
    }


def _gptj() -> dict[str, At]:
    a = "h.{L}.attn"
    return {
        **block("h.{L}", "h.{L}.mlp", "h.{L}.mlp.act"),
        **attention(a, f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj", f"{a}.out_proj"),
    }


def _gpt2() -> dict[str, At]:
    a = "h.{L}.attn"
    return {
        **block("h.{L}", "h.{L}.mlp", "h.{L}.mlp.act"),
        **attention(a, a, a, a, f"{a}.c_proj"),
        **fused(f"{a}.c_attn", gpt2_cols),
    }


def _gpt_neox() -> dict[str, At]:
    a = "layers.{L}.attention"
    return {
        **block("layers.{L}", "layers.{L}.mlp", "layers.{L}.mlp.act"),
        **attention(a, a, a, a, f"{a}.dense"),
        **fused(f"{a}.query_key_value", neox_cols),
    }


def _phi3() -> dict[str, At]:
    a = "layers.{L}.self_attn"
    return {
        **block("layers.{L}", "layers.{L}.mlp", "layers.{L}.mlp.activation_fn"),
        **attention(a, a, a, a, f"{a}.o_proj"),
        **fused(f"{a}.qkv_proj", phi3_cols),
    }


def _text(c: Any) -> Any:
    return c.text_config


def _vision(c: Any) -> Any:
    v = c.vision_config
    return type("VisionHeads", (), {"num_heads": v.attention_heads, "hidden_size": v.hidden_size})()


def _mllama() -> dict[str, At]:
    out = llama_like(at="language_model.", p="language.", sub=_text)
    for stack, p in (("transformer", "vision."), ("global_transformer", "global.")):
        lay = f"vision_model.{stack}.layers.{{L}}"
        a = f"{lay}.self_attn"
        table = {
            **block(lay, f"{lay}.mlp", f"{lay}.mlp.activation_fn"),
            **attention(a, f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj", f"{a}.o_proj", sub=_vision),
        }
        out.update({p + k: v for k, v in table.items()})
    return out


def _blip() -> dict[str, At]:
    lay = "text_encoder.encoder.layer.{L}"
    s = f"{lay}.attention.self"
    dense = f"{lay}.attention.output.dense"
    cross = f"{lay}.crossattention"
    return {
        **block(lay, f"{lay}.intermediate", f"{lay}.intermediate", f"{lay}.output.dense"),
        **attention(s, f"{s}.query", f"{s}.key", f"{s}.value", dense, out=dense, sub=_text),
        "cross_attention_input": At(f"{cross}.self", "in"),
        "cross_attention_value_output": At(f"{cross}.output.dense", "in"),
        "cross_attention_output": At(f"{cross}.output.dense", "out"),
    }


def _whisper() -> dict[str, At]:
    out: dict[str, At] = {}
    for side in ("encoder", "decoder"):
        lay = f"{side}.layers.{{L}}"
        sa = f"{lay}.self_attn"
        table = {
            **block(lay, f"{lay}.fc1", f"{lay}.activation_fn", f"{lay}.fc2"),
            **attention(sa, f"{sa}.q_proj", f"{sa}.k_proj", f"{sa}.v_proj", f"{sa}.out_proj"),
        }
        out.update({f"{side}_{k}": v for k, v in table.items()})
    ca = "decoder.layers.{L}.encoder_attn"
    out.update(attention(ca, f"{ca}.q_proj", f"{ca}.k_proj", f"{ca}.v_proj", f"{ca}.out_proj", p="decoder_cross_"))
    return out


def _wav2vec2_bert() -> dict[str, At]:
    lay = "encoder.layers.{L}"
    a = f"{lay}.self_attn"
    conv = f"{lay}.conv_module"
    out = {
        "block_input": At(lay, "in"),
        "block_output": At(lay, "out"),
        **attention(a, f"{a}.linear_q", f"{a}.linear_k", f"{a}.linear_v", f"{a}.linear_out"),
        "conv_input": At(conv, "in"),
        "conv_output": At(conv, "out"),
        "conv_glu_output": At(f"{conv}.glu", "out", time_major=True),
        "conv_depth_output": At(f"{conv}.depthwise_conv", "out", time_major=True),
    }
    for ffn in ("ffn1", "ffn2"):
        out[f"{ffn}_input"] = At(f"{lay}.{ffn}", "in")
        out[f"{ffn}_activation"] = At(f"{lay}.{ffn}.intermediate_act_fn", "out")
        out[f"{ffn}_output"] = At(f"{lay}.{ffn}", "out")
    return out


def _backpack() -> dict[str, At]:
    out = {k: At(f"gpt2_model.{v.path}", v.side, v.cols, v.heads) for k, v in _gpt2().items()}
    sn = "sense_network"
    out.update(
        {
            "sense_output": At(sn, "out"),
            "sense_block_output": At(f"{sn}.block", "out"),
            "sense_mlp_input": At(f"{sn}.final_mlp", "in"),
            "sense_mlp_activation": At(f"{sn}.final_mlp.act", "out"),
            "sense_mlp_output": At(f"{sn}.final_mlp", "out"),
            "sense_weight_input": At("sense_weight_net", "in"),
        }
    )
    return out


EXPECTED: dict[str, dict[str, At]] = {
    "gpt2": _gpt2(),
    "gpt_neo": _gpt_neo(),
    "gpt_neox": _gpt_neox(),
    "gptj": _gptj(),
    "llama": llama_like(),
    "mistral": llama_like(),
    "mixtral": llama_like(act=None, mlp="mlp" if TF5 else "block_sparse_moe"),
    "gemma": llama_like(),
    "gemma2": llama_like(),
    "gemma3": llama_like(),
    "qwen2": llama_like(),
    "qwen3": llama_like(),
    "olmo": llama_like(),
    "olmo2": llama_like(),
    "phi3": _phi3(),
    "bert": bert_like(),
    "roberta": bert_like(),
    "t5": t5_tables(),
    "esm": bert_like(),
    "gpt_oss": llama_like(act=None),
    "llava": llama_like(at="language_model.", sub=_text),
    "mllama": _mllama(),
    "blip": _blip(),
    "whisper": _whisper(),
    "wav2vec2_bert": _wav2vec2_bert(),
    "backpack_gpt2": _backpack(),
}

# components checked in their own test files
SPECIAL = {
    "attention_weight",
    "decoder_attention_weight",
    "encoder_attention_weight",
    "decoder_cross_attention_weight",
    "language.attention_weight",
    "router_output",
    "expert_output",
    "itm_output",
    "sense_weight_output",
}
LAYER = 1  # the last layer of the tiny models: also checks that the layer index is substituted


def _cases(filter_: Callable[[str], bool] = lambda c: True) -> list[Any]:
    out = []
    for fam in selected_families():
        for comp in EXPECTED[fam]:
            if filter_(comp):
                out.append(pytest.param(fam, comp, id=f"{fam}-{comp}"))
    return out


def test_tables_cover_every_component() -> None:
    """This file checks every component each family offers, and nothing it does not offer."""
    for fam, family in FAMILIES.items():
        offered = set(family.components) - SPECIAL
        assert offered == set(EXPECTED[fam]), fam


# ---------------------------------------------------------------------------------------------
# plain-hook helpers
# ---------------------------------------------------------------------------------------------


def prefix_of(model: nn.Module) -> str:
    p = getattr(model, "base_model_prefix", "")
    if p and p in model._modules:
        return f"{p}."
    inner = model._modules.get("model")  # Gemma3ForCausalLM in transformers 4.x: prefix names no child
    return "model." if inner is not None and getattr(inner, "config", None) is model.config else ""


def module_at(model: nn.Module, at: At, layer: int = LAYER) -> nn.Module:
    return model.get_submodule(prefix_of(model) + at.path.format(L=layer))


def _tensor_in(args: tuple, kwargs: dict) -> torch.Tensor:
    if args:
        return args[0]
    return kwargs["hidden_states"] if "hidden_states" in kwargs else kwargs["hidden_state"]


def capture(model: nn.Module, at: At, inputs: dict, layer: int = LAYER) -> torch.Tensor:
    """The component's tensor ``[batch, seq, width]`` in a plain forward, read with a plain hook."""
    store: dict[str, torch.Tensor] = {}
    mod = module_at(model, at, layer)

    def keep(x: torch.Tensor) -> None:
        store.setdefault("x", x)  # the first call: each module runs once per forward here

    if at.side == "out":
        h = mod.register_forward_hook(lambda m, a, o: keep(o[0] if isinstance(o, tuple) else o))
    else:
        h = mod.register_forward_pre_hook(lambda m, a, k: keep(_tensor_in(a, k)), with_kwargs=True)
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        h.remove()
    x = store["x"]
    if at.time_major:
        x = x.transpose(1, 2)
    if at.cols is not None:
        x = x[..., at.cols(model.config)]
    return x


def run_replacing(
    model: nn.Module, at: At, inputs: dict, fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Run ``model`` with the component's tensor replaced by ``fn(tensor)``, by a plain hook."""
    mod = module_at(model, at)
    cols = at.cols(model.config) if at.cols is not None else None

    def change(x: torch.Tensor) -> torch.Tensor:
        if at.time_major:
            return fn(x.transpose(1, 2)).transpose(1, 2)
        if cols is None:
            return fn(x)
        x = x.clone()
        x[..., cols] = fn(x[..., cols])
        return x

    if at.side == "out":

        def hook(m: nn.Module, a: tuple, o: Any) -> Any:
            return (change(o[0]), *o[1:]) if isinstance(o, tuple) else change(o)

        h = mod.register_forward_hook(hook)
    else:

        def pre(m: nn.Module, a: tuple, k: dict) -> Any:
            if a:
                return (change(a[0]), *a[1:]), k
            key = "hidden_states" if "hidden_states" in k else "hidden_state"  # Mllama vision, 4.x
            return a, {**k, key: change(k[key])}

        h = mod.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with torch.no_grad():
            return first_output(model(**inputs))
    finally:
        h.remove()


def intervenable(model: nn.Module, registry: Any, **rep: Any) -> pv.IntervenableModel:
    return pv.IntervenableModel({"layer": LAYER, **rep}, model, registry=registry)


# ---------------------------------------------------------------------------------------------
# collection and interchange, per component
# ---------------------------------------------------------------------------------------------

BASE_POS = [[1, 3], [0, 4]]  # two units per example, different per example


@pytest.mark.parametrize(("family", "component"), _cases())
def test_collect_matches_plain_hook(family: str, component: str, registry: Any) -> None:
    case, model = CASES[family], model_of(family)
    inputs = case.inputs(0)
    im = intervenable(
        model,
        registry,
        component=component,
        intervention_type=pv.CollectIntervention,
        max_number_of_units=2,
    )
    (_, collected), _ = im(inputs, unit_locations={"base": [BASE_POS]})
    expected = capture(model, EXPECTED[family][component], inputs)
    rows = torch.arange(BATCH)[:, None]
    want = expected[rows, torch.tensor(BASE_POS)]
    assert collected[0].shape == want.shape
    torch.testing.assert_close(collected[0], want, rtol=1e-5, atol=1e-6)
    # the site's width is the component's width, read from the config
    assert im._slots[0].site.unit_dim(pv.Unit.POS) == want.shape[-1]


SRC_POS, TGT_POS = [[3], [1]], [[2], [4]]


@pytest.mark.parametrize(("family", "component"), _cases(lambda c: "head_" not in c))
def test_interchange_matches_plain_hook(family: str, component: str, registry: Any) -> None:
    case, model = CASES[family], model_of(family)
    base, source = case.inputs(0), case.inputs(1)
    at = EXPECTED[family][component]
    im = intervenable(model, registry, component=component)
    _, out = im(base, [source], unit_locations={"sources->base": ([SRC_POS], [TGT_POS])})

    src = capture(model, at, source)

    def swap(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        for b in range(BATCH):
            x[b, TGT_POS[b][0]] = src[b, SRC_POS[b][0]]
        return x

    want = run_replacing(model, at, base, swap)
    torch.testing.assert_close(first_output(out), want, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        original = first_output(model(**base))
    assert not torch.allclose(want, original, atol=1e-6), "the interchange should change the output"


HEADS = [[1], [0]]


@pytest.mark.parametrize(("family", "component"), _cases(lambda c: "head_" in c))
def test_head_interchange_matches_plain_hook(family: str, component: str, registry: Any) -> None:
    """Unit ``h.pos``: head 1 of example 0 and head 0 of example 1, each at its own position."""
    case, model = CASES[family], model_of(family)
    base, source = case.inputs(0), case.inputs(1)
    at = EXPECTED[family][component]
    width = at.hdim(model.config) if at.hdim is not None else hdim(model.config)
    im = intervenable(model, registry, component=component, unit="h.pos")
    locs = ([[HEADS, SRC_POS]], [[HEADS, TGT_POS]])
    _, out = im(base, [source], unit_locations={"sources->base": locs})

    src = capture(model, at, source)

    def swap(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        for b in range(BATCH):
            cols = slice(HEADS[b][0] * width, (HEADS[b][0] + 1) * width)
            x[b, TGT_POS[b][0], cols] = src[b, SRC_POS[b][0], cols]
        return x

    want = run_replacing(model, at, base, swap)
    torch.testing.assert_close(first_output(out), want, rtol=1e-5, atol=1e-5)
    assert im._slots[0].site.heads == at.heads(model.config)
    assert im._slots[0].site.dim == width


# ---------------------------------------------------------------------------------------------
# the architecture's own identities
# ---------------------------------------------------------------------------------------------


def collect_whole(
    model: nn.Module, registry: Any, components: list[str], inputs: dict, layer: int = LAYER
) -> list[torch.Tensor]:
    reps = [{"layer": layer, "component": c, "intervention_type": pv.CollectIntervention} for c in components]
    im = pv.IntervenableModel(reps, model, registry=registry)
    (_, collected), _ = im(inputs, unit_locations=None)
    return collected


RESIDUAL_SUM = [
    "gpt2",
    "gpt_neo",
    "gpt_neox",
    "gptj",
    "llama",
    "mistral",
    "mixtral",
    "gemma",
    "qwen2",
    "qwen3",
    "olmo",
    "phi3",
    "esm",
]


@pytest.mark.parametrize("family", [f for f in RESIDUAL_SUM if f in selected_families()])
def test_block_output_is_input_plus_attention_plus_mlp(family: str, registry: Any) -> None:
    """Pre-norm residual blocks (sequential or parallel): out = in + attention + mlp."""
    model = model_of(family)
    bi, ao, mo, bo = collect_whole(
        model,
        registry,
        ["block_input", "attention_output", "mlp_output", "block_output"],
        CASES[family].inputs(0),
    )
    torch.testing.assert_close(bo, bi + ao + mo, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", selected_families())
def test_projections_of_the_collected_activations(family: str, registry: Any) -> None:
    """The output projection maps attention_value_output to attention_output; q/k/v projections
    map attention_input to query/key/value_output; the MLP maps mlp_input to mlp_output."""
    model = model_of(family)
    case = CASES[family]
    p = "encoder_" if family == "t5" else case.prefix
    mlp_in, mlp_out = MLP_NAMES.get(family, ("mlp_input", "mlp_output"))
    names = [
        "attention_input",
        "attention_value_output",
        "attention_output",
        "query_output",
        "key_output",
        "value_output",
        mlp_in,
        mlp_out,
    ]
    ai, avo, ao, q, k, v, mi, mo = collect_whole(
        model, registry, [p + n for n in names], case.inputs(0)
    )
    exp = EXPECTED[family]
    with torch.no_grad():
        o_proj = module_at(model, exp[p + "attention_value_output"])
        torch.testing.assert_close(o_proj(avo), ao, rtol=1e-5, atol=1e-5)
        for got, name in ((q, "query_output"), (k, "key_output"), (v, "value_output")):
            at = exp[p + name]
            proj = module_at(model, at)(ai)
            if at.cols is not None:
                proj = proj[..., at.cols(model.config)]
            torch.testing.assert_close(got, proj, rtol=1e-5, atol=1e-5)
        if case.mlp is not None:  # the MLP written out, from the layer's modules
            layer = module_at(model, exp[p + "block_input"])
            torch.testing.assert_close(case.mlp(layer, mi), mo, rtol=1e-5, atol=1e-5)
        elif family not in ("mixtral", "gpt_oss"):  # a mixture routes: covered by its own tests
            mlp = module_at(model, exp[p + "mlp_input"])
            if family in ("bert", "roberta", "esm"):
                act = module_at(model, exp[p + "mlp_activation"])(mi)
                torch.testing.assert_close(
                    module_at(model, exp[p + "mlp_output"])(act), mo, rtol=1e-5, atol=1e-5
                )
            else:
                torch.testing.assert_close(mlp(mi), mo, rtol=1e-5, atol=1e-5)


MLP_NAMES = {"wav2vec2_bert": ("ffn2_input", "ffn2_output")}


@pytest.mark.parametrize("family", [f for f in selected_families() if CASES[f].hidden is not None])
def test_block_output_matches_output_hidden_states(family: str, registry: Any) -> None:
    model = model_of(family)
    case = CASES[family]
    inputs = case.inputs(0)
    name = "encoder_block_output" if family == "t5" else case.prefix + "block_output"
    (got,) = collect_whole(model, registry, [name], inputs, layer=0)
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    hidden = out.encoder_hidden_states if family == "t5" else getattr(out, case.hidden)
    torch.testing.assert_close(got, hidden[1], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# base, LM and classification models; wrappers; subclasses
# ---------------------------------------------------------------------------------------------


def _kinds() -> list[Any]:
    return [
        pytest.param(f, kind, id=f"{f}-{kind}")
        for f in selected_families()
        for kind in ("base", "lm", "seqcls")
        if kind in CASES[f].kinds
    ]


@pytest.mark.parametrize(("family", "kind"), _kinds())
def test_every_model_head_resolves(family: str, kind: str, registry: Any) -> None:
    model = model_of(family, kind)
    inputs = CASES[family].inputs(0)
    p = "decoder_" if family == "t5" else CASES[family].prefix
    mlp_out = MLP_NAMES.get(family, ("mlp_input", "mlp_output"))[1]
    for component in ("block_output", "query_output", mlp_out):
        at = EXPECTED[family][p + component]
        im = pv.IntervenableModel(
            {"layer": 0, "component": p + component, "intervention_type": pv.CollectIntervention},
            model,
            registry=registry,
        )
        (_, collected), _ = im(inputs, unit_locations={"base": 2})
        torch.testing.assert_close(collected[0][:, 0], capture(model, at, inputs, layer=0)[:, 2])


class MyLlama(CASES["llama"].model_class("lm")):  # a user's subclass keeps the family
    pass


class Wrapper(nn.Module):
    """A user's own module holding a transformers model."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.backbone = inner

    def forward(self, **kw: Any) -> Any:
        return self.backbone(**kw)


def test_subclasses_and_wrappers_resolve(registry: Any) -> None:
    case = CASES["llama"]
    torch.manual_seed(0)
    sub = MyLlama(case.config()).eval()
    rep = pv.RepresentationConfig(layer=1, component="mlp_output")
    assert resolve_site(sub, rep).module == "model.layers.1.mlp"
    wrapped = Wrapper(model_of("llama"))
    site = resolve_site(wrapped, rep)
    assert site.module == "backbone.model.layers.1.mlp"
    inputs = case.inputs(0)
    im = pv.IntervenableModel(
        {"layer": 1, "component": "mlp_output", "intervention_type": pv.CollectIntervention},
        wrapped,
        registry=registry,
    )
    (_, collected), _ = im(inputs, unit_locations={"base": 3})
    want = capture(model_of("llama"), EXPECTED["llama"]["mlp_output"], inputs)[:, 3]
    torch.testing.assert_close(collected[0][:, 0], want)


def test_peft_wrapped_model_resolves(registry: Any) -> None:
    peft = pytest.importorskip("peft")
    model = CASES["llama"].build("lm")
    lora = peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    site = resolve_site(lora, pv.RepresentationConfig(layer=1, component="block_output"))
    assert site.module == "base_model.model.model.layers.1"
    inputs = CASES["llama"].inputs(0)
    im = pv.IntervenableModel(
        {"layer": 1, "component": "query_output", "intervention_type": pv.CollectIntervention},
        lora,
        registry=registry,
    )
    (_, collected), _ = im(inputs, unit_locations={"base": 2})
    want = capture(lora.base_model.model, EXPECTED["llama"]["query_output"], inputs)[:, 2]
    torch.testing.assert_close(collected[0][:, 0], want)


def test_multimodal_gemma3_resolves_its_language_model() -> None:
    import transformers as tf

    text = CASES["gemma3"].config()
    vision = tf.SiglipVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
    )
    config = tf.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4)
    model = tf.Gemma3ForConditionalGeneration(config)
    site = resolve_site(model, pv.RepresentationConfig(layer=1, component="head_key_output", unit="h.pos"))
    assert site.module == "model.language_model.layers.1.self_attn.k_proj"
    assert (site.heads, site.dim) == (2, 8)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


def test_unknown_component_names_the_nearest_ones() -> None:
    with pytest.raises(pv.SiteResolutionError, match="mlp_output") as err:
        resolve_site(model_of("llama"), pv.RepresentationConfig(component="mlp_outptu"))
    assert "llama" in str(err.value) and "dotted" in str(err.value)


def test_layer_out_of_range() -> None:
    with pytest.raises(pv.SiteResolutionError, match=r"layer 7 is out of range .* 2 layers"):
        resolve_site(model_of("gpt2"), pv.RepresentationConfig(layer=7, component="block_output"))


def test_unknown_family_lists_families_and_dotted_paths_still_work(registry: Any) -> None:
    import transformers as tf

    torch.manual_seed(0)
    opt = tf.OPTForCausalLM(
        tf.OPTConfig(
            num_hidden_layers=1,
            hidden_size=16,
            num_attention_heads=2,
            ffn_dim=32,
            vocab_size=VOCAB_OPT,
            word_embed_proj_dim=16,
            max_position_embeddings=32,
        )
    ).eval()
    with pytest.raises(pv.SiteResolutionError, match="opt") as err:
        resolve_site(opt, pv.RepresentationConfig(component="block_output"))
    message = str(err.value)
    assert "gpt2" in message and "llama" in message and "t5" in message and "dotted" in message
    dotted = pv.RepresentationConfig(component="model.decoder.layers[0].self_attn.out_proj.output")
    assert resolve_site(opt, dotted) is None  # left to core's dotted-path resolver
    im = pv.IntervenableModel(
        {
            "component": "model.decoder.layers[0].self_attn.out_proj.output",
            "intervention_type": pv.CollectIntervention,
        },
        opt,
        registry=registry,
    )
    (_, collected), _ = im({"input_ids": torch.randint(4, VOCAB_OPT, (2, 5))}, unit_locations={"base": 1})
    assert collected[0].shape == (2, 1, 16)


VOCAB_OPT = 40


def test_non_transformers_model_is_left_to_others() -> None:
    _, _, mlp = pv.create_mlp_classifier(pv.MLPConfig(h_dim=8, n_layer=2))
    assert resolve_site(mlp, pv.RepresentationConfig(component="block_output")) is None


def test_t5_names_say_which_stack(registry: Any) -> None:
    t5 = model_of("t5")
    with pytest.raises(
        pv.SiteResolutionError,
        match="encoder_block_output.*decoder_block_output|decoder_block_output.*encoder_block_output",
    ):
        resolve_site(t5, pv.RepresentationConfig(component="block_output"))
    import transformers as tf

    torch.manual_seed(0)
    encoder_only = tf.T5EncoderModel(CASES["t5"].config()).eval()
    site = resolve_site(encoder_only, pv.RepresentationConfig(layer=1, component="block_output"))
    assert site.module == "encoder.block.1"
    with pytest.raises(pv.SiteResolutionError, match="decoder"):
        resolve_site(encoder_only, pv.RepresentationConfig(component="decoder_block_output"))


def test_t5_decoder_layer_count_is_its_own() -> None:
    import transformers as tf

    config = tf.T5Config(
        num_layers=1, num_decoder_layers=3, d_model=16, num_heads=2, d_kv=8, d_ff=32, vocab_size=VOCAB_OPT
    )
    model = tf.T5Model(config)
    assert resolve_site(model, pv.RepresentationConfig(layer=2, component="decoder_mlp_output")).module == (
        "decoder.block.2.layer.2.DenseReluDense"
    )
    with pytest.raises(pv.SiteResolutionError, match="1 layers"):
        resolve_site(model, pv.RepresentationConfig(layer=2, component="encoder_mlp_output"))


# ---------------------------------------------------------------------------------------------
# mixture of experts (Mixtral): router logits and one expert's output
# ---------------------------------------------------------------------------------------------

MOE = pytest.mark.skipif(
    "mixtral" not in selected_families() or not TF5,
    reason="mixtral not selected, or transformers 4.x (its unfused experts: test_tf4_mixtral)",
)
MLP = "model.layers.1.mlp"


def _route(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixtral's routing, written out: softmax, top-k, renormalise."""
    probs = logits.float().softmax(-1)
    w, i = probs.topk(k, dim=-1)
    return w / w.sum(-1, keepdim=True), i


def _expert_by_hand(model: nn.Module, x: torch.Tensor, e: int) -> torch.Tensor:
    experts = model.get_submodule(f"{MLP}.experts")
    gate, up = (x @ experts.gate_up_proj[e].T).chunk(2, dim=-1)
    return (torch.nn.functional.silu(gate) * up) @ experts.down_proj[e].T


@MOE
def test_router_output_collects_the_router_logits(registry: Any) -> None:
    model, inputs = model_of("mixtral"), CASES["mixtral"].inputs(0)
    (got,) = collect_whole(model, registry, ["router_output"], inputs)
    with torch.no_grad():
        want = model(**inputs, output_router_logits=True).router_logits[LAYER]
    assert got.shape == (BATCH, 5, model.config.num_local_experts)
    torch.testing.assert_close(got.reshape(want.shape), want)


@MOE
def test_router_interchange_reroutes_like_the_router(registry: Any) -> None:
    model = model_of("mixtral")
    base, source = CASES["mixtral"].inputs(0), CASES["mixtral"].inputs(1)
    im = intervenable(model, registry, component="router_output")
    _, out = im(base, [source], unit_locations={"sources->base": ([SRC_POS], [TGT_POS])})

    store: dict[str, torch.Tensor] = {}
    gate = model.get_submodule(f"{MLP}.gate")

    def keep(m: nn.Module, a: tuple, o: tuple) -> None:
        store.setdefault("logits", o[0])

    h = gate.register_forward_hook(keep)
    try:
        with torch.no_grad():
            model(**source)
    finally:
        h.remove()
    src = store["logits"].view(BATCH, 5, -1)

    def reroute(m: nn.Module, a: tuple, o: tuple) -> tuple:
        logits = o[0].view(BATCH, 5, -1).clone()
        for b in range(BATCH):
            logits[b, TGT_POS[b][0]] = src[b, SRC_POS[b][0]]
        logits = logits.view(o[0].shape)
        w, i = _route(logits, m.top_k)
        return logits, w.to(o[1].dtype), i

    h = gate.register_forward_hook(reroute)
    try:
        with torch.no_grad():
            want = model(**base).logits
    finally:
        h.remove()
    torch.testing.assert_close(out.logits, want, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(want, model(**base).logits, atol=1e-5)


@MOE
@pytest.mark.parametrize("expert", [0, 3])
def test_expert_output_and_its_ablation(expert: int, registry: Any) -> None:
    model, inputs = model_of("mixtral"), CASES["mixtral"].inputs(0)
    x = capture(model, At(MLP.removeprefix("model."), "in"), inputs)
    with torch.no_grad():
        y = _expert_by_hand(model, x, expert)
    im = pv.IntervenableModel(
        {
            "layer": LAYER,
            "component": "expert_output",
            "moe_key": expert,
            "intervention_type": pv.CollectIntervention,
        },
        model,
        registry=registry,
    )
    (_, collected), _ = im(inputs, unit_locations=None)
    torch.testing.assert_close(collected[0], y, rtol=1e-5, atol=1e-5)

    # zero the expert's output everywhere: the mixture loses exactly its weighted contribution
    im = pv.IntervenableModel(
        {
            "layer": LAYER,
            "component": "expert_output",
            "moe_key": expert,
            "intervention_type": pv.ZeroIntervention,
        },
        model,
        registry=registry,
    )
    _, out = im(inputs, unit_locations=None)
    with torch.no_grad():
        logits = model.get_submodule(f"{MLP}.gate")(x)[0]
        w, i = _route(logits, model.config.num_experts_per_tok)
        weight = (w * (i == expert)).sum(-1).view(BATCH, 5, 1)
    assert weight.gt(0).any() and weight.eq(0).any()  # routed at some positions, not at others
    want = run_replacing(model, At(MLP.removeprefix("model."), "out"), inputs, lambda m: m - weight * y)
    torch.testing.assert_close(out.logits, want, rtol=1e-5, atol=1e-5)
    names = [n for n, _ in model.named_modules() if "vene" in n]
    assert names == []


@MOE
def test_expert_needs_a_valid_moe_key() -> None:
    model = model_of("mixtral")
    with pytest.raises(pv.ConfigError, match="moe_key"):
        resolve_site(model, pv.RepresentationConfig(layer=1, component="expert_output"))
    with pytest.raises(pv.ConfigError, match="4 experts"):
        resolve_site(model, pv.RepresentationConfig(layer=1, component="expert_output", moe_key=4))
    with pytest.raises(pv.SiteResolutionError, match="router_output"):
        resolve_site(model, pv.RepresentationConfig(layer=1, component="mlp_activation"))


@pytest.mark.skipif("mixtral" not in selected_families() or TF5, reason="transformers 4.x layout only")
def test_tf4_mixtral_router_and_expert(registry: Any) -> None:
    """transformers 4.x: the router's logits are the gate's output, re-routed by the block itself;
    expert_output says that it needs transformers 5."""
    model, inputs = model_of("mixtral"), CASES["mixtral"].inputs(0)
    (got,) = collect_whole(model, registry, ["router_output"], inputs)
    with torch.no_grad():
        want = model(**inputs, output_router_logits=True).router_logits[LAYER]
    torch.testing.assert_close(got.reshape(want.shape), want)
    gate = At("layers.{L}.block_sparse_moe.gate", "out")
    im = intervenable(model, registry, component="router_output", intervention_type=pv.ZeroIntervention)
    _, out = im(inputs, unit_locations=None)
    torch.testing.assert_close(first_output(out), run_replacing(model, gate, inputs, torch.zeros_like))
    with pytest.raises(pv.SiteResolutionError, match="transformers >= 5"):
        resolve_site(model, pv.RepresentationConfig(layer=1, component="expert_output", moe_key=0))
