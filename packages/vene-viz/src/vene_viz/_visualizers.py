"""The visualizer classes this package registers, in one tuple."""

from __future__ import annotations

from ._curves import TrainingCurves
from ._grids import AttentionMap, HeadMap, PatchingHeatmap
from ._mask import DasMask
from ._report import HtmlReport

__all__ = ["VISUALIZERS"]

VISUALIZERS: tuple[type, ...] = (
    PatchingHeatmap,
    HeadMap,
    DasMask,
    TrainingCurves,
    AttentionMap,
    HtmlReport,
)
