"""vene-viz: visualizers for vene results.

Each visualizer is a class registered with vene under its ``type_name``; build it with options,
then ``plot(data, **options)`` returns a :class:`matplotlib.figure.Figure` and
``save(path, data, **options)`` writes it:

========================  ====================  =============================================
class                     ``type_name``         data
========================  ====================  =============================================
:class:`PatchingHeatmap`  ``patching_heatmap``  ``[layers, positions]`` effects, token labels
:class:`HeadMap`          ``head_map``          ``[layers, heads]`` values
:class:`DasMask`          ``das_mask``          a 1-D mask, or a Boundless DAS / sigmoid-mask
                                                intervention
:class:`TrainingCurves`   ``training_curves``   a list of dicts (step/epoch, loss, IIA...)
:class:`AttentionMap`     ``attention``         ``[queries, keys]`` probabilities, token labels
:class:`HtmlReport`       ``html_report``       figures and tables -> one self-contained page
========================  ====================  =============================================

``plot(data, ax=...)`` draws into the axes of a multi-panel figure; ``interactive(data)``
returns the plotly figure (hover shows each value with its layer, head, position and token) and
``save("x.html", data)`` writes it as a page that works offline. Patching heatmaps and head maps
also take a ``vene.patching.PatchingResult`` (or its ``to_dict()``), and training curves what a
trainer returns. Matplotlib figures are drawn on the Agg canvas without pyplot, so no window
ever opens.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # loaded on first use (PEP 562): registering the plugin imports no numpy
    from ._base import Visualizer
    from ._curves import TrainingCurves
    from ._errors import (
        DataShapeError,
        DataTypeError,
        DataValueError,
        LabelMismatchError,
        MissingMetricError,
        VisualizationError,
    )
    from ._grids import AttentionMap, HeadMap, PatchingHeatmap
    from ._mask import DasMask, MaskReading, read_mask
    from ._notebook import interactive, repr_html
    from ._report import HtmlReport
    from ._version import __version__

_LAZY: dict[str, str] = {
    "Visualizer": "vene_viz._base",
    "TrainingCurves": "vene_viz._curves",
    "DataShapeError": "vene_viz._errors",
    "DataTypeError": "vene_viz._errors",
    "DataValueError": "vene_viz._errors",
    "LabelMismatchError": "vene_viz._errors",
    "MissingMetricError": "vene_viz._errors",
    "VisualizationError": "vene_viz._errors",
    "AttentionMap": "vene_viz._grids",
    "HeadMap": "vene_viz._grids",
    "PatchingHeatmap": "vene_viz._grids",
    "DasMask": "vene_viz._mask",
    "MaskReading": "vene_viz._mask",
    "read_mask": "vene_viz._mask",
    "interactive": "vene_viz._notebook",
    "repr_html": "vene_viz._notebook",
    "HtmlReport": "vene_viz._report",
    "__version__": "vene_viz._version",
}

__all__ = [
    "__version__",
    "Visualizer",
    "PatchingHeatmap",
    "HeadMap",
    "DasMask",
    "TrainingCurves",
    "AttentionMap",
    "HtmlReport",
    "read_mask",
    "interactive",
    "repr_html",
    "MaskReading",
    "VisualizationError",
    "DataShapeError",
    "LabelMismatchError",
    "DataTypeError",
    "DataValueError",
    "MissingMetricError",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vene_viz' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
