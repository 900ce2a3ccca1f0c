"""The learned mask of a Boundless DAS or sigmoid-mask intervention, one bar per dimension."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from attrs import frozen

from ._base import COMMON_OPTIONS, Visualizer, target_axes
from ._data import as_array, as_number
from ._errors import DataShapeError, DataTypeError, VisualizationError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DasMask", "MaskReading", "read_mask"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # tanh form: exact, and no overflow warnings for the very steep masks of a low temperature
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@frozen
class MaskReading:
    """The per-dimension mask read from ``data``, and where it came from (for labels)."""

    values: np.ndarray
    kind: str  # "tensor", "boundless", "sigmoid" or "raw"
    boundary: float | None = None  # boundless: the boundary in dimensions (fraction * width)
    temperature: float | None = None


def _vector(data: Any, what: str) -> np.ndarray:
    arr = as_array(data, what)
    if arr.ndim == 2 and arr.shape[0] == 1:  # a [1, width] parameter or a batch of one
        arr = arr[0]
    if arr.ndim != 1:
        raise DataShapeError(
            f"{what} must be 1-D (one value per dimension), got {arr.ndim}-D with shape "
            f"{tuple(arr.shape)}; pass one mask at a time, e.g. mask[0]."
        )
    if arr.size == 0:
        raise DataShapeError(f"{what} is empty; there is nothing to plot.")
    return arr


def _temperature(module: Any, override: Any, kind: str) -> float:
    if override is not None:
        value = as_number(override, "temperature")
    elif getattr(module, "temperature", None) is not None:
        value = as_number(module.temperature, f"the {kind} intervention's temperature")
    else:
        raise DataTypeError(
            f"{type(module).__name__} has no `temperature`, which its {kind} mask needs; pass "
            "temperature=<value> to plot()."
        )
    if not value > 0:
        raise VisualizationError(f"the mask temperature must be positive, got {value}.")
    return value


# Methods through which an intervention reports the mask it applies, most specific first:
# Boundless DAS (``boundary_mask``), sigmoid masks (``mask_weights``, or ``mask`` as a method).
_MASK_METHODS = ("boundary_mask", "mask_weights", "mask")


def _own_mask(data: Any) -> tuple[str, Any] | None:
    for name in _MASK_METHODS:
        method = getattr(data, name, None)
        if callable(method) and not hasattr(method, "detach"):
            return name, method
    return None


def _module_temperature(data: Any) -> float | None:
    value = getattr(data, "temperature", None)
    return None if value is None else as_number(value, "the intervention's temperature")


def read_mask(data: Any, *, temperature: Any = None, raw: bool = False) -> MaskReading:
    """Read the per-dimension mask of ``data``.

    ``data`` is a 1-D tensor/array/list (used as is), or an intervention module:

    * one that computes its own mask (a ``boundary_mask()``, ``mask_weights()`` or ``mask()``
      method, as vene-train's interventions do) is asked for it, so the plot shows exactly the
      weights its forward uses;
    * otherwise, pyvene's attributes are read: ``intervention_boundaries`` (Boundless DAS: the
      mask is ``sigmoid(i / T) * sigmoid((b * width - i) / T)`` over dimensions ``i``, with the
      boundary fraction ``b`` clamped to [1e-3, 1]), or a ``mask`` (or ``masks``) parameter (a
      sigmoid mask: ``sigmoid(mask / T)``), ``T`` being the module's ``temperature`` unless
      ``temperature`` is given.

    ``raw=True`` returns the ``mask``/``masks`` parameter itself, before the sigmoid.
    """
    if hasattr(data, "detach") or isinstance(data, (np.ndarray, list, tuple)):
        if raw or temperature is not None:
            raise VisualizationError(
                "raw= and temperature= apply to an intervention module; a tensor of mask values "
                "is plotted as it is."
            )
        return MaskReading(values=_vector(data, "the mask"), kind="tensor")
    interventions = getattr(data, "interventions", None)
    if isinstance(interventions, Mapping):
        keys = ", ".join(repr(k) for k in interventions)
        raise DataTypeError(
            f"got a {type(data).__name__} holding several interventions; pass one of them, e.g. "
            f"model.interventions[key] with key one of: {keys or 'none'}."
        )
    name = type(data).__name__
    boundaries = getattr(data, "intervention_boundaries", None)
    boundless = boundaries is not None
    fraction = None
    if boundless:
        fraction = _vector(boundaries, "intervention_boundaries")
        if fraction.size != 1:
            raise DataShapeError(
                f"intervention_boundaries must hold one boundary (a fraction of the width), got "
                f"{fraction.size} values."
            )
    if raw:
        params = [getattr(data, n, None) for n in ("mask", "masks")]
        params = [p for p in params if p is not None and hasattr(p, "detach")]
        if not params:
            raise DataTypeError(
                f"raw=True plots a `mask` (or `masks`) parameter, and {name} has none"
                + ("; a Boundless DAS intervention learns a boundary instead: drop raw=True."
                   if boundless else ".")
            )
        return MaskReading(values=_vector(params[0], f"{name}'s mask parameter"), kind="raw")

    kind = "boundless" if boundless else "sigmoid"
    own = _own_mask(data)
    if own is not None:
        method_name, method = own
        if temperature is not None:
            raise VisualizationError(
                f"{name} computes its own mask ({method_name}()), at its own temperature; set that "
                "instead (e.g. intervention.set_temperature(t)) and drop temperature=."
            )
        import torch  # an intervention module implies torch is there

        with torch.no_grad():
            values = _vector(method(), f"{name}.{method_name}()")
        boundary = None
        if fraction is not None:
            boundary = float(np.clip(fraction[0], 1e-3, 1.0)) * values.size
        return MaskReading(values=values, kind=kind, boundary=boundary,
                           temperature=_module_temperature(data))

    if fraction is not None:
        population = getattr(data, "intervention_population", None)
        if population is not None:
            dims = _vector(population, "intervention_population")
        elif isinstance(getattr(data, "embed_dim", None), int):
            dims = np.arange(data.embed_dim, dtype=np.float64)
        else:
            raise DataTypeError(
                f"{name} has intervention_boundaries but neither `intervention_population` nor "
                "an int `embed_dim`, so its width is unknown."
            )
        t = _temperature(data, temperature, "Boundless DAS")
        boundary = float(np.clip(fraction[0], 1e-3, 1.0)) * dims.size
        values = _sigmoid(dims / t) * _sigmoid((boundary - dims) / t)
        return MaskReading(values=values, kind="boundless", boundary=boundary, temperature=t)
    for attr in ("mask", "masks"):
        logits = getattr(data, attr, None)
        if logits is not None and hasattr(logits, "detach"):
            t = _temperature(data, temperature, "sigmoid")
            values = _sigmoid(_vector(logits, f"{name}.{attr}") / t)
            return MaskReading(values=values, kind="sigmoid", temperature=t)
    raise DataTypeError(
        f"cannot read a mask from {name}: pass a 1-D tensor of mask values, or an intervention "
        "with a mask: a boundary_mask()/mask_weights()/mask() method, an "
        "`intervention_boundaries` (Boundless DAS) or a `mask` parameter (sigmoid mask)."
    )


class DasMask(Visualizer):
    """The per-dimension mask learned by Boundless DAS or a sigmoid-mask intervention.

    ``data`` is a 1-D tensor of mask values, or the intervention module itself (see
    :func:`read_mask`: vene-train's ``BoundlessRotatedSpaceIntervention``,
    ``SigmoidMaskRotatedSpaceIntervention`` and ``SigmoidMaskIntervention``, and modules with
    pyvene's attributes). Each dimension is one bar, coloured by its value; a dashed line marks
    ``threshold`` (0.5) and, for Boundless DAS, a dotted line the boundary ``b * width``.

    Options: ``temperature`` (for modules without a mask method: use this instead of their
    ``temperature``), ``raw`` (the ``mask`` parameter before the sigmoid), ``sort`` (bars by
    decreasing value), ``threshold`` (None hides the line), ``cmap``, ``xlabel``, ``ylabel``,
    ``title`` (default: a summary of the mask), ``figsize``, ``dpi``.
    """

    type_name: ClassVar[str] = "das_mask"
    defaults: ClassVar[Mapping[str, Any]] = {
        **COMMON_OPTIONS,
        "temperature": None,
        "raw": False,
        "sort": False,
        "threshold": 0.5,
        "cmap": "viridis",
        "xlabel": None,
        "ylabel": None,
    }

    def read(self, data: Any, **options: Any) -> MaskReading:
        """The mask that :meth:`plot` draws (before ``sort``)."""
        opts = self.resolve(options)
        return read_mask(data, temperature=opts["temperature"], raw=bool(opts["raw"]))

    def _values(self, data: Any, opts: dict[str, Any]) -> tuple[MaskReading, np.ndarray, float, float, bool]:
        reading = read_mask(data, temperature=opts["temperature"], raw=bool(opts["raw"]))
        values = reading.values
        if np.isnan(values).all():
            raise DataShapeError("every mask value is NaN; there is nothing to plot.")
        if opts["sort"]:
            values = np.sort(values)[::-1]
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        return reading, values, lo, hi, lo >= 0.0 and hi <= 1.0

    def _plot(self, data: Any, opts: dict[str, Any], ax: Any = None) -> Figure:
        import matplotlib
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize
        from matplotlib.ticker import MaxNLocator

        reading, values, lo, hi, unit = self._values(data, opts)
        width = values.size
        norm = Normalize(0.0, 1.0) if unit else Normalize(lo, hi if hi > lo else lo + 1.0)
        try:
            cmap = matplotlib.colormaps[opts["cmap"]]
        except KeyError:
            raise VisualizationError(f"unknown colormap {opts['cmap']!r}.") from None
        figsize = opts["figsize"] or (min(max(5.5, 2.0 + 0.18 * width), 14.0), 3.6)
        fig, (ax,) = target_axes(ax, 1, figsize)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.bar(np.arange(width), values, width=0.85 if width <= 64 else 1.0,
               color=cmap(norm(np.nan_to_num(values, nan=lo))), linewidth=0)
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="mask value")
        if unit:
            ax.set_ylim(0.0, 1.04)
        if opts["threshold"] is not None:
            ax.axhline(float(opts["threshold"]), color="0.4", linestyle="--", linewidth=0.9)
        if reading.boundary is not None and not opts["sort"]:
            ax.axvline(reading.boundary - 0.5, color="crimson", linestyle=":", linewidth=1.2,
                       label=f"boundary = {reading.boundary:.2f} dims")
            ax.legend(loc="upper right", fontsize=8, frameon=False)
        ax.set_xlim(-0.6, width - 0.4)
        if width <= 32:
            ax.set_xticks(range(width))
        ax.tick_params(labelsize=8)
        ax.set_xlabel(opts["xlabel"] or ("rank (sorted by value)" if opts["sort"] else "dimension"))
        ax.set_ylabel(opts["ylabel"] or ("mask parameter" if reading.kind == "raw" else "mask value"))
        ax.set_title(opts["title"] or _summary(reading, opts["threshold"]), fontsize=10)
        return fig

    def _interactive(self, data: Any, opts: dict[str, Any]) -> Any:
        from ._plotly import bar_figure

        reading, values, lo, hi, unit = self._values(data, opts)
        order = np.argsort(-reading.values, kind="stable") if opts["sort"] else np.arange(values.size)
        what = "mask parameter" if reading.kind == "raw" else "mask value"
        hover = [f"dimension {int(d)}<br>{what} = {v:.4g}" for d, v in zip(order, values)]
        w, h = opts["figsize"] or (min(max(5.5, 2.0 + 0.18 * values.size), 14.0), 3.6)
        return bar_figure(
            values, hover, cmap=opts["cmap"], cmin=0.0 if unit else lo,
            cmax=1.0 if unit else (hi if hi > lo else lo + 1.0),
            hline=None if opts["threshold"] is None else float(opts["threshold"]),
            vline=None if reading.boundary is None or opts["sort"] else reading.boundary - 0.5,
            title=opts["title"] or _summary(reading, opts["threshold"]),
            xlabel=opts["xlabel"] or ("rank (sorted by value)" if opts["sort"] else "dimension"),
            ylabel=opts["ylabel"] or what, size=(int(max(w * 100, 480)), int(max(h * 100, 320))),
        )


def _summary(reading: MaskReading, threshold: Any) -> str:
    """A two-line title: what the mask is, and how many dimensions it lets through."""
    width = reading.values.size
    above = f"{width} dims"
    if threshold is not None:
        n = int(np.sum(reading.values > float(threshold)))
        above = f"{n} of {width} dims > {float(threshold):g}"
    t = f" (T = {reading.temperature:g})" if reading.temperature is not None else ""
    if reading.kind == "boundless":
        return f"Boundless DAS mask{t}\nboundary {reading.boundary:.2f} dims; {above}"
    if reading.kind == "sigmoid":
        return f"sigmoid mask{t}\n{above}"
    if reading.kind == "raw":
        return f"mask parameter, before the sigmoid\n{width} dims"
    return f"mask\n{above}"
