"""Grid visualizers: patching effects per layer and position, per layer and head, and attention.

Each draws its matrix with matplotlib (``plot``, into a given ``ax=`` too) and with plotly
(``interactive``, with the same colours and labels and a hover label per cell). All three draw one matrix with ``imshow`` (one cell per entry, no interpolation), label both
axes, add a colorbar and, for small grids, write each value into its cell. The image's array is
the input matrix itself (transposed only when asked), so what is drawn can be read back from
``fig.axes[0].images[0].get_array()``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from ._base import COMMON_OPTIONS, Visualizer, target_axes
from ._data import as_array, as_matrix, check_labels
from ._errors import DataShapeError, DataValueError, VisualizationError
from ._result import is_result, read_result

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "PatchingHeatmap", "HeadMap", "AttentionMap", "grid_scale", "draw_panel", "draw_grid",
    "interactive_grid", "grid_hover",
]

# Above this many cells, values are not written into the cells unless asked for.
_ANNOTATE_MAX_CELLS = 150
# Numeric default tick labels are thinned out above this many rows/columns.
_MAX_NUMERIC_TICKS = 32

_GRID_OPTIONS: Mapping[str, Any] = {
    **COMMON_OPTIONS,
    "cmap": None,
    "vmin": None,
    "vmax": None,
    "center": "auto",
    "colorbar_label": None,
    "xlabel": None,
    "ylabel": None,
    "annotate": None,
    "fmt": ".2f",
}


def _cmap(name: Any) -> Any:
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name] if isinstance(name, str) else name
    except KeyError:
        raise VisualizationError(
            f"unknown colormap {name!r}; use a matplotlib colormap name such as 'viridis', "
            "'RdBu_r' or 'Purples'."
        ) from None
    return cmap.with_extremes(bad="#d9d9d9")  # NaN cells (not measured) in light grey


def _limits(arr: np.ndarray, opts: Mapping[str, Any]) -> tuple[float | None, float | None, bool]:
    """(vmin, vmax, diverging): symmetric limits around ``center`` when there is one."""
    vmin, vmax, center = opts["vmin"], opts["vmax"], opts["center"]
    finite = arr[~np.isnan(arr)]
    if finite.size == 0:
        raise DataValueError("every value is NaN; there is nothing to colour.")
    if isinstance(center, str):
        if center != "auto":
            raise VisualizationError(f"center must be a number, None or 'auto', got {center!r}.")
        # Both signs call for a diverging scale; float round-off (a "zero" effect of -4e-8) does not.
        tol = 1e-6 * float(np.max(np.abs(finite)))
        center = 0.0 if finite.min() < -tol and finite.max() > tol else None
    if center is None:
        return vmin, vmax, False
    reach = float(np.max(np.abs(finite - center))) or 1.0
    return (
        center - reach if vmin is None else vmin,
        center + reach if vmax is None else vmax,
        True,
    )


def _ticks(n: int, labels: list[str] | None) -> tuple[list[int], list[str]]:
    """Every given label; numeric defaults thinned out when there are many."""
    if labels is not None:
        return list(range(n)), labels
    step = max(1, math.ceil(n / _MAX_NUMERIC_TICKS))
    idx = list(range(0, n, step))
    return idx, [str(i) for i in idx]


def _auto_figsize(rows: int, cols: int, xlabels: list[str], ylabels: list[str]) -> tuple[float, float]:
    long_x = max((len(s) for s in xlabels), default=1)
    long_y = max((len(s) for s in ylabels), default=1)
    width = 2.6 + 0.075 * long_y + 0.48 * cols
    height = 1.6 + 0.36 * rows + (0.065 * long_x if long_x > 2 else 0.0)
    return (min(max(width, 4.0), 22.0), min(max(height, 2.8), 16.0))


def _cell_text(value: float, fmt: str) -> str:
    text = format(value, fmt)
    if text.startswith("-") and not any(ch in "123456789" for ch in text):
        text = text[1:]  # "-0.00" is round-off of a zero effect, not a negative one
    return text


def _annotate(ax: Axes, arr: np.ndarray, im: Any, fmt: str) -> None:
    rows, cols = arr.shape
    size = 8 if rows * cols <= 60 else 6
    for r in range(rows):
        for c in range(cols):
            v = arr[r, c]
            if np.isnan(v):
                continue
            red, green, blue, _ = im.cmap(im.norm(v))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            ax.text(c, r, _cell_text(v, fmt), ha="center", va="center", fontsize=size,
                    color="white" if dark else "black")


def grid_scale(
    arr: np.ndarray, opts: Mapping[str, Any], sequential_cmap: str, include: tuple[float, ...] = ()
) -> tuple[float | None, float | None, Any]:
    """(vmin, vmax, colormap) of a grid: diverging around ``center``, reaching ``include`` too."""
    vmin, vmax, diverging = _limits(arr, opts)
    if diverging and include and opts["vmin"] is None and opts["vmax"] is None:
        center = (vmin + vmax) / 2  # type: ignore[operator]
        reach = max([vmax - center] + [abs(v - center) for v in include])  # type: ignore[operator]
        vmin, vmax = center - reach, center + reach
    return vmin, vmax, _cmap(opts["cmap"] or ("RdBu_r" if diverging else sequential_cmap))


def draw_panel(
    ax: Axes,
    arr: np.ndarray,
    opts: Mapping[str, Any],
    *,
    row_labels: list[str] | None,
    col_labels: list[str] | None,
    origin: Literal["upper", "lower"],
    scale: tuple[float | None, float | None, Any],
    ylabel: bool = True,
) -> Any:
    """One matrix as an image on ``ax`` with labelled axes and (small grids) cell values."""
    rows, cols = arr.shape
    xt, xl = _ticks(cols, col_labels)
    yt, yl = _ticks(rows, row_labels)
    vmin, vmax, cmap = scale
    im = ax.imshow(arr, cmap=cmap, vmin=vmin, vmax=vmax, origin=origin, aspect="auto",
                   interpolation="nearest")
    rotate = any(len(s) > 2 for s in xl)
    fontsize = 9 if cols <= 30 else 7
    ax.set_xticks(xt, labels=xl, fontsize=fontsize, rotation=45 if rotate else 0,
                  ha="right" if rotate else "center", rotation_mode="anchor")
    ax.set_yticks(yt, labels=yl if ylabel else [""] * len(yt), fontsize=9 if rows <= 30 else 7)
    ax.set_xlabel(opts["xlabel"])
    if ylabel:
        ax.set_ylabel(opts["ylabel"])
    ax.tick_params(length=2)
    annotate = opts["annotate"]
    if annotate is None:
        annotate = rows * cols <= _ANNOTATE_MAX_CELLS
    if annotate:
        _annotate(ax, arr, im, opts["fmt"])
    return im


def draw_grid(
    arr: np.ndarray,
    opts: Mapping[str, Any],
    *,
    row_labels: list[str] | None,
    col_labels: list[str] | None,
    origin: Literal["upper", "lower"],
    sequential_cmap: str,
    ax: Any = None,
) -> Figure:
    """One matrix as an image with labelled axes, a colorbar and (small grids) cell values."""
    rows, cols = arr.shape
    _, xl = _ticks(cols, col_labels)
    _, yl = _ticks(rows, row_labels)
    fig, (target,) = target_axes(ax, 1, opts["figsize"] or _auto_figsize(rows, cols, xl, yl))
    im = draw_panel(target, arr, opts, row_labels=row_labels, col_labels=col_labels, origin=origin,
                    scale=grid_scale(arr, opts, sequential_cmap))
    fig.colorbar(im, ax=target, label=opts["colorbar_label"], shrink=0.9 if rows > 4 else 1.0)
    if opts["title"]:
        target.set_title(opts["title"])
    return fig


def grid_hover(arr: np.ndarray, row: list[str], col: list[str], value: str) -> list[list[str]]:
    """Hover text of every cell: its row and column lines, then the value."""
    return [
        [f"{row[r]}<br>{col[c]}<br>{value} = " + ("not measured" if np.isnan(v) else f"{v:.4g}")
         for c, v in enumerate(line)]
        for r, line in enumerate(arr)
    ]


def interactive_grid(
    arr: np.ndarray,
    opts: Mapping[str, Any],
    *,
    row_name: str,
    col_name: str,
    row_labels: list[str] | None,
    col_labels: list[str] | None,
    origin: Literal["upper", "lower"],
    sequential_cmap: str,
) -> Any:
    """The plotly heatmap of one matrix: the same colours, ticks and labels as :func:`draw_grid`."""
    from ._plotly import grid_figure, integer_axis, ticks_axis

    rows, cols = arr.shape
    vmin, vmax, cmap = grid_scale(arr, opts, sequential_cmap)
    finite = arr[~np.isnan(arr)]
    rl = row_labels or [str(i) for i in range(rows)]
    cl = col_labels or [str(i) for i in range(cols)]
    hover = grid_hover(arr, [f"{row_name} {i}" + (f": {rl[i]!r}" if row_labels else "") for i in range(rows)],
                       [f"{col_name} {j}" + (f": {cl[j]!r}" if col_labels else "") for j in range(cols)],
                       str(opts["colorbar_label"] or "value"))
    return grid_figure(
        [(None, arr, hover)], cmap=cmap,
        zmin=float(finite.min()) if vmin is None else vmin, zmax=float(finite.max()) if vmax is None else vmax,
        colorbar=opts["colorbar_label"], title=opts["title"], subtitle=None,
        xlabel=opts["xlabel"], ylabel=opts["ylabel"],
        xaxis=ticks_axis(col_labels) if col_labels else {**integer_axis(range(cols)), "range": [-0.5, cols - 0.5]},
        yaxis=ticks_axis(row_labels) if row_labels else {**integer_axis(range(rows)), "range": [-0.5, rows - 0.5]},
        reversed_y=origin == "upper", size=_pixels(opts, rows, cols, cl, rl),
    )


def _pixels(opts: Mapping[str, Any], rows: int, cols: int, xl: list[str], yl: list[str]) -> tuple[int, int]:
    w, h = opts["figsize"] or _auto_figsize(rows, cols, xl, yl)
    return int(max(w * 100, 600)), int(max(h * 100, 400))


class PatchingHeatmap(Visualizer):
    """Patching effects on a layer × position grid, such as a causal-tracing sweep.

    ``data`` is ``[layers, positions]`` (a tensor, array or nested list): entry ``[l, p]`` is the
    effect of patching layer ``l`` at position ``p``. Layers run up the y-axis (layer 0 at the
    bottom) and positions along the x-axis, labelled with ``tokens``. ``transpose=True`` puts
    the tokens on the y-axis (top to bottom) and the layers on the x-axis, as in ROME's figures.
    Effects with both signs get a diverging colormap centred on 0 (``center``).

    ``data`` may also be a patching result (``vene.patching.PatchingResult``, anything with its
    attributes, its ``to_dict()`` or the CLI's JSON): the dims decide the figure (a curve for
    ``("layer",)``, a heatmap for two dims, one heatmap per component for three), tokens label
    the positions, the title and colour bar come from the method, kind and metric, and the
    colour scale starts at the unpatched baseline (see :mod:`vene_viz._patching`).

    Options: ``tokens``, ``layer_labels``, ``transpose``, ``cmap``, ``vmin``, ``vmax``,
    ``center`` (a number, None, or ``"auto"``: 0 when the data has both signs), ``annotate``
    (write values in cells; default: grids of at most 150 cells), ``fmt``, ``colorbar_label``,
    ``xlabel``, ``ylabel``, ``title``, ``figsize``, ``dpi``.
    """

    type_name: ClassVar[str] = "patching_heatmap"
    defaults: ClassVar[Mapping[str, Any]] = {
        **_GRID_OPTIONS,
        "tokens": None,
        "layer_labels": None,
        "transpose": False,
        "colorbar_label": "patching effect",
        "ylabel": "layer",
    }

    def _layout(self, data: Any, opts: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
        arr = as_matrix(data, "patching effects", "layers", "positions")
        layers, positions = arr.shape
        tokens = check_labels(opts["tokens"], positions, "token labels", "position")
        layer_labels = check_labels(opts["layer_labels"], layers, "layer labels", "layer")
        pos_name = "token" if tokens is not None else "position"
        if opts["transpose"]:
            return arr.T, {**opts, "xlabel": opts["ylabel"], "ylabel": opts["xlabel"] or pos_name}, {
                "row_labels": tokens, "col_labels": layer_labels, "origin": "upper",
                "row_name": "position", "col_name": "layer"}
        return arr, {**opts, "xlabel": opts["xlabel"] or pos_name}, {
            "row_labels": layer_labels, "col_labels": tokens, "origin": "lower",
            "row_name": "layer", "col_name": "position"}

    def _plot(self, data: Any, opts: dict[str, Any], ax: Any = None) -> Figure:
        if is_result(data):
            return plot_result(read_result(data), opts, ax)
        arr, opts, layout = self._layout(data, opts)
        del layout["row_name"], layout["col_name"]
        return draw_grid(arr, opts, **layout, sequential_cmap="Purples", ax=ax)

    def _interactive(self, data: Any, opts: dict[str, Any]) -> Any:
        if is_result(data):
            return interactive_result(read_result(data), opts)
        arr, opts, layout = self._layout(data, opts)
        return interactive_grid(arr, opts, **layout, sequential_cmap="Purples")


class HeadMap(Visualizer):
    """One value per attention head on a layer × head grid (head patching, head attribution).

    ``data`` is ``[layers, heads]``. Layers run up the y-axis (layer 0 at the bottom), heads
    along the x-axis; ``data`` may also be a patching result of kind ``"heads"`` (dims
    ``("layer", "head")``). Options as :class:`PatchingHeatmap`, with ``head_labels`` and
    ``layer_labels`` for the axes.
    """

    type_name: ClassVar[str] = "head_map"
    defaults: ClassVar[Mapping[str, Any]] = {
        **_GRID_OPTIONS,
        "layer_labels": None,
        "head_labels": None,
        "colorbar_label": "effect",
        "xlabel": "head",
        "ylabel": "layer",
    }

    def _layout(self, data: Any, opts: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        arr = as_matrix(data, "head values", "layers", "heads")
        layers, heads = arr.shape
        return arr, {
            "row_labels": check_labels(opts["layer_labels"], layers, "layer labels", "layer"),
            "col_labels": check_labels(opts["head_labels"], heads, "head labels", "head"),
            "origin": "lower",
        }

    def _plot(self, data: Any, opts: dict[str, Any], ax: Any = None) -> Figure:
        if is_result(data):
            return plot_result(read_result(data), opts, ax)
        arr, layout = self._layout(data, opts)
        return draw_grid(arr, opts, **layout, sequential_cmap="Purples", ax=ax)

    def _interactive(self, data: Any, opts: dict[str, Any]) -> Any:
        if is_result(data):
            return interactive_result(read_result(data), opts)
        arr, layout = self._layout(data, opts)
        return interactive_grid(arr, opts, **layout, row_name="layer", col_name="head",
                                sequential_cmap="Purples")


def _pick(arr: np.ndarray, index: Any, count_name: str, option: str) -> np.ndarray:
    """``arr[index]`` along the first axis, with errors that name the option to set."""
    n = arr.shape[0]
    if index is None:
        if n == 1:
            return arr[0]
        raise DataShapeError(
            f"the attention tensor has {n} {count_name}; choose one with {option}=<0..{n - 1}>"
            + (f" or {option}='mean' to average them." if option == "head" else ".")
        )
    if option == "head" and isinstance(index, str) and index == "mean":
        return arr.mean(axis=0)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise VisualizationError(f"{option} must be an int, got {index!r}.")
    if not -n <= index < n:
        raise DataShapeError(
            f"{option}={index} is out of range: the attention tensor has {n} {count_name} "
            f"(0..{n - 1})."
        )
    return arr[index]


class AttentionMap(Visualizer):
    """An attention-probability matrix ``[queries, keys]`` with token labels.

    ``data`` may also be ``[heads, queries, keys]`` (choose ``head=``, or ``head="mean"``) or
    ``[batch, heads, queries, keys]`` as Hugging Face's ``output_attentions`` returns per layer
    (also choose ``example=`` when the batch has more than one). Queries run down the y-axis,
    keys along the x-axis; ``tokens`` labels both, or ``query_tokens``/``key_tokens`` each.
    The colour scale starts at 0 and ends at 1 for probabilities (``vmin``/``vmax`` to change).
    """

    type_name: ClassVar[str] = "attention"
    defaults: ClassVar[Mapping[str, Any]] = {
        **_GRID_OPTIONS,
        "tokens": None,
        "query_tokens": None,
        "key_tokens": None,
        "head": None,
        "example": None,
        "center": None,
        "vmin": 0.0,
        "colorbar_label": "attention probability",
        "xlabel": "key",
        "ylabel": "query",
    }

    def select(self, data: Any, **options: Any) -> np.ndarray:
        """The ``[queries, keys]`` matrix that :meth:`plot` draws for ``data`` and these options."""
        opts = self.resolve(options)
        arr = as_array(data, "attention")
        if arr.ndim == 4:
            arr = _pick(arr, opts["example"], "examples", "example")
        elif opts["example"] is not None:
            raise DataShapeError(
                f"example={opts['example']!r} needs a 4-D [batch, heads, queries, keys] tensor, "
                f"got {arr.ndim}-D with shape {tuple(arr.shape)}."
            )
        if arr.ndim == 3:
            arr = _pick(arr, opts["head"], "heads", "head")
        elif opts["head"] is not None:
            raise DataShapeError(
                f"head={opts['head']!r} needs a tensor with a heads axis ([heads, queries, keys] or "
                f"[batch, heads, queries, keys]), got {arr.ndim}-D with shape {tuple(arr.shape)}."
            )
        return as_matrix(arr, "attention", "queries", "keys")

    def _layout(self, data: Any, opts: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
        overrides = {k: opts[k] for k in ("head", "example")}
        arr = self.select(data, **overrides)
        nq, nk = arr.shape
        tokens = opts["tokens"]
        query_tokens = opts["query_tokens"] if opts["query_tokens"] is not None else tokens
        key_tokens = opts["key_tokens"] if opts["key_tokens"] is not None else tokens
        if opts["vmax"] is None:
            top = float(np.nanmax(arr)) if not np.isnan(arr).all() else 1.0
            opts = {**opts, "vmax": 1.0 if top <= 1.0 else top}
        if opts["title"] is None and opts["head"] is not None:
            opts = {**opts, "title": f"head {opts['head']}"}
        return arr, opts, {
            "row_labels": check_labels(query_tokens, nq, "query token labels", "query position"),
            "col_labels": check_labels(key_tokens, nk, "key token labels", "key position"),
            "origin": "upper",
        }

    def _plot(self, data: Any, opts: dict[str, Any], ax: Any = None) -> Figure:
        arr, opts, layout = self._layout(data, opts)
        return draw_grid(arr, opts, **layout, sequential_cmap="Blues", ax=ax)

    def _interactive(self, data: Any, opts: dict[str, Any]) -> Any:
        arr, opts, layout = self._layout(data, opts)
        return interactive_grid(arr, opts, **layout, row_name="query", col_name="key",
                                sequential_cmap="Blues")


def plot_result(view: Any, opts: dict[str, Any], ax: Any = None) -> Figure:
    """A patching result drawn with matplotlib (see :mod:`vene_viz._patching`)."""
    from ._patching import plot_result as draw

    return draw(view, opts, ax)


def interactive_result(view: Any, opts: dict[str, Any]) -> Any:
    """A patching result as a plotly figure (see :mod:`vene_viz._patching`)."""
    from ._patching import interactive_result as build

    return build(view, opts)
