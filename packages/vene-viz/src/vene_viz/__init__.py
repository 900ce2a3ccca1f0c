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

Figures are drawn on matplotlib's Agg canvas without pyplot, so no window ever opens.
"""

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
from ._report import HtmlReport
from ._version import __version__

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
    "MaskReading",
    "VisualizationError",
    "DataShapeError",
    "LabelMismatchError",
    "DataTypeError",
    "DataValueError",
    "MissingMetricError",
]
