"""Tiny random transformers models of every supported family, and the registry the tests use.

Each family has a tiny config (2 layers, width 16, 4 heads, 2 key/value heads where the family
has grouped-query attention, a ``head_dim`` that differs from width/heads where the config allows
it), a function that builds its base, LM and sequence-classification models, and inputs.

``VENE_HF_FAMILY=llama,gpt2`` limits the family-parametrized tests to those families (the
``hf_family`` nox session runs one family per session); ``-k llama`` selects by test id as well.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import transformers as tf
from torch import nn

import vene as pv
from vene import hookimpl
from vene.plugins import Registry
from vene_hf.architectures import resolve_site

BATCH, SEQ, VOCAB = 2, 5, 50
TF5 = int(tf.__version__.split(".")[0]) >= 5

# Tiny models gain nothing from intra-op threads, and on a shared machine the thread pool's
# contention makes each forward 10-100x slower.
torch.set_num_threads(1)


class _ResolverOnly:
    """A plugin with only vene-hf's site resolver, so these tests exercise exactly it."""

    @hookimpl
    def vene_resolve_site(self, model: nn.Module, representation: Any) -> Any:
        return resolve_site(model, representation)


@pytest.fixture(scope="session")
def registry() -> Registry:
    pm = pv.get_plugin_manager(load_entrypoints=False)
    pm.register(_ResolverOnly(), name="hf")
    return Registry(pm)


@dataclass
class Case:
    """One family: its tiny config, the model classes of each head kind, and its inputs.

    ``kinds`` names the transformers class of each head kind (or gives a class); a class that the
    installed transformers lacks skips the tests that need it, with the reason. ``make_inputs``
    replaces the default token inputs (audio features, images...); ``prefix`` is the component
    prefix that the family-generic checks use (``"encoder_"``...); ``hidden`` the output field
    that ``output_hidden_states=True`` fills (None: the model has none); ``mlp(model, x)`` is the
    family's MLP written out, for models whose MLP is not one module.
    """

    name: str
    config: Callable[[], Any]
    kinds: dict[str, str | Callable[[Any], nn.Module]]
    encoder_decoder: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    make_inputs: Callable[[torch.Generator], dict[str, torch.Tensor]] | None = None
    prefix: str = ""
    hidden: str | None = "hidden_states"
    mlp: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None

    def model_class(self, kind: str) -> Callable[[Any], nn.Module]:
        cls = self.kinds[kind]
        if not isinstance(cls, str):
            return cls
        found = getattr(tf, cls, None)
        if found is None:
            pytest.skip(f"transformers {tf.__version__} has no {cls}")
        return found

    def build(self, kind: str = "lm", seed: int = 0) -> nn.Module:
        model_class = self.model_class(kind)
        torch.manual_seed(seed)
        config = self.config()
        model = model_class(config).eval()
        # larger weights than the default 0.02 init, so that every activation carries signal
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.dim() > 1:
                    p.normal_(0.0, 0.3)
                elif "gate" in name.rpartition(".")[2] and p.numel() == 1:
                    p.fill_(1.0)  # Mllama's tanh gates start at 0: open them so every layer counts
        return model

    def inputs(self, seed: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        if self.make_inputs is not None:
            return self.make_inputs(g)
        ids = torch.randint(4, VOCAB, (BATCH, SEQ), generator=g)
        if "eos" in self.extra:  # T5's sequence classifier reads the <eos> position
            ids[:, -1] = self.extra["eos"]
        out = {"input_ids": ids}
        if self.encoder_decoder:
            out["decoder_input_ids"] = torch.randint(4, VOCAB, (BATCH, SEQ), generator=g)
        return out


def _decoder(base: str, lm: str, cls: str) -> dict[str, str | Callable[[Any], nn.Module]]:
    return {"base": base, "lm": lm, "seqcls": cls}


common = dict(vocab_size=VOCAB, pad_token_id=0, bos_token_id=1, eos_token_id=2)
llama_dims = dict(
    num_hidden_layers=2,
    hidden_size=16,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=32,
    max_position_embeddings=64,
    **common,
)

IMAGE_TOKEN = VOCAB - 1
_clip = dict(
    hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4, image_size=14, patch_size=14
)


def _with_image(g: torch.Generator, **image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Token inputs whose first position is the image placeholder, and the image inputs."""
    ids = torch.randint(4, IMAGE_TOKEN, (BATCH, SEQ), generator=g)
    ids[:, 0] = IMAGE_TOKEN
    return {"input_ids": ids, **image}


def _backpack() -> Any:
    from vene_hf import backpack

    return backpack


CASES: dict[str, Case] = {
    c.name: c
    for c in [
        Case(
            "gpt2",
            lambda: tf.GPT2Config(n_layer=2, n_embd=16, n_head=4, n_positions=64, **common),
            _decoder("GPT2Model", "GPT2LMHeadModel", "GPT2ForSequenceClassification"),
        ),
        Case(
            "gpt_neo",
            lambda: tf.GPTNeoConfig(
                num_layers=2,
                hidden_size=16,
                num_heads=4,
                max_position_embeddings=64,
                attention_types=[[["global", "local"], 1]],
                window_size=3,
                **common,
            ),
            _decoder("GPTNeoModel", "GPTNeoForCausalLM", "GPTNeoForSequenceClassification"),
        ),
        Case(
            "gpt_neox",
            lambda: tf.GPTNeoXConfig(
                num_hidden_layers=2,
                hidden_size=16,
                num_attention_heads=4,
                intermediate_size=32,
                max_position_embeddings=64,
                **common,
            ),
            _decoder("GPTNeoXModel", "GPTNeoXForCausalLM", "GPTNeoXForSequenceClassification"),
        ),
        Case(
            "gptj",
            lambda: tf.GPTJConfig(n_layer=2, n_embd=16, n_head=4, rotary_dim=2, n_positions=64, **common),
            _decoder("GPTJModel", "GPTJForCausalLM", "GPTJForSequenceClassification"),
        ),
        Case(
            "llama",
            lambda: tf.LlamaConfig(**llama_dims),
            _decoder("LlamaModel", "LlamaForCausalLM", "LlamaForSequenceClassification"),
        ),
        Case(
            "mistral",
            lambda: tf.MistralConfig(**llama_dims, sliding_window=3),
            _decoder("MistralModel", "MistralForCausalLM", "MistralForSequenceClassification"),
        ),
        Case(
            "mixtral",
            lambda: tf.MixtralConfig(**llama_dims, num_local_experts=4, num_experts_per_tok=2),
            _decoder("MixtralModel", "MixtralForCausalLM", "MixtralForSequenceClassification"),
        ),
        Case(
            "gemma",
            lambda: tf.GemmaConfig(**llama_dims, head_dim=8),
            _decoder("GemmaModel", "GemmaForCausalLM", "GemmaForSequenceClassification"),
        ),
        Case(
            "gemma2",
            lambda: tf.Gemma2Config(
                **llama_dims,
                head_dim=8,
                sliding_window=3,
                query_pre_attn_scalar=8,
                attn_logit_softcapping=5.0,
                # transformers 4.x's SDPA path for Gemma 2 drops the logit softcapping: there the
                # model's own computation is its eager attention
                **({} if TF5 else {"attn_implementation": "eager"}),
            ),
            _decoder("Gemma2Model", "Gemma2ForCausalLM", "Gemma2ForSequenceClassification"),
        ),
        Case(
            "gemma3",
            lambda: tf.Gemma3TextConfig(
                **llama_dims,
                head_dim=8,
                sliding_window=3,
                query_pre_attn_scalar=8,
                layer_types=["sliding_attention", "full_attention"],
            ),
            _decoder("Gemma3TextModel", "Gemma3ForCausalLM", "Gemma3TextForSequenceClassification"),
        ),
        Case(
            "qwen2",
            lambda: tf.Qwen2Config(**llama_dims),
            _decoder("Qwen2Model", "Qwen2ForCausalLM", "Qwen2ForSequenceClassification"),
        ),
        Case(
            "qwen3",
            lambda: tf.Qwen3Config(**llama_dims, head_dim=8),
            _decoder("Qwen3Model", "Qwen3ForCausalLM", "Qwen3ForSequenceClassification"),
        ),
        Case(
            "olmo",
            lambda: tf.OlmoConfig(**llama_dims),
            _decoder("OlmoModel", "OlmoForCausalLM", "OlmoForSequenceClassification"),
        ),
        Case(
            "olmo2",
            lambda: tf.Olmo2Config(**llama_dims),
            _decoder("Olmo2Model", "Olmo2ForCausalLM", "Olmo2ForSequenceClassification"),
        ),
        Case(
            "phi3",
            lambda: tf.Phi3Config(**llama_dims),
            _decoder("Phi3Model", "Phi3ForCausalLM", "Phi3ForSequenceClassification"),
        ),
        Case(
            "bert",
            lambda: tf.BertConfig(
                num_hidden_layers=2,
                hidden_size=16,
                num_attention_heads=4,
                intermediate_size=32,
                max_position_embeddings=64,
                vocab_size=VOCAB,
            ),
            {"base": "BertModel", "lm": "BertForMaskedLM", "seqcls": "BertForSequenceClassification"},
        ),
        Case(
            "roberta",
            lambda: tf.RobertaConfig(
                num_hidden_layers=2,
                hidden_size=16,
                num_attention_heads=4,
                intermediate_size=32,
                max_position_embeddings=64,
                vocab_size=VOCAB,
                pad_token_id=1,
            ),
            {
                "base": "RobertaModel",
                "lm": "RobertaForMaskedLM",
                "seqcls": "RobertaForSequenceClassification",
            },
        ),
        Case(
            "t5",
            lambda: tf.T5Config(
                num_layers=2,
                num_decoder_layers=2,
                d_model=16,
                num_heads=4,
                d_kv=8,
                d_ff=32,
                vocab_size=VOCAB,
                decoder_start_token_id=0,
                pad_token_id=0,
            ),
            {
                "base": "T5Model",
                "lm": "T5ForConditionalGeneration",
                "seqcls": "T5ForSequenceClassification",
            },
            encoder_decoder=True,
            extra={"eos": 1},
        ),
        Case(
            "esm",
            lambda: tf.EsmConfig(
                num_hidden_layers=2,
                hidden_size=16,
                num_attention_heads=4,
                intermediate_size=32,
                max_position_embeddings=64,
                vocab_size=VOCAB,
                pad_token_id=1,
                mask_token_id=2,
            ),
            {"base": "EsmModel", "lm": "EsmForMaskedLM", "seqcls": "EsmForSequenceClassification"},
        ),
        Case(
            "gpt_oss",
            lambda: tf.GptOssConfig(
                **llama_dims,
                head_dim=8,
                num_local_experts=4,
                num_experts_per_tok=2,
                sliding_window=3,
                layer_types=["sliding_attention", "full_attention"],
            ),
            _decoder("GptOssModel", "GptOssForCausalLM", "GptOssForSequenceClassification"),
        ),
        Case(
            "llava",
            lambda: tf.LlavaConfig(
                text_config=tf.LlamaConfig(**llama_dims).to_dict(),
                vision_config=tf.CLIPVisionConfig(**_clip).to_dict(),
                image_token_index=IMAGE_TOKEN,
                image_seq_length=1,
                projector_hidden_act="gelu",
            ),
            {"base": "LlavaModel", "lm": "LlavaForConditionalGeneration"},
            make_inputs=lambda g: _with_image(g, pixel_values=torch.randn(BATCH, 3, 14, 14, generator=g)),
        ),
        Case(
            "mllama",
            lambda: tf.MllamaConfig(
                text_config=dict(
                    llama_dims,
                    num_hidden_layers=3,
                    cross_attention_layers=[2],
                    **({} if TF5 else {"rope_scaling": {"rope_type": "default"}}),  # 4.x needs it
                ),
                vision_config=dict(
                    hidden_size=16,
                    attention_heads=4,
                    intermediate_size=32,
                    num_hidden_layers=2,
                    num_global_layers=2,
                    image_size=28,
                    patch_size=14,
                    max_num_tiles=1,
                    vision_output_dim=32,
                    intermediate_layers_indices=[0],
                    supported_aspect_ratios=[[1, 1]],
                ),
                image_token_index=IMAGE_TOKEN,
            ),
            {"base": "MllamaModel", "lm": "MllamaForConditionalGeneration"},
            make_inputs=lambda g: _with_image(
                g,
                pixel_values=torch.randn(BATCH, 1, 1, 3, 28, 28, generator=g),
                aspect_ratio_ids=torch.ones(BATCH, 1, dtype=torch.long),
                aspect_ratio_mask=torch.ones(BATCH, 1, 1, dtype=torch.long),
                cross_attention_mask=torch.ones(BATCH, SEQ, 1, 1, dtype=torch.long),
            ),
            prefix="language.",
        ),
        Case(
            "blip",
            lambda: tf.BlipConfig(
                text_config=tf.BlipTextConfig(
                    vocab_size=VOCAB,
                    hidden_size=16,
                    encoder_hidden_size=16,
                    intermediate_size=32,
                    num_hidden_layers=3,  # layer 1 is not the last: ITM reads position 0 only
                    num_attention_heads=4,
                    max_position_embeddings=64,
                    pad_token_id=0,
                    bos_token_id=1,
                    sep_token_id=2,
                ).to_dict(),
                vision_config=tf.BlipVisionConfig(**_clip).to_dict(),
                projection_dim=16,
                image_text_hidden_size=16,
            ),
            {"lm": "BlipForImageTextRetrieval"},  # the VQA model: test_new_families.py
            make_inputs=lambda g: {
                "input_ids": torch.randint(4, VOCAB, (BATCH, SEQ), generator=g),
                "pixel_values": torch.randn(BATCH, 3, 14, 14, generator=g),
            },
            hidden=None,
            mlp=lambda layer, x: layer.output.dense(layer.intermediate(x)),
        ),
        Case(
            "whisper",
            lambda: tf.WhisperConfig(
                d_model=16,
                encoder_layers=2,
                decoder_layers=2,
                encoder_attention_heads=4,
                decoder_attention_heads=4,
                encoder_ffn_dim=32,
                decoder_ffn_dim=32,
                num_mel_bins=8,
                max_source_positions=6,
                max_target_positions=16,
                decoder_start_token_id=1,
                suppress_tokens=None,
                begin_suppress_tokens=None,
                **common,
            ),
            {"base": "WhisperModel", "lm": "WhisperForConditionalGeneration"},
            make_inputs=lambda g: {
                "input_features": torch.randn(BATCH, 8, 12, generator=g),
                "decoder_input_ids": torch.randint(4, VOCAB, (BATCH, SEQ), generator=g),
            },
            prefix="encoder_",
            hidden="encoder_hidden_states",
            mlp=lambda layer, x: layer.fc2(layer.activation_fn(layer.fc1(x))),
        ),
        Case(
            "wav2vec2_bert",
            lambda: tf.Wav2Vec2BertConfig(
                hidden_size=16,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=32,
                feature_projection_input_dim=8,
                output_hidden_size=16,
                conv_depthwise_kernel_size=3,
                vocab_size=VOCAB,
                pad_token_id=0,
            ),
            {
                "base": "Wav2Vec2BertModel",
                "lm": "Wav2Vec2BertForCTC",
                "seqcls": "Wav2Vec2BertForSequenceClassification",
            },
            make_inputs=lambda g: {"input_features": torch.randn(BATCH, SEQ, 8, generator=g)},
            mlp=lambda layer, x: layer.ffn2.output_dense(
                layer.ffn2.intermediate_act_fn(layer.ffn2.intermediate_dense(x))
            ),
        ),
        Case(
            "backpack_gpt2",
            lambda: _backpack().BackpackGPT2Config(
                n_layer=2, n_embd=16, n_head=4, n_positions=64, num_senses=4, sense_intermediate_scale=2, **common
            ),
            {
                "base": lambda c: _backpack().BackpackGPT2Model(c),
                "lm": lambda c: _backpack().BackpackGPT2LMHeadModel(c),
            },
            hidden=None,
        ),
    ]
}


def selected_families() -> list[str]:
    """The families to test: all, or those named in ``VENE_HF_FAMILY`` (comma-separated)."""
    raw = os.environ.get("VENE_HF_FAMILY", "").strip()
    if not raw:
        return list(CASES)
    wanted = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = sorted(set(wanted) - set(CASES))
    if unknown:
        raise pytest.UsageError(
            f"VENE_HF_FAMILY names unknown families {unknown}; families: {', '.join(CASES)}."
        )
    return wanted


_models: dict[tuple[str, str], nn.Module] = {}


def model_of(family: str, kind: str = "lm") -> nn.Module:
    """A cached tiny model (tests never change weights; interventions never stay on a model)."""
    key = (family, kind)
    if key not in _models:
        _models[key] = CASES[family].build(kind)
    return _models[key]


def first_output(out: Any) -> torch.Tensor:
    """The main tensor of a model output: logits, or the last hidden state of a base model."""
    return out[0]


# ---------------------------------------------------------------------------------------------
# hand-written attention (GPT-2 and Llama), for checks that do not trust any hook point
# ---------------------------------------------------------------------------------------------

Edit = Callable[[str, torch.Tensor], torch.Tensor]
"""``edit(name, tensor)`` may replace a named intermediate of the hand-written attention:
``"q"``, ``"k"``, ``"v"`` (projection outputs ``[batch, seq, heads, head_dim]``, before rotary
embeddings), ``"probs"`` (``[batch, heads, seq, seq]``) and ``"ctx"`` (``[batch, seq, heads,
head_dim]``, the input of the output projection)."""


def _no_edit(name: str, t: torch.Tensor) -> torch.Tensor:
    return t


def _causal_softmax(scores: torch.Tensor) -> torch.Tensor:
    s = scores.shape[-1]
    mask = torch.triu(torch.ones(s, s, dtype=torch.bool), 1)
    return scores.masked_fill(mask, float("-inf")).softmax(-1)


def gpt2_attention(attn: nn.Module, x: torch.Tensor, edit: Edit = _no_edit) -> torch.Tensor:
    """GPT-2 self-attention of ``x`` (the attention input), written out."""
    b, s, d = x.shape
    h = attn.num_heads
    q, k, v = attn.c_attn(x).split(d, dim=-1)
    q, k, v = (edit(n, t.view(b, s, h, d // h)) for n, t in (("q", q), ("k", k), ("v", v)))
    scores = q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2) / (d // h) ** 0.5
    probs = edit("probs", _causal_softmax(scores))
    ctx = edit("ctx", (probs @ v.transpose(1, 2)).transpose(1, 2))
    return attn.c_proj(ctx.reshape(b, s, d))


def _rotate_half(t: torch.Tensor) -> torch.Tensor:
    half = t.shape[-1] // 2
    return torch.cat((-t[..., half:], t[..., :half]), dim=-1)


def llama_attention(attn: nn.Module, x: torch.Tensor, config: Any, edit: Edit = _no_edit) -> torch.Tensor:
    """Llama self-attention of ``x`` with rotary embeddings and grouped-query attention, written out."""
    b, s, _ = x.shape
    h, kvh = config.num_attention_heads, config.num_key_value_heads
    d = config.hidden_size // h
    q = edit("q", attn.q_proj(x).view(b, s, h, d))
    k = edit("k", attn.k_proj(x).view(b, s, kvh, d))
    v = edit("v", attn.v_proj(x).view(b, s, kvh, d))
    rope = getattr(config, "rope_parameters", None) or {}  # transformers 5; 4.x: config.rope_theta
    theta = rope.get("rope_theta", getattr(config, "rope_theta", None))
    inv_freq = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float) / d)
    freqs = torch.arange(s, dtype=torch.float)[:, None] * inv_freq[None, :]
    cos, sin = torch.cat((freqs, freqs), -1).cos(), torch.cat((freqs, freqs), -1).sin()
    q = q.transpose(1, 2) * cos + _rotate_half(q.transpose(1, 2)) * sin
    k = k.transpose(1, 2) * cos + _rotate_half(k.transpose(1, 2)) * sin
    group = h // kvh
    k = k.repeat_interleave(group, dim=1)  # query head j reads key/value head j // group
    vv = v.transpose(1, 2).repeat_interleave(group, dim=1)
    probs = edit("probs", _causal_softmax(q @ k.transpose(-1, -2) / d**0.5))
    ctx = edit("ctx", (probs @ vv).transpose(1, 2))
    return attn.o_proj(ctx.reshape(b, s, h * d))


def attention_input(model: nn.Module, path: str, inputs: dict) -> torch.Tensor:
    """The input of the module at ``path`` in a plain forward (read with a plain pre-hook)."""
    store: dict[str, torch.Tensor] = {}

    def pre(m: nn.Module, args: tuple, kwargs: dict) -> None:
        store.setdefault("x", args[0] if args else kwargs["hidden_states"])

    handle = model.get_submodule(path).register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        handle.remove()
    return store["x"]


def run_with_attention_output(model: nn.Module, path: str, inputs: dict, value: torch.Tensor) -> Any:
    """Run ``model`` with the attention module at ``path`` returning ``value`` (a plain hook)."""

    def hook(m: nn.Module, args: tuple, out: Any) -> Any:
        return (value, *out[1:]) if isinstance(out, tuple) else value

    handle = model.get_submodule(path).register_forward_hook(hook)
    try:
        with torch.no_grad():
            return model(**inputs)
    finally:
        handle.remove()
