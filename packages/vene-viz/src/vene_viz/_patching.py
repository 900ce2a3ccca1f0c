"""Figures of patching results: heatmaps per component, head grids, and layer/window curves.

A result's named dims decide the figure: one dim (``("layer",)``, a window curve) is a line
with the baselines as dashed lines; two dims are one heatmap (layers up the y-axis); three dims
(``("component", "layer", "position")``) are one heatmap per entry of the first, sharing one
colour scale. Titles come from the method, kind and settings, the colour bar's label from the
metric. The colour scale starts at the unpatched run's baseline, so an unchanged cell is white:
sequential up to the baseline it is patched towards when no cell falls below the start (causal
tracing of a probability, as in ROME's figures), diverging around the start otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from ._base import target_axes
from ._data import display_label
from ._errors import DataShapeError, LabelMismatchError
from ._grids import _auto_figsize, _pixels, draw_panel, grid_scale
from ._result import _KINDS, ResultView

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_result", "interactive_result"]

# Class-default colour bar labels, replaced by the result's metric.
_DEFAULT_LABELS = {"patching effect", "effect"}


def _with_options(view: ResultView, opts: dict[str, Any]) -> ResultView:
    tokens = opts.get("tokens")
    if tokens is None:
        return view
    if isinstance(tokens, (str, bytes)):
        raise LabelMismatchError(f"tokens must be a list with one string per position, got {tokens!r}.")
    tokens = [str(t) for t in tokens]
    top = max((p for p in view.coords.get("position", []) if isinstance(p, int)), default=-1)
    if top >= len(tokens):
        raise LabelMismatchError(
            f"got {len(tokens)} tokens, but the result has position {top}; give one token per "
            "prompt position."
        )
    return attrs.evolve(view, tokens=tokens)


def _scale_opts(view: ResultView, opts: dict[str, Any]) -> tuple[dict[str, Any], tuple[float, ...]]:
    """The options with ``center`` at the unpatched baseline, and the other baseline to reach."""
    ref = view.reference()
    out = dict(opts)
    if not out.get("colorbar_label") or out["colorbar_label"] in _DEFAULT_LABELS:
        out["colorbar_label"] = view.metric
    if ref is None or out["center"] != "auto":
        return out, ()
    finite = view.scores[~np.isnan(view.scores)]
    start, target = ref[1], ref[3]
    tol = 1e-6 * max(float(np.max(np.abs(finite))) if finite.size else 0.0, abs(start), abs(target))
    if finite.size and finite.min() >= start - tol and target >= start and out["vmin"] is None:
        # every cell lies on the target's side: a sequential scale from the unpatched baseline
        top = max(float(finite.max()), target)
        out.update(center=None, vmin=start, vmax=out["vmax"] if out["vmax"] is not None else (top if top > start else start + 1.0))
        return out, ()
    out["center"] = start
    return out, (target,)


def _panels(view: ResultView, opts: dict[str, Any]) -> tuple[list[tuple[str | None, np.ndarray]], str, str, list[Any], list[Any]]:
    """``(title, matrix)`` panels and the row/column dims and coordinates they share."""
    dims, scores = view.dims, view.scores
    if len(dims) == 3:
        lead, rest = dims[0], dims[1:]
        mats = [scores[i] for i in range(scores.shape[0])]
        names: list[str | None] = [_KINDS.get(str(c), str(c)) if lead == "component" else f"{lead} {c}" for c in view.coords[lead]]
    elif len(dims) == 2:
        rest, mats, names = dims, [scores], [None]
    else:
        raise DataShapeError(
            f"a patching result with dims {dims} has {len(dims)} dims; vene-viz draws 1 (a curve), "
            "2 (a heatmap) or 3 (a heatmap per entry of the first). Select a slice first."
        )
    row, col = rest
    if col == "layer" and row != "layer":  # layers go up the y-axis
        row, col = col, row
        mats = [m.T for m in mats]
    if opts.get("transpose"):
        row, col = col, row
        mats = [m.T for m in mats]
    return list(zip(names, mats)), row, col, view.coords[row], view.coords[col]


def _title(view: ResultView, opts: dict[str, Any]) -> str:
    return str(opts["title"]) if opts["title"] else view.title()


def _hover_cells(view: ResultView, mat: np.ndarray, row: str, col: str, rows: list[Any], cols: list[Any]) -> list[list[str]]:
    ref = view.reference()
    out = []
    for i, line in enumerate(mat):
        cells = []
        for j, v in enumerate(line):
            text = f"{view.hover(row, rows[i])}<br>{view.hover(col, cols[j])}<br>{view.metric} = "
            text += "not measured" if np.isnan(v) else f"{v:.4g}"
            if ref is not None and not np.isnan(v) and ref[3] != ref[1]:
                text += f"<br>{(v - ref[1]) / (ref[3] - ref[1]):.0%} of the way {ref[0]} → {ref[2]}"
            cells.append(text)
        out.append(cells)
    return out


def plot_result(view: ResultView, opts: dict[str, Any], ax: Any = None) -> Figure:
    """The matplotlib figure of a result (into ``ax`` when given)."""
    view = _with_options(view, opts)
    if len(view.dims) == 1:
        return _plot_line(view, opts, ax)
    opts, include = _scale_opts(view, opts)
    panels, row, col, rows, cols = _panels(view, opts)
    row_labels = [display_label(view.tick(row, r)) for r in rows]
    col_labels = [display_label(view.tick(col, c)) for c in cols]
    n = len(panels)
    w, h = _auto_figsize(len(rows), len(cols), col_labels, row_labels)
    fig, axes = target_axes(ax, n, opts["figsize"] or (min(w * n, 30.0), h))
    stacked = np.stack([m for _, m in panels])
    scale = grid_scale(stacked.reshape(-1, stacked.shape[-1]), opts, "Purples", include)
    col_name = "token" if col == "position" and view.tokens is not None else col
    row_name = "token" if row == "position" and view.tokens is not None else row
    panel_opts = {**opts, "xlabel": opts["xlabel"] or col_name,
                  "ylabel": row_name if opts["ylabel"] in (None, "layer") else opts["ylabel"]}
    im: Any = None
    for i, (a, (name, mat)) in enumerate(zip(axes, panels)):
        im = draw_panel(a, mat, panel_opts, row_labels=row_labels, col_labels=col_labels,
                        origin="lower" if row == "layer" else "upper", scale=scale, ylabel=i == 0)
        if name:
            a.set_title(name, fontsize=10)
    bar = fig.colorbar(im, ax=axes, label=opts["colorbar_label"], shrink=0.9 if len(rows) > 4 else 1.0)
    lo, hi = bar.mappable.get_clim()
    for value in view.baselines.values():
        if lo <= value <= hi:
            bar.ax.axhline(value, color="black", linestyle="--", linewidth=0.9)
    heading = f"{_title(view, opts)}\n{view.subtitle()}"
    if ax is None and n > 1:
        fig.suptitle(heading, fontsize=11)
    elif n == 1:
        axes[0].set_title(heading, fontsize=10)
    return fig


def _line_points(view: ResultView) -> tuple[str, list[Any], np.ndarray, list[str] | None]:
    (dim,) = view.dims
    coords = view.coords[dim]
    labels = None
    if dim == "position" and view.tokens is not None:
        labels = [view.tick(dim, c) for c in coords]
    return dim, coords, view.scores, labels


def _plot_line(view: ResultView, opts: dict[str, Any], ax: Any) -> Figure:
    from matplotlib.ticker import MaxNLocator

    dim, coords, ys, labels = _line_points(view)
    fig, (target,) = target_axes(ax, 1, opts["figsize"] or (6.4, 3.6))
    numeric = all(isinstance(c, (int, np.integer)) for c in coords) and labels is None
    xs = np.asarray(coords, dtype=float) if numeric else np.arange(len(coords), dtype=float)
    target.plot(xs, ys, marker="o", markersize=4, linewidth=1.5, color="C0", label=view.metric)
    for i, (name, value) in enumerate(view.baselines.items()):
        target.axhline(value, linestyle="--", linewidth=1.0, color=f"C{i + 1}", label=f"{name} {value:.4g}")
    if numeric:
        target.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        shown = labels or [view.tick(dim, c) for c in coords]
        target.set_xticks(xs, labels=[display_label(s) for s in shown], rotation=45, ha="right",
                          rotation_mode="anchor", fontsize=8)
    target.set_xlabel(opts["xlabel"] or ("token" if labels else dim))
    target.set_ylabel(opts["colorbar_label"] if opts["colorbar_label"] not in _DEFAULT_LABELS and opts["colorbar_label"] else view.metric)
    target.grid(alpha=0.3)
    target.legend(fontsize=8, frameon=False)
    target.set_title(f"{_title(view, opts)}\n{view.subtitle()}", fontsize=10)
    return fig


def interactive_result(view: ResultView, opts: dict[str, Any]) -> Any:
    """The plotly figure of a result: hover shows the value, layer, head, position and token."""
    from ._plotly import grid_figure, integer_axis, line_figure, ticks_axis

    view = _with_options(view, opts)
    if len(view.dims) == 1:
        dim, coords, ys, labels = _line_points(view)
        numeric = all(isinstance(c, (int, np.integer)) for c in coords) and labels is None
        xs = [float(c) for c in coords] if numeric else list(range(len(coords)))
        hover = [f"{view.hover(dim, c)}<br>{view.metric} = {y:.4g}" for c, y in zip(coords, ys)]
        x_axis = integer_axis(xs) if numeric else ticks_axis(labels or [view.tick(dim, c) for c in coords])
        return line_figure([(view.metric, xs, ys, hover)], hlines=list(view.baselines.items()),
                           title=_title(view, opts), subtitle=view.subtitle(),
                           xlabel=opts["xlabel"] or ("token" if labels else dim), ylabels=[view.metric],
                           xaxis=x_axis)
    opts, include = _scale_opts(view, opts)
    panels, row, col, rows, cols = _panels(view, opts)
    stacked = np.stack([m for _, m in panels])
    vmin, vmax, cmap = grid_scale(stacked.reshape(-1, stacked.shape[-1]), opts, "Purples", include)
    finite = stacked[~np.isnan(stacked)]
    row_labels = [view.tick(row, r) for r in rows]
    col_labels = [view.tick(col, c) for c in cols]

    def axis(dim: str, labels: list[str], coords: list[Any]) -> dict[str, Any]:
        if dim == "position" and view.tokens is not None:
            return ticks_axis(labels)
        ticks = ticks_axis(labels)
        return {**ticks, "tickvals": ticks["tickvals"][:: max(1, len(coords) // 16)],
                "ticktext": ticks["ticktext"][:: max(1, len(coords) // 16)]}

    w, h = _pixels(opts, len(rows), len(cols), col_labels, row_labels)
    return grid_figure(
        [(name, m, _hover_cells(view, m, row, col, rows, cols)) for name, m in panels],
        cmap=cmap, zmin=float(finite.min()) if vmin is None else vmin,
        zmax=float(finite.max()) if vmax is None else vmax, colorbar=opts["colorbar_label"],
        title=_title(view, opts), subtitle=view.subtitle(),
        xlabel=opts["xlabel"] or ("token" if col == "position" and view.tokens is not None else col),
        ylabel=row if opts["ylabel"] in (None, "layer") else opts["ylabel"],
        xaxis=axis(col, col_labels, cols), yaxis=axis(row, row_labels, rows),
        reversed_y=row != "layer", size=(min(w * len(panels), 2400), h),
    )
