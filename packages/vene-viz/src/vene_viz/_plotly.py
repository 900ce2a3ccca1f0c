"""Interactive figures with plotly: heatmap panels, lines, bars, and their HTML.

Every figure here is a :class:`plotly.graph_objects.Figure` built from the same arrays that the
matplotlib figures draw; hover labels carry the value and its coordinates (layer, head, position
and token). HTML is written by plotly's own ``to_html``, with plotly.js inline (the file works
offline) or in a ``plotly.min.js`` next to it. plotly is imported on first use.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._errors import VisualizationError

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "is_plotly_figure", "colorscale", "integer_axis", "ticks_axis", "grid_figure", "line_figure",
    "bar_figure", "to_html", "write_html", "PLOTLYJS_MODES",
]

PLOTLYJS_MODES = ("inline", "directory")
_CONFIG = {"displaylogo": False, "responsive": True}
_FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13}


def is_plotly_figure(obj: Any) -> bool:
    """Whether ``obj`` is a plotly figure, without importing plotly when it is not loaded."""
    import sys

    module = sys.modules.get("plotly.graph_objects")
    return module is not None and isinstance(obj, module.Figure)


def colorscale(cmap: Any) -> list[list[Any]]:
    """A matplotlib colormap (name or object) as a plotly colorscale, so both backends agree."""
    import matplotlib
    from matplotlib.colors import to_hex

    try:
        cm = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    except KeyError:
        raise VisualizationError(
            f"unknown colormap {cmap!r}; use a matplotlib colormap name such as 'viridis', "
            "'RdBu_r' or 'Purples'."
        ) from None
    return [[i / 16, to_hex(cm(i / 16))] for i in range(17)]


def integer_axis(values: Any) -> dict[str, Any]:
    """Axis settings that put ticks on whole numbers only, about ten of them at most."""
    lo, hi = (float(min(values)), float(max(values))) if len(values) else (0.0, 1.0)
    raw = max((hi - lo) / 10.0, 1.0)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return {"tickmode": "linear", "tick0": 0, "dtick": int(step), "tickformat": "d"}


def ticks_axis(labels: Sequence[str], max_ticks: int = 64) -> dict[str, Any]:
    """Axis settings that label cell ``i`` with ``labels[i]`` (duplicates stay apart)."""
    n = len(labels)
    step = max(1, math.ceil(n / max_ticks))
    idx = list(range(0, n, step))
    return {"tickmode": "array", "tickvals": idx, "ticktext": [labels[i] for i in idx],
            "range": [-0.5, n - 0.5]}


def _axis_title(text: Any) -> dict[str, Any]:
    return {"title": {"text": str(text)}} if text else {}


def _title(title: Any, subtitle: Any = None) -> dict[str, Any]:
    if not title and not subtitle:
        return {}
    text = str(title or "")
    if subtitle:
        text += f"<br><sup>{subtitle}</sup>"
    return {"title": {"text": text, "x": 0.02, "xanchor": "left"}}


def _nan_to_none(arr: np.ndarray) -> list[Any]:
    return [[None if np.isnan(v) else float(v) for v in row] for row in arr]


def grid_figure(
    panels: Sequence[tuple[str | None, np.ndarray, list[list[str]]]],
    *,
    cmap: Any,
    zmin: float | None,
    zmax: float | None,
    colorbar: Any,
    title: Any,
    subtitle: Any,
    xlabel: Any,
    ylabel: Any,
    xaxis: dict[str, Any],
    yaxis: dict[str, Any],
    reversed_y: bool,
    size: tuple[int, int],
) -> go.Figure:
    """One heatmap per panel ``(title, z, hover)``, side by side, sharing one colour scale."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n = len(panels)
    names = [p[0] or "" for p in panels]
    fig = make_subplots(rows=1, cols=n, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=names if any(names) else None)
    for i, (_, z, hover) in enumerate(panels):
        fig.add_trace(
            go.Heatmap(z=_nan_to_none(z), customdata=hover, hovertemplate="%{customdata}<extra></extra>",
                       coloraxis="coloraxis", xgap=1, ygap=1),
            row=1, col=i + 1,
        )
        fig.update_xaxes(**xaxis, **_axis_title(xlabel), showgrid=False, row=1, col=i + 1)
        fig.update_yaxes(**yaxis, showgrid=False, row=1, col=i + 1,
                         **(_axis_title(ylabel) if i == 0 else {}))
    if reversed_y:
        fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        coloraxis={"colorscale": colorscale(cmap), "cmin": zmin, "cmax": zmax,
                   "colorbar": {"title": {"text": str(colorbar or ""), "side": "right"}}},
        width=size[0], height=size[1], font=_FONT, plot_bgcolor="#d9d9d9",
        margin={"l": 70, "r": 30, "t": 80 if (title or subtitle) else 40, "b": 70},
        **_title(title, subtitle),
    )
    return fig


def line_figure(
    series: Sequence[tuple[str, Any, Any, Sequence[str]]],
    *,
    hlines: Sequence[tuple[str, float]] = (),
    title: Any = None,
    subtitle: Any = None,
    xlabel: Any = None,
    ylabels: Sequence[Any] = (),
    xaxis: dict[str, Any] | None = None,
    stacked: bool = False,
    logy: Sequence[bool] = (),
    size: tuple[int, int] = (760, 420),
) -> go.Figure:
    """Lines with markers, ``(name, x, y, hover)`` each; stacked panels sharing x when asked."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = len(series) if stacked else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    for i, (name, xs, ys, hover) in enumerate(series):
        row = i + 1 if stacked else 1
        fig.add_trace(
            go.Scatter(x=list(map(float, xs)), y=[None if np.isnan(v) else float(v) for v in ys],
                       mode="lines+markers", name=name, customdata=list(hover),
                       hovertemplate="%{customdata}<extra></extra>", marker={"size": 6}),
            row=row, col=1,
        )
        if stacked and i < len(ylabels):
            fig.update_yaxes(row=row, col=1, **_axis_title(ylabels[i]),
                             **({"type": "log"} if i < len(logy) and logy[i] else {}))
    if not stacked and ylabels:
        fig.update_yaxes(**_axis_title(ylabels[0]))
    for name, value in hlines:
        fig.add_hline(y=value, line_dash="dash", line_color="#666", line_width=1,
                      annotation_text=f"{name} {value:.4g}", annotation_position="top left")
    fig.update_xaxes(**(xaxis or {}))
    fig.update_xaxes(**_axis_title(xlabel), row=rows, col=1)
    fig.update_layout(width=size[0], height=size[1], font=_FONT, showlegend=len(series) > 1 and not stacked,
                      margin={"l": 70, "r": 30, "t": 80 if (title or subtitle) else 40, "b": 60},
                      **_title(title, subtitle))
    return fig


def bar_figure(
    values: np.ndarray, hover: Sequence[str], *, cmap: Any, cmin: float, cmax: float,
    hline: float | None, vline: float | None, title: Any, xlabel: Any, ylabel: Any,
    size: tuple[int, int],
) -> go.Figure:
    """One bar per entry, coloured by value, with an optional threshold and boundary line."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(
        x=list(range(values.size)), y=[None if np.isnan(v) else float(v) for v in values],
        customdata=list(hover), hovertemplate="%{customdata}<extra></extra>",
        marker={"color": [0.0 if np.isnan(v) else float(v) for v in values],
                "colorscale": colorscale(cmap), "cmin": cmin, "cmax": cmax, "showscale": True,
                "colorbar": {"title": {"text": "mask value"}}},
    ))
    if hline is not None:
        fig.add_hline(y=hline, line_dash="dash", line_color="#666", line_width=1)
    if vline is not None:
        fig.add_vline(x=vline, line_dash="dot", line_color="crimson", line_width=1.5,
                      annotation_text=f"boundary {vline + 0.5:.2f}")
    fig.update_xaxes(**integer_axis(range(values.size)), **_axis_title(xlabel))
    fig.update_yaxes(**_axis_title(ylabel))
    text = str(title or "").replace("\n", "<br><sup>", 1)
    fig.update_layout(width=size[0], height=size[1], font=_FONT,
                      **_title(text + ("</sup>" if "<sup>" in text else ""), None))
    return fig


def _check_mode(plotlyjs: Any) -> str:
    if plotlyjs not in PLOTLYJS_MODES:
        raise VisualizationError(
            f"plotlyjs must be one of {', '.join(map(repr, PLOTLYJS_MODES))}, got {plotlyjs!r}: "
            "'inline' puts plotly.js in the page (it works offline, ~4.6 MB), 'directory' writes "
            "one plotly.min.js next to the HTML files that share it."
        )
    return str(plotlyjs)


def to_html(fig: go.Figure, *, plotlyjs: str = "inline", full_html: bool = True) -> str:
    """The figure as HTML from plotly's ``to_html``; ``directory`` loads ``plotly.min.js`` beside it."""
    mode = _check_mode(plotlyjs)
    return str(fig.to_html(include_plotlyjs=True if mode == "inline" else "directory",
                           full_html=full_html, config=_CONFIG))


def write_html(path: pathlib.Path, fig: go.Figure, *, plotlyjs: str = "inline") -> pathlib.Path:
    """Write the figure's HTML page (and, for ``directory``, the shared ``plotly.min.js``)."""
    mode = _check_mode(plotlyjs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_html(fig, plotlyjs=mode), encoding="utf-8")
    if mode == "directory":
        from plotly.offline import get_plotlyjs

        bundle = path.parent / "plotly.min.js"
        text = get_plotlyjs()
        if not bundle.exists() or bundle.read_text(encoding="utf-8") != text:
            bundle.write_text(text, encoding="utf-8")
    return path
