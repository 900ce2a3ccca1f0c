"""Grid visualizers: patching effects per layer and position, per layer and head, and attention.

All three draw one matrix with ``imshow`` (one cell per entry, no interpolation), label both
axes, add a colorbar and, for small grids, write each value into its cell. The image's array is
the input matrix itself (transposed only when asked), so what is drawn can be read back from
``fig.axes[0].images[0].get_array()``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from ._base import COMMON_OPTIONS, Visualizer, new_figure
from ._data import as_array, as_matrix, check_labels
from ._errors import DataShapeError, DataValueError, VisualizationError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PatchingHeatmap", "HeadMap", "AttentionMap"]

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


def draw_grid(
    arr: np.ndarray,
    opts: Mapping[str, Any],
    *,
    row_labels: list[str] | None,
    col_labels: list[str] | None,
    origin: Literal["upper", "lower"],
    sequential_cmap: str,
) -> Figure:
    """One matrix as an image with labelled axes, a colorbar and (small grids) cell values."""
    rows, cols = arr.shape
    xt, xl = _ticks(cols, col_labels)
    yt, yl = _ticks(rows, row_labels)
    vmin, vmax, diverging = _limits(arr, opts)
    cmap = _cmap(opts["cmap"] or ("RdBu_r" if diverging else sequential_cmap))
    fig = new_figure(opts["figsize"] or _auto_figsize(rows, cols, xl, yl))
    ax = fig.add_subplot()
    im = ax.imshow(arr, cmap=cmap, vmin=vmin, vmax=vmax, origin=origin, aspect="auto",
                   interpolation="nearest")
    rotate = any(len(s) > 2 for s in xl)
    fontsize = 9 if cols <= 30 else 7
    ax.set_xticks(xt, labels=xl, fontsize=fontsize, rotation=45 if rotate else 0,
                  ha="right" if rotate else "center", rotation_mode="anchor")
    ax.set_yticks(yt, labels=yl, fontsize=9 if rows <= 30 else 7)
    ax.set_xlabel(opts["xlabel"])
    ax.set_ylabel(opts["ylabel"])
    ax.tick_params(length=2)
    fig.colorbar(im, ax=ax, label=opts["colorbar_label"], shrink=0.9 if rows > 4 else 1.0)
    if opts["title"]:
        ax.set_title(opts["title"])
    annotate = opts["annotate"]
    if annotate is None:
        annotate = rows * cols <= _ANNOTATE_MAX_CELLS
    if annotate:
        _annotate(ax, arr, im, opts["fmt"])
    return fig


class PatchingHeatmap(Visualizer):
    """Patching effects on a layer × position grid, such as a causal-tracing sweep.

    ``data`` is ``[layers, positions]`` (a tensor, array or nested list): entry ``[l, p]`` is the
    effect of patching layer ``l`` at position ``p``. Layers run up the y-axis (layer 0 at the
    bottom) and positions along the x-axis, labelled with ``tokens``. ``transpose=True`` puts
    the tokens on the y-axis (top to bottom) and the layers on the x-axis, as in ROME's figures.
    Effects with both signs get a diverging colormap centred on 0 (``center``).

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

    def _plot(self, data: Any, opts: dict[str, Any]) -> Figure:
        arr = as_matrix(data, "patching effects", "layers", "positions")
        layers, positions = arr.shape
        tokens = check_labels(opts["tokens"], positions, "token labels", "position")
        layer_labels = check_labels(opts["layer_labels"], layers, "layer labels", "layer")
        pos_name = "token" if tokens is not None else "position"
        if opts["transpose"]:
            return draw_grid(
                arr.T, {**opts, "xlabel": opts["ylabel"], "ylabel": opts["xlabel"] or pos_name},
                row_labels=tokens, col_labels=layer_labels, origin="upper",
                sequential_cmap="Purples",
            )
        return draw_grid(
            arr, {**opts, "xlabel": opts["xlabel"] or pos_name},
            row_labels=layer_labels, col_labels=tokens, origin="lower", sequential_cmap="Purples",
        )


class HeadMap(Visualizer):
    """One value per attention head on a layer × head grid (head patching, head attribution).

    ``data`` is ``[layers, heads]``. Layers run up the y-axis (layer 0 at the bottom), heads
    along the x-axis. Options as :class:`PatchingHeatmap`, with ``head_labels`` and
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

    def _plot(self, data: Any, opts: dict[str, Any]) -> Figure:
        arr = as_matrix(data, "head values", "layers", "heads")
        layers, heads = arr.shape
        return draw_grid(
            arr, opts,
            row_labels=check_labels(opts["layer_labels"], layers, "layer labels", "layer"),
            col_labels=check_labels(opts["head_labels"], heads, "head labels", "head"),
            origin="lower", sequential_cmap="Purples",
        )


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

    def _plot(self, data: Any, opts: dict[str, Any]) -> Figure:
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
        return draw_grid(
            arr, opts,
            row_labels=check_labels(query_tokens, nq, "query token labels", "query position"),
            col_labels=check_labels(key_tokens, nk, "key token labels", "key position"),
            origin="upper", sequential_cmap="Blues",
        )

