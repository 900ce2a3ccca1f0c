"""Backpack GPT-2 (Hewitt et al. 2023, "Backpack Language Models", arXiv:2305.16765), as a torch module.

A Backpack predicts the next token from a weighted sum of *sense vectors*. Every vocabulary item
``x`` has ``k = num_senses`` sense vectors ``C(x) in R^{k x d}``, computed from its embedding alone by
the *sense network* (a residual feed-forward block, then an MLP widening ``d`` to ``k * d``). A GPT-2
trunk reads the sequence; the *contextualization network* turns its last hidden states into
``k`` causal weight matrices ``alpha_l in R^{n x n}`` (one softmax attention per sense). The output
at position ``i`` is ``o_i = sum_l sum_j alpha_l[i, j] C(x_j)_l``, and the logits are ``E o_i`` with
the (tied) input embeddings ``E``.

Module names follow the published ``stanfordnlp/backpack-gpt2`` checkpoint (``backpack.gpt2_model``,
``backpack.sense_network``, ``backpack.sense_weight_net``), so that it loads with
``from_pretrained`` and pyvene's component names apply. Shapes: the sense network returns
``[batch, seq, k * d]`` (sense ``l`` of position ``i`` in columns ``l*d:(l+1)*d``), the
contextualization ``[batch, k, seq, seq]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from transformers import GPT2Config, GPT2Model
from transformers.activations import ACT2FN
from transformers.modeling_outputs import ModelOutput
from transformers.models.gpt2.modeling_gpt2 import GPT2PreTrainedModel
from transformers.pytorch_utils import Conv1D

__all__ = [
    "BackpackGPT2Config",
    "BackpackGPT2Model",
    "BackpackGPT2LMHeadModel",
    "BackpackGPT2Output",
]


class BackpackGPT2Config(GPT2Config):
    """A GPT-2 config with the Backpack's ``num_senses`` and ``sense_intermediate_scale``.

    ``sense_intermediate_scale * n_embd`` is the hidden width of the MLP that makes the senses.
    """

    model_type = "backpack-gpt2"

    def __init__(self, num_senses: int = 16, sense_intermediate_scale: int = 4, **kwargs: Any) -> None:
        self.num_senses = num_senses
        self.sense_intermediate_scale = sense_intermediate_scale
        super().__init__(**kwargs)


@dataclass
class BackpackGPT2Output(ModelOutput):
    """``logits`` (or the output vectors ``hidden_states`` of the base model) and the weights."""

    logits: Tensor | None = None
    hidden_states: Tensor | None = None
    contextualization: Tensor | None = None


class _FeedForward(nn.Module):
    """``c_proj(act(c_fc(x)))`` with GPT-2's ``Conv1D`` layers (weights stored ``[in, out]``)."""

    def __init__(self, width: int, inner: int, out: int, config: BackpackGPT2Config) -> None:
        super().__init__()
        self.c_fc = Conv1D(inner, width)
        self.act = ACT2FN[config.activation_function]
        self.c_proj = Conv1D(out, inner)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class _SenseBlock(nn.Module):
    """One residual feed-forward block without attention: each position is read alone."""

    def __init__(self, config: BackpackGPT2Config) -> None:
        super().__init__()
        d = config.n_embd
        self.ln_1 = nn.LayerNorm(d, eps=config.layer_norm_epsilon)
        self.mlp = _FeedForward(d, 4 * d, d, config)
        self.ln_2 = nn.LayerNorm(d, eps=config.layer_norm_epsilon)
        self.resid_dropout1 = nn.Dropout(config.resid_pdrop)
        self.resid_dropout2 = nn.Dropout(config.resid_pdrop)

    def forward(self, x: Tensor, stream: Tensor) -> Tensor:
        stream = stream + self.resid_dropout1(x)
        stream = stream + self.resid_dropout2(self.mlp(self.ln_1(stream)))
        return self.ln_2(stream)


class _SenseNetwork(nn.Module):
    """Word embeddings ``[batch, seq, d]`` to their ``k`` sense vectors ``[batch, seq, k * d]``."""

    def __init__(self, config: BackpackGPT2Config) -> None:
        super().__init__()
        d = config.n_embd
        self.dropout = nn.Dropout(config.embd_pdrop)
        self.ln = nn.LayerNorm(d, eps=config.layer_norm_epsilon)
        self.block = _SenseBlock(config)
        self.final_mlp = _FeedForward(d, config.sense_intermediate_scale * d, config.num_senses * d, config)

    def forward(self, embeds: Tensor) -> Tensor:
        stream = self.dropout(embeds)
        return self.final_mlp(self.block(self.ln(stream), stream))


class _ContextualizationNetwork(nn.Module):
    """Hidden states ``[batch, seq, d]`` to causal weights ``[batch, k, seq, seq]``, one softmax per sense."""

    def __init__(self, num_senses: int, width: int) -> None:
        super().__init__()
        self.num_senses = num_senses
        self.c_attn = nn.Linear(width, 2 * width)

    def forward(self, states: Tensor) -> Tensor:
        b, s, d = states.shape
        k = self.num_senses
        q, key = self.c_attn(states).view(b, s, 2, k, d // k).unbind(dim=2)
        scores = torch.einsum("bikc,bjkc->bkij", q, key) / math.sqrt(d // k)
        future = torch.ones(s, s, dtype=torch.bool, device=states.device).triu(1)
        return scores.masked_fill(future, torch.finfo(scores.dtype).min).softmax(dim=-1)


class _BackpackPreTrainedModel(GPT2PreTrainedModel):
    config_class = BackpackGPT2Config
    base_model_prefix = "backpack"
    _no_split_modules = ["GPT2Block"]
    _keys_to_ignore_on_load_unexpected = [r"lm_head\.weight", r".*attn\.(masked_)?bias"]
    _keys_to_ignore_on_load_missing = [r".*attn\.(masked_)?bias"]


class BackpackGPT2Model(_BackpackPreTrainedModel):
    """The Backpack without its output embedding: returns the output vectors ``o`` and the weights."""

    def __init__(self, config: BackpackGPT2Config) -> None:
        super().__init__(config)
        self.gpt2_model = GPT2Model(config)
        self.sense_network = _SenseNetwork(config)
        self.sense_weight_net = _ContextualizationNetwork(config.num_senses, config.n_embd)
        self.post_init()

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.gpt2_model.wte

    def senses(self, input_ids: Tensor) -> Tensor:
        """The sense vectors of ``input_ids``: ``[batch, k, seq, d]``."""
        flat = self.sense_network(self.word_embeddings(input_ids))
        b, s, _ = flat.shape
        return flat.view(b, s, self.config.num_senses, -1).transpose(1, 2)

    def forward(
        self, input_ids: Tensor, position_ids: Tensor | None = None, **kwargs: Any
    ) -> BackpackGPT2Output:
        senses = self.senses(input_ids)
        trunk = self.gpt2_model(input_ids=input_ids, position_ids=position_ids).last_hidden_state
        weights = self.sense_weight_net(trunk)
        out = (weights @ senses).sum(dim=1)  # sum over senses of [b, k, s, s] @ [b, k, s, d]
        return BackpackGPT2Output(hidden_states=out, contextualization=weights)


class BackpackGPT2LMHeadModel(_BackpackPreTrainedModel):
    """The Backpack language model: logits are the output vectors times the word embeddings."""

    def __init__(self, config: BackpackGPT2Config) -> None:
        super().__init__(config)
        self.backpack = BackpackGPT2Model(config)
        self.post_init()

    def forward(
        self, input_ids: Tensor, position_ids: Tensor | None = None, **kwargs: Any
    ) -> BackpackGPT2Output:
        out = self.backpack(input_ids, position_ids=position_ids)
        logits = nn.functional.linear(out.hidden_states, self.backpack.word_embeddings.weight)
        return BackpackGPT2Output(logits=logits, contextualization=out.contextualization)
