"""A learned per-feature mix of base and source, in the model's own basis."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

import vene

from ._common import Tempered, need_dim, need_source, restrict

__all__ = ["SigmoidMaskIntervention"]


class SigmoidMaskIntervention(Tempered, vene.TrainableIntervention, vene.LocalistRepresentationIntervention):
    """``(1 − m)·base + m·source`` with ``m = sigmoid(mask / T)`` learned per feature.

    ``mask`` starts at ``init_mask`` (0: an even mix) and the temperature ``T`` at
    ``init_temperature`` (0.01, as pyvene); the temperature is a buffer, not trained. Each unit
    (``[batch, units, embed_dim]``) is mixed with the same mask; ``subspaces`` restricts the mix
    to the named features.
    """

    def __init__(self, init_mask: float = 0.0, init_temperature: float = 0.01, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        n = need_dim(
            self.embed_dim,
            "embed_dim",
            type(self).__name__,
            "IntervenableModel passes the site's width; when building the intervention "
            "yourself pass embed_dim=<width>.",
        )
        self.mask = nn.Parameter(torch.full((n,), float(init_mask)))
        self.register_buffer("temperature", torch.tensor(float(init_temperature)))

    def mask_weights(self) -> Tensor:
        """The ``[embed_dim]`` weights with which each feature takes the source."""
        return torch.sigmoid(self.mask / self.temperature)

    def forward(
        self, base: Tensor, source: Tensor | None = None, subspaces: Any = None, **kwargs: Any
    ) -> Tensor:
        source = need_source(source, type(self).__name__)
        x = base.to(self.mask.dtype)
        s = source.to(self.mask.dtype)
        m = restrict(self.mask_weights(), subspaces, x)
        return ((1.0 - m) * x + m * s).to(base.dtype)
