"""A minimal third-party vene plugin.

It adds an intervention type, ``scale`` (multiplies the selected units by a constant), and a
resolver that gives ``torch.nn.Sequential`` models one abstract component, ``step_output``: the
output of step ``layer``.
"""

from __future__ import annotations

import torch

import vene as pv

__all__ = ["ScaleIntervention", "vene_intervention_types", "vene_resolve_site"]


class ScaleIntervention(pv.SourcelessIntervention, pv.LocalistRepresentationIntervention):
    """Multiplies the units by ``factor`` (on the selected subspace, if any)."""

    type_name = "scale"

    def __init__(self, factor: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)

    def forward(self, base, source=None, subspaces=None, **kwargs):
        if subspaces is None:
            return base * self.factor
        mask = pv.subspace_mask(subspaces, base.shape[-1], device=base.device)
        mask = mask.view(mask.shape[0], *([1] * (base.dim() - 2)), mask.shape[1])
        return torch.where(mask, base * self.factor, base)


@pv.hookimpl
def vene_intervention_types():
    return [ScaleIntervention]


@pv.hookimpl
def vene_resolve_site(model, representation):
    if not isinstance(model, torch.nn.Sequential) or representation.component != "step_output":
        return None
    if not 0 <= representation.layer < len(model):
        raise pv.SiteResolutionError(
            f"step {representation.layer} is out of range: the Sequential has {len(model)} steps."
        )
    return pv.Site(module=str(representation.layer), side=pv.Side.OUTPUT, layout=pv.Layout.BD)
