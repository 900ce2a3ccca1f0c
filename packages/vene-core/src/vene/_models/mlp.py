"""A multilayer perceptron classifier with abstract components (``block_output`` ...).

Hidden states are ``[batch, positions, h_dim]``; a 2-D input ``[batch, input_dim]`` is read as one
position and the logits come back as ``[batch, num_classes]``.
"""

from __future__ import annotations

from typing import Any

from attrs import define
from torch import Tensor, nn

from .._sites import LAYER, ComponentSpec, Side
from ._table import TableResolved


@define
class MLPConfig:
    """Sizes of the MLP: ``input_dim`` (defaults to ``h_dim``), ``h_dim``, ``n_layer`` blocks."""

    h_dim: int = 16
    n_layer: int = 2
    num_classes: int = 2
    input_dim: int | None = None
    activation_function: str = "relu"
    pdrop: float = 0.0
    include_bias: bool = True
    squeeze_output: bool = True

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

    def forward(self, inputs_embeds: Tensor) -> Tensor:
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
        self.mlp = MLPModel(config)
        self.score = nn.Linear(config.h_dim, config.num_classes, bias=config.include_bias)

    def forward(self, inputs_embeds: Tensor, labels: Tensor | None = None) -> dict[str, Any]:
        squeeze = inputs_embeds.dim() == 2
        x = inputs_embeds.unsqueeze(1) if squeeze else inputs_embeds
        hidden = self.mlp(x)
        logits = self.score(hidden)
        if squeeze and self.config.squeeze_output:
            logits = logits.squeeze(1)
        out: dict[str, Any] = {"logits": logits, "last_hidden_state": hidden}
        if labels is not None:
            flat = logits.reshape(-1, logits.shape[-1])
            out["loss"] = nn.functional.cross_entropy(flat, labels.reshape(-1))
        return out


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
    config: MLPConfig | None = None, **kwargs: Any
) -> tuple[MLPConfig, None, MLPForClassification]:
    """Build a randomly initialised MLP classifier: returns ``(config, None, model)``."""
    config = config or MLPConfig(**kwargs)
    return config, None, MLPForClassification(config)
