"""One call from any vene object to its interactive figure, and its notebook HTML.

``interactive(obj)`` picks the visualizer from what ``obj`` is: a patching result (a
``vene.patching.PatchingResult``, its ``to_dict()`` or the CLI's JSON) gives a heatmap, a head
map or a layer curve; a training history (vene-train's ``TrainingHistory``, a transformers
``TrainerState``, or a list of per-step dicts) gives the training curves. ``repr_html(obj)`` is
that figure as an HTML fragment with plotly.js inline, which a class's ``_repr_html_`` can
return so that a notebook shows the figure offline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import DataTypeError

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["interactive", "repr_html"]


def _visualizer(obj: Any) -> Any:
    from ._curves import TrainingCurves, history_records
    from ._grids import HeadMap, PatchingHeatmap
    from ._result import is_result, read_result

    if is_result(obj):
        return HeadMap() if read_result(obj).dims == ("layer", "head") else PatchingHeatmap()
    if history_records(obj) is not None or (
        isinstance(obj, Sequence) and obj and all(isinstance(r, Mapping) for r in obj)
    ):
        return TrainingCurves()
    raise DataTypeError(
        f"cannot tell which figure a {type(obj).__name__} is; interactive() takes a patching "
        "result or a training history. For a tensor, use a visualizer, e.g. "
        "PatchingHeatmap().interactive(scores)."
    )


def interactive(obj: Any, **options: Any) -> go.Figure:
    """The plotly figure of a patching result or a training history (options as the visualizer's)."""
    return _visualizer(obj).interactive(obj, **options)


def repr_html(obj: Any, **options: Any) -> str:
    """An HTML fragment (a ``<div>`` with plotly.js inline) showing ``obj``'s interactive figure."""
    fig = interactive(obj, **options)
    return str(fig.to_html(full_html=False, include_plotlyjs=True,
                           config={"displaylogo": False, "responsive": True}))
