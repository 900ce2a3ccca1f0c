"""vene-train's trainable interventions: DAS and its variants, masks, PCA, autoencoders, ReFT.

Each class is registered (through vene-train's ``vene_intervention_types`` hook) under its class
name, so with vene-train installed ``vene.RotatedSpaceIntervention`` and the other names below
resolve, and saved artifacts that use them load again.
"""

from __future__ import annotations

from vene.plugins import provided_names

from .autoencoders import AutoencoderIntervention, JumpReLUAutoencoderIntervention
from .masks import SigmoidMaskIntervention
from .pca import PCARotatedSpaceIntervention
from .reft import (
    ConsreftIntervention,
    DireftIntervention,
    LoreftIntervention,
    NoreftIntervention,
)
from .rotation import (
    BoundlessRotatedSpaceIntervention,
    LowRankRotatedSpaceIntervention,
    RotatedSpaceIntervention,
    SigmoidMaskRotatedSpaceIntervention,
)

__all__ = [
    "TRAINABLE_INTERVENTIONS",
    "RotatedSpaceIntervention",
    "LowRankRotatedSpaceIntervention",
    "BoundlessRotatedSpaceIntervention",
    "SigmoidMaskRotatedSpaceIntervention",
    "SigmoidMaskIntervention",
    "PCARotatedSpaceIntervention",
    "AutoencoderIntervention",
    "JumpReLUAutoencoderIntervention",
    "LoreftIntervention",
    "NoreftIntervention",
    "DireftIntervention",
    "ConsreftIntervention",
]

# in the order of vene-core's one table of plugin-provided names (which names the package to
# install when vene-train is missing): a new intervention is imported above and named there
TRAINABLE_INTERVENTIONS: tuple[type, ...] = tuple(
    globals()[name] for name in provided_names("vene-train", "intervention_types")
)
