"""A multilayer perceptron classifier with abstract components (``block_output`` ...).

Hidden states are ``[batch, positions, h_dim]``; a 2-D input ``[batch, input_dim]`` is read as one
position and the logits come back as ``[batch, num_classes]``.
"""

from __future__ import annotations

from typing import Any

from attrs import define
from torch import Tensor, nn

from .._errors import ConfigError
from .._sites import LAYER, ComponentSpec, Side
from ._output import ModelOutput, output
from ._table import TableResolved


@define
class MLPConfig:
    """Sizes of the MLP: ``input_dim`` (defaults to ``h_dim``), ``h_dim``, ``n_layer`` blocks.

    pyvene's fields ``include_emb``, ``vocab_size``, ``max_position_embeddings`` and
    ``problem_type`` are accepted; ``include_emb=True`` embeds ``input_ids`` with a ``wte`` table
    of ``vocab_size`` rows before the blocks.
    """

    model_type = "mlp"

    h_dim: int = 16
    n_layer: int = 2
    num_classes: int = 2
    input_dim: int | None = None
    activation_function: str = "relu"
    pdrop: float = 0.0
    include_bias: bool = True
    squeeze_output: bool = True
    include_emb: bool = False
    vocab_size: int = 50_257
    max_position_embeddings: int = 512
    problem_type: str = "single_label_classification"

    @property
    def in_dim(self) -> int:
        return self.input_dim if self.input_dim is not None else self.h_dim


_ACT = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class MLPBlock(nn.Module):
    def __init__(self, in_dim: int, config: MLPConfig) -> None:
        super().__init__()
        self.ff1 = nn.Linear(in_dim, config.h_dim, bias=config.include_bias)
        self.act = _ACT[config.activation_function]()
        self.dropout = nn.Dropout(config.pdrop)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.dropout(self.act(self.ff1(hidden_states)))


class MLPModel(TableResolved, nn.Module):
    """The stack of blocks: ``h[i] = act(ff1(x))``."""

    vene_prefix = ""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        self.h = nn.ModuleList(
            MLPBlock(config.in_dim if i == 0 else config.h_dim, config) for i in range(config.n_layer)
        )

    def forward(
        self,
        inputs_embeds: Tensor | None = None,
        input_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Tensor:
        if inputs_embeds is None:
            raise ConfigError(
                "MLPModel takes inputs_embeds; to feed input_ids use MLPForClassification with "
                "MLPConfig(include_emb=True), which owns the embedding table."
            )
        x = inputs_embeds
        for block in self.h:
            x = block(x)
        return x


class MLPForClassification(TableResolved, nn.Module):
    """An MLP with a linear classification head (``score``) and an optional cross-entropy loss."""

    vene_prefix = "mlp"

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.in_dim) if config.include_emb else None
        self.mlp = MLPModel(config)
        self.score = nn.Linear(config.h_dim, config.num_classes, bias=config.include_bias)

    def forward(
        self,
        inputs_embeds: Tensor | None = None,
        labels: Tensor | None = None,
        input_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> ModelOutput:
        if inputs_embeds is None:
            if self.wte is None or input_ids is None:
                raise ConfigError(
                    "MLPForClassification needs inputs_embeds, or input_ids with an MLPConfig "
                    "built with include_emb=True."
                )
            inputs_embeds = self.wte(input_ids)
        squeeze = inputs_embeds.dim() == 2
        x = inputs_embeds.unsqueeze(1) if squeeze else inputs_embeds
        hidden = self.mlp(x)
        logits = self.score(hidden)
        if squeeze and self.config.squeeze_output:
            logits = logits.squeeze(1)
        loss = None
        if labels is not None:
            flat = logits.reshape(-1, logits.shape[-1])
            loss = nn.functional.cross_entropy(flat, labels.reshape(-1))
        return output(loss, logits=logits, last_hidden_state=hidden)


def _h(config: MLPConfig) -> int:
    return config.h_dim


def _in(config: MLPConfig, layer: int) -> int:
    return config.in_dim if layer == 0 else config.h_dim


_MLP_COMPONENTS = {
    "block_input": ComponentSpec(("h", LAYER), Side.INPUT, dim=_in),
    "block_output": ComponentSpec(("h", LAYER), Side.OUTPUT, dim=_h),
    "mlp_input": ComponentSpec(("h", LAYER, "ff1"), Side.INPUT, dim=_in),
    "mlp_activation": ComponentSpec(("h", LAYER, "act"), Side.OUTPUT, dim=_h),
    "mlp_output": ComponentSpec(("h", LAYER), Side.OUTPUT, dim=_h),
}
MLPModel.vene_components = _MLP_COMPONENTS
MLPForClassification.vene_components = _MLP_COMPONENTS


def create_mlp_classifier(
    config: MLPConfig | None = None,
    tokenizer_name: str | None = None,
    cache_dir: str | None = None,
    **kwargs: Any,
) -> tuple[MLPConfig, Any, MLPForClassification]:
    """Build a randomly initialised MLP classifier: returns ``(config, tokenizer, model)``.

    The tokenizer is None unless ``tokenizer_name`` names one (loaded with transformers).
    """
    from ._tokenizer import load_tokenizer

    config = config or MLPConfig(**kwargs)
    return config, load_tokenizer(tokenizer_name, cache_dir), MLPForClassification(config)
