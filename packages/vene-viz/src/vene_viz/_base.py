"""The visualizer protocol: options, ``plot(data) -> Figure``, ``interactive(data)`` and ``save``.

``plot`` draws a matplotlib figure (or into a given ``ax=`` of a multi-panel figure);
``interactive`` builds a plotly figure with hover labels, and ``save`` writes either, following
the suffix (``.html`` for the interactive one). Matplotlib figures are built as :class:`matplotlib.figure.Figure` objects drawn by the Agg canvas, never
through ``pyplot``: no window ever opens, no backend is switched for the user, and no figure is
left behind in pyplot's global registry. matplotlib is imported on first use, so registering the
visualizers (which every ``vene`` plugin registry does) costs nothing.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from vene.sites import nearest

from ._errors import VisualizationError

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["Visualizer", "new_figure", "is_figure", "target_axes"]

#: Options every visualizer accepts.
COMMON_OPTIONS: Mapping[str, Any] = {"title": None, "figsize": None, "dpi": 150, "plotlyjs": "inline"}

_HTML_SUFFIXES = (".html", ".htm")


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure with constrained layout, attached to an Agg canvas (no pyplot, no window)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def target_axes(ax: Any, n: int, figsize: tuple[float, float], *, sharex: bool = False,
                vertical: bool = False) -> tuple[Figure, list[Axes]]:
    """``n`` axes to draw into: new ones on a new figure, or the ``ax`` the caller gave.

    ``ax`` may be one Axes (when ``n`` is 1) or a sequence of ``n`` Axes, e.g. a row of
    ``fig.subplots(1, 3)`` of a paper figure; the figure returned is theirs.
    """
    if ax is None:
        fig = new_figure(figsize)
        shape = (n, 1) if vertical else (1, n)
        return fig, list(fig.subplots(*shape, sharex=sharex, squeeze=False).ravel())
    axes: list[Any] = list(ax.ravel()) if hasattr(ax, "ravel") else list(ax) if isinstance(ax, (list, tuple)) else [ax]
    if len(axes) != n or not all(hasattr(a, "get_figure") and hasattr(a, "imshow") for a in axes):
        raise VisualizationError(
            f"this figure has {n} panel{'s' if n != 1 else ''}, so ax= must be "
            + ("one matplotlib Axes" if n == 1 else f"a sequence of {n} matplotlib Axes")
            + f"; got {type(ax).__name__}"
            + (f" of length {len(axes)}" if isinstance(ax, (list, tuple)) else "") + "."
        )
    return axes[0].get_figure(), axes


def is_figure(obj: Any) -> bool:
    """Whether ``obj`` is a matplotlib figure, without importing matplotlib when it is not loaded."""
    import sys

    module = sys.modules.get("matplotlib.figure")
    return module is not None and isinstance(obj, module.Figure)


def _check_figsize(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        w, h = (float(v) for v in value)
    except (TypeError, ValueError):
        raise VisualizationError(
            f"figsize must be a (width, height) pair in inches, got {value!r}."
        ) from None
    if not (w > 0 and h > 0):
        raise VisualizationError(f"figsize must be positive, got {value!r}.")
    return (w, h)


class Visualizer:
    """Base class of the visualizers: subclasses set ``type_name``, ``defaults`` and ``_plot``.

    Options are keyword arguments; those given to the constructor are the visualizer's own
    defaults, and those given to :meth:`plot` or :meth:`save` override them for that call only.
    An unknown option name is an error that lists the valid ones.
    """

    type_name: ClassVar[str]
    #: The options this visualizer accepts, with their default values.
    defaults: ClassVar[Mapping[str, Any]] = COMMON_OPTIONS

    def __init__(self, **options: Any) -> None:
        self.options: dict[str, Any] = self._checked(options)

    def _checked(self, options: Mapping[str, Any]) -> dict[str, Any]:
        unknown = [name for name in options if name not in self.defaults]
        if unknown:
            name = unknown[0]
            hint = nearest(name, self.defaults, 3, cutoff=0.5)
            raise VisualizationError(
                f"{type(self).__name__} has no option {name!r}.{hint} Options: "
                f"{', '.join(sorted(self.defaults))}."
            )
        out = dict(options)
        if "figsize" in out:
            out["figsize"] = _check_figsize(out["figsize"])
        if "dpi" in out and not (isinstance(out["dpi"], (int, float)) and out["dpi"] > 0):
            raise VisualizationError(f"dpi must be a positive number, got {out['dpi']!r}.")
        return out

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The options of one call: class defaults, then constructor options, then ``overrides``."""
        return {**self.defaults, **self.options, **self._checked(overrides or {})}

    def plot(self, data: Any, *, ax: Any = None, **options: Any) -> Figure:
        """Draw ``data`` and return the :class:`matplotlib.figure.Figure`.

        With ``ax=`` (an Axes, or a sequence of them for a figure of several panels) the
        drawing goes into those axes of the caller's figure, which is returned.
        """
        opts = self.resolve(options)
        if ax is None:
            return self._plot(data, opts)
        return self._plot(data, opts, ax=ax)

    def _plot(self, data: Any, opts: dict[str, Any], ax: Any = None) -> Figure:
        raise NotImplementedError

    def interactive(self, data: Any, **options: Any) -> go.Figure:
        """The interactive form of the figure: a :class:`plotly.graph_objects.Figure` whose hover
        labels show each value with its coordinates (layer, head, position, token)."""
        return self._interactive(data, self.resolve(options))

    def _interactive(self, data: Any, opts: dict[str, Any]) -> go.Figure:
        raise VisualizationError(f"{type(self).__name__} has no interactive form; save it as an image.")

    def to_html(self, data: Any, **options: Any) -> str:
        """The interactive figure as one HTML page (plotly.js per the ``plotlyjs`` option)."""
        from ._plotly import is_plotly_figure, to_html

        opts = self.resolve(options)
        fig = data if is_plotly_figure(data) else self._interactive(data, opts)
        return to_html(fig, plotlyjs=opts["plotlyjs"])

    def save(self, path: str | os.PathLike[str], data: Any, **options: Any) -> pathlib.Path:
        """Plot ``data`` (or take a figure from :meth:`plot`/:meth:`interactive`) and write it.

        The format follows the suffix: ``.html`` writes the interactive figure (plotly.js inline
        by default, so the page works offline; ``plotlyjs="directory"`` shares one
        ``plotly.min.js`` next to it), ``.png``, ``.pdf``, ``.svg``... the matplotlib figure.
        Missing parent directories are created. Returns the path written.
        """
        from ._plotly import is_plotly_figure, write_html

        opts = self.resolve(options)
        path = pathlib.Path(path)
        if path.suffix.lower() in _HTML_SUFFIXES:
            fig = data if is_plotly_figure(data) else self._interactive(data, opts)
            return write_html(path, fig, plotlyjs=opts["plotlyjs"])
        if is_plotly_figure(data):
            raise VisualizationError(
                f"a plotly figure is written as .html, not {path.suffix or 'a file without suffix'}; "
                "pass the data itself to save an image."
            )
        fig = data if is_figure(data) else self._plot(data, opts)
        fmt = path.suffix.lstrip(".").lower()
        supported = fig.canvas.get_supported_filetypes()
        if fmt not in supported:
            raise VisualizationError(
                f"cannot tell the image format of {str(path)!r} from its suffix; end the name with "
                f"one of: {', '.join('.' + s for s in sorted([*supported, 'html']))}."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format=fmt, dpi=opts["dpi"])
        return path

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"
