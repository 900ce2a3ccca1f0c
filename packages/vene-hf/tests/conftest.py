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
    """One family: its tiny config, the model classes of each head kind, and its inputs."""

    name: str
    config: Callable[[], Any]
    kinds: dict[str, Callable[[Any], nn.Module]]
    encoder_decoder: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def build(self, kind: str = "lm", seed: int = 0) -> nn.Module:
        torch.manual_seed(seed)
        config = self.config()
        model = self.kinds[kind](config).eval()
        # larger weights than the default 0.02 init, so that every activation carries signal
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() > 1:
                    p.normal_(0.0, 0.3)
        return model

    def inputs(self, seed: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(4, VOCAB, (BATCH, SEQ), generator=g)
        if "eos" in self.extra:  # T5's sequence classifier reads the <eos> position
            ids[:, -1] = self.extra["eos"]
        out = {"input_ids": ids}
        if self.encoder_decoder:
            out["decoder_input_ids"] = torch.randint(4, VOCAB, (BATCH, SEQ), generator=g)
        return out


def _decoder(base: type, lm: type, cls: type) -> dict[str, Callable[[Any], nn.Module]]:
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

CASES: dict[str, Case] = {
    c.name: c
    for c in [
        Case(
            "gpt2",
            lambda: tf.GPT2Config(n_layer=2, n_embd=16, n_head=4, n_positions=64, **common),
            _decoder(tf.GPT2Model, tf.GPT2LMHeadModel, tf.GPT2ForSequenceClassification),
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
            _decoder(tf.GPTNeoModel, tf.GPTNeoForCausalLM, tf.GPTNeoForSequenceClassification),
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
            _decoder(tf.GPTNeoXModel, tf.GPTNeoXForCausalLM, tf.GPTNeoXForSequenceClassification),
        ),
        Case(
            "gptj",
            lambda: tf.GPTJConfig(n_layer=2, n_embd=16, n_head=4, rotary_dim=2, n_positions=64, **common),
            _decoder(tf.GPTJModel, tf.GPTJForCausalLM, tf.GPTJForSequenceClassification),
        ),
        Case(
            "llama",
            lambda: tf.LlamaConfig(**llama_dims),
            _decoder(tf.LlamaModel, tf.LlamaForCausalLM, tf.LlamaForSequenceClassification),
        ),
        Case(
            "mistral",
            lambda: tf.MistralConfig(**llama_dims, sliding_window=3),
            _decoder(tf.MistralModel, tf.MistralForCausalLM, tf.MistralForSequenceClassification),
        ),
        Case(
            "mixtral",
            lambda: tf.MixtralConfig(**llama_dims, num_local_experts=4, num_experts_per_tok=2),
            _decoder(tf.MixtralModel, tf.MixtralForCausalLM, tf.MixtralForSequenceClassification),
        ),
        Case(
            "gemma",
            lambda: tf.GemmaConfig(**llama_dims, head_dim=8),
            _decoder(tf.GemmaModel, tf.GemmaForCausalLM, tf.GemmaForSequenceClassification),
        ),
        Case(
            "gemma2",
            lambda: tf.Gemma2Config(
                **llama_dims,
                head_dim=8,
                sliding_window=3,
                query_pre_attn_scalar=8,
                attn_logit_softcapping=5.0,
            ),
            _decoder(tf.Gemma2Model, tf.Gemma2ForCausalLM, tf.Gemma2ForSequenceClassification),
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
            _decoder(tf.Gemma3TextModel, tf.Gemma3ForCausalLM, tf.Gemma3TextForSequenceClassification),
        ),
        Case(
            "qwen2",
            lambda: tf.Qwen2Config(**llama_dims),
            _decoder(tf.Qwen2Model, tf.Qwen2ForCausalLM, tf.Qwen2ForSequenceClassification),
        ),
        Case(
            "qwen3",
            lambda: tf.Qwen3Config(**llama_dims, head_dim=8),
            _decoder(tf.Qwen3Model, tf.Qwen3ForCausalLM, tf.Qwen3ForSequenceClassification),
        ),
        Case(
            "olmo",
            lambda: tf.OlmoConfig(**llama_dims),
            _decoder(tf.OlmoModel, tf.OlmoForCausalLM, tf.OlmoForSequenceClassification),
        ),
        Case(
            "olmo2",
            lambda: tf.Olmo2Config(**llama_dims),
            _decoder(tf.Olmo2Model, tf.Olmo2ForCausalLM, tf.Olmo2ForSequenceClassification),
        ),
        Case(
            "phi3",
            lambda: tf.Phi3Config(**llama_dims),
            _decoder(tf.Phi3Model, tf.Phi3ForCausalLM, tf.Phi3ForSequenceClassification),
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
            {"base": tf.BertModel, "lm": tf.BertForMaskedLM, "seqcls": tf.BertForSequenceClassification},
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
                "base": tf.RobertaModel,
                "lm": tf.RobertaForMaskedLM,
                "seqcls": tf.RobertaForSequenceClassification,
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
                "base": tf.T5Model,
                "lm": tf.T5ForConditionalGeneration,
                "seqcls": tf.T5ForSequenceClassification,
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
            {"base": tf.EsmModel, "lm": tf.EsmForMaskedLM, "seqcls": tf.EsmForSequenceClassification},
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
    theta = config.rope_parameters["rope_theta"]
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
