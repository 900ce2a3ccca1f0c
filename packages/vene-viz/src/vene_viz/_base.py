"""The visualizer protocol: options, ``plot(data) -> Figure`` and ``save(path, data)``.

Figures are built as :class:`matplotlib.figure.Figure` objects drawn by the Agg canvas, never
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
    from matplotlib.figure import Figure

__all__ = ["Visualizer", "new_figure", "is_figure"]

#: Options every visualizer accepts.
COMMON_OPTIONS: Mapping[str, Any] = {"title": None, "figsize": None, "dpi": 150}


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure with constrained layout, attached to an Agg canvas (no pyplot, no window)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


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

    def plot(self, data: Any, **options: Any) -> Figure:
        """Draw ``data`` and return the :class:`matplotlib.figure.Figure`."""
        return self._plot(data, self.resolve(options))

    def _plot(self, data: Any, opts: dict[str, Any]) -> Figure:
        raise NotImplementedError

    def save(self, path: str | os.PathLike[str], data: Any, **options: Any) -> pathlib.Path:
        """Plot ``data`` (or take a figure from :meth:`plot`) and write it to ``path``.

        The format follows the suffix (``.png``, ``.pdf``, ``.svg``...); missing parent
        directories are created. Returns the path written.
        """
        opts = self.resolve(options)
        path = pathlib.Path(path)
        fig = data if is_figure(data) else self._plot(data, opts)
        fmt = path.suffix.lstrip(".").lower()
        supported = fig.canvas.get_supported_filetypes()
        if fmt not in supported:
            raise VisualizationError(
                f"cannot tell the image format of {str(path)!r} from its suffix; end the name with "
                f"one of: {', '.join('.' + s for s in sorted(supported))}."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format=fmt, dpi=opts["dpi"])
        return path

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"
