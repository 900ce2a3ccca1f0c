"""A recurrent (GRU) classifier whose cells run once per timestep, so unit ``t`` picks a step.

Components (``layer`` is the stacked cell): ``cell_input`` (the cell's input at a step),
``cell_output`` (its new hidden state), ``block_output`` (alias of ``cell_output``). An
intervention at step t changes every later step, as recurrence demands.
"""

from __future__ import annotations

from typing import Any

import torch
from attrs import define
from torch import Tensor, nn

from .._sites import LAYER, ComponentSpec, Layout, Side
from ._output import ModelOutput, output
from ._table import TableResolved


@define
class GRUConfig:
    """Sizes of the GRU: ``input_dim`` (defaults to ``h_dim``), ``h_dim``, ``n_layer`` cells.

    ``n_layer`` defaults to 2, as in pyvene. pyvene's fields are accepted: ``n_labels`` (an
    alias of ``num_classes``), ``include_emb`` (with ``vocab_size``: embed ``input_ids``),
    ``max_position_embeddings``, ``pdrop`` (dropout on each cell's output),
    ``problem_type`` and ``initializer_range``.
    """

    model_type = "gru"

    h_dim: int = 16
    n_layer: int = 2
    num_classes: int = 2
    input_dim: int | None = None
    vocab_size: int | None = None
    include_bias: bool = True
    include_emb: bool = False
    max_position_embeddings: int = 512
    n_labels: int | None = None
    pdrop: float = 0.0
    problem_type: str = "single_label_classification"
    initializer_range: float = 0.02

    def __attrs_post_init__(self) -> None:
        if self.n_labels is not None:
            self.num_classes = self.n_labels
        if self.include_emb and self.vocab_size is None:
            self.vocab_size = 50_257

    @property
    def in_dim(self) -> int:
        return self.input_dim if self.input_dim is not None else self.h_dim


class GRUCell(nn.Module):
    """One GRU cell, called as ``cell(x_t, h_prev) -> h_t``."""

    def __init__(self, in_dim: int, h_dim: int, bias: bool) -> None:
        super().__init__()
        self.cell = nn.GRUCell(in_dim, h_dim, bias=bias)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        return self.cell(x, h)


class GRUModel(TableResolved, nn.Module):
    """Stacked GRU cells unrolled over time; returns hidden states ``[batch, time, h_dim]``."""

    def __init__(self, config: GRUConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.in_dim) if config.vocab_size else None
        self.cells = nn.ModuleList(
            GRUCell(config.in_dim if i == 0 else config.h_dim, config.h_dim, config.include_bias)
            for i in range(config.n_layer)
        )
        self.dropout = nn.Dropout(config.pdrop)

    def get_input_embeddings(self) -> nn.Embedding | None:
        return self.wte

    def set_input_embeddings(self, new_embeddings: nn.Embedding) -> None:
        self.wte = new_embeddings

    def forward(
        self,
        input_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        position_ids: Tensor | None = None,
        hidden_states: Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Tensor:
        if inputs_embeds is None:
            if self.wte is None or input_ids is None:
                raise ValueError("pass inputs_embeds, or input_ids to a GRU built with vocab_size")
            inputs_embeds = self.wte(input_ids)
        b, t, _ = inputs_embeds.shape
        hs = [inputs_embeds.new_zeros(b, self.config.h_dim) for _ in self.cells]
        outs = []
        for step in range(t):
            x = inputs_embeds[:, step]
            for i, cell in enumerate(self.cells):
                hs[i] = cell(x, hs[i])
                x = self.dropout(hs[i])
            outs.append(x)
        return torch.stack(outs, dim=1)


class GRUForClassification(TableResolved, nn.Module):
    """A GRU whose last hidden state is classified by a linear head (``score``)."""

    vene_prefix = "gru"

    def __init__(self, config: GRUConfig) -> None:
        super().__init__()
        self.config = config
        self.gru = GRUModel(config)
        self.score = nn.Linear(config.h_dim, config.num_classes)

    def forward(
        self,
        input_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        labels: Tensor | None = None,
        position_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> ModelOutput:
        hidden = self.gru(input_ids=input_ids, inputs_embeds=inputs_embeds)
        logits = self.score(hidden[:, -1])
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return output(loss, logits=logits, last_hidden_state=hidden)


def _h(config: GRUConfig) -> int:
    return config.h_dim


def _in(config: GRUConfig, layer: int) -> int:
    return config.in_dim if layer == 0 else config.h_dim


_GRU_COMPONENTS = {
    "cell_input": ComponentSpec(("cells", LAYER), Side.INPUT, dim=_in, layout=Layout.BD),
    "cell_output": ComponentSpec(("cells", LAYER), Side.OUTPUT, dim=_h, layout=Layout.BD),
    "block_output": ComponentSpec(("cells", LAYER), Side.OUTPUT, dim=_h, layout=Layout.BD),
}
GRUModel.vene_components = _GRU_COMPONENTS
GRUForClassification.vene_components = _GRU_COMPONENTS


def create_gru_classifier(
    config: GRUConfig | None = None,
    tokenizer_name: str | None = None,
    cache_dir: str | None = None,
    **kwargs: Any,
) -> tuple[GRUConfig, Any, GRUForClassification]:
    """Build a randomly initialised GRU classifier: returns ``(config, tokenizer, model)``.

    The tokenizer is None unless ``tokenizer_name`` names one (loaded with transformers).
    """
    from ._tokenizer import load_tokenizer

    config = config or GRUConfig(**kwargs)
    return config, load_tokenizer(tokenizer_name, cache_dir), GRUForClassification(config)


create_gru = create_gru_classifier
