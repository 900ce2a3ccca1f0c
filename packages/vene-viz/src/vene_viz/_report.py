"""A self-contained HTML report: interactive figures and base64 PNGs, and tables of numbers.

Matplotlib figures are embedded as base64 PNGs; plotly figures (a visualizer's
``interactive()``), patching results and training histories as interactive plotly figures, with
plotly.js written once into the page by plotly's own ``to_html``. The page loads nothing from
the network, so it can be mailed, attached to an experiment log or opened offline.
"""

from __future__ import annotations

import base64
import html
import io
import numbers
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ._base import COMMON_OPTIONS, Visualizer, is_figure, new_figure
from ._data import as_array, as_number
from ._errors import DataShapeError, DataTypeError, VisualizationError
from ._version import __version__

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["HtmlReport", "Table"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SECTIONS = ("text", "figures", "tables")

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; }
th { background: #f3f3f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
footer { margin-top: 3rem; color: #888; font-size: 0.8rem; }
"""


class Table:
    """A table read from a report's data: column names and rows of cells (numbers or text)."""

    def __init__(self, columns: list[str], rows: list[list[Any]]) -> None:
        self.columns = columns
        self.rows = rows

    @classmethod
    def read(cls, table: Any, name: str) -> Table:
        """A list of dicts (rows), a dict of numbers, a dict of lists (columns), or a 2-D array."""
        what = f"table {name!r}"
        if isinstance(table, Mapping):
            if all(_is_scalar(v) for v in table.values()):
                return cls(["name", "value"], [[str(k), _cell(v, what)] for k, v in table.items()])
            columns = {str(k): _column(v, what, k) for k, v in table.items()}
            lengths = {len(v) for v in columns.values()}
            if len(lengths) > 1:
                raise DataShapeError(
                    f"the columns of {what} have different lengths "
                    f"({', '.join(f'{k!r}: {len(v)}' for k, v in columns.items())})."
                )
            n = lengths.pop() if lengths else 0
            return cls(list(columns), [[columns[c][i] for c in columns] for i in range(n)])
        if isinstance(table, Sequence) and table and all(isinstance(r, Mapping) for r in table):
            names: dict[str, None] = {}
            for row in table:
                names.update(dict.fromkeys(str(k) for k in row))
            rows = [[_cell(_lookup(row, c), what) for c in names] for row in table]
            return cls(list(names), rows)
        if isinstance(table, (str, bytes)):
            raise DataTypeError(f"{what} is a string; give a list of dicts, a dict or a 2-D array.")
        arr = as_array(table, what)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2:
            raise DataShapeError(
                f"{what} must be 2-D (rows × columns), got shape {tuple(arr.shape)}; give a list "
                "of dicts to name the columns."
            )
        return cls(
            [""] + [str(j) for j in range(arr.shape[1])],
            [[i] + [float(v) for v in row] for i, row in enumerate(arr)],
        )


def _lookup(row: Mapping[Any, Any], column: str) -> Any:
    for k, v in row.items():
        if str(k) == column:
            return v
    return None


def _is_scalar(value: Any) -> bool:
    if hasattr(value, "numel"):
        return value.numel() == 1
    return value is None or isinstance(value, (str, numbers.Number, np.generic))


def _cell(value: Any, what: str) -> Any:
    """A number (int or float) or text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (numbers.Integral, np.integer)):
        return int(value)
    return as_number(value, f"a cell of {what}")


def _column(values: Any, what: str, key: Any) -> list[Any]:
    if hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise DataTypeError(
            f"{what}: column {key!r} holds {type(values).__name__}; a dict table maps names to "
            "numbers (one row each) or to lists (one column each)."
        )
    return [_cell(v, what) for v in values]


def _format(value: Any, precision: int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if precision is None:
        return repr(float(value))
    return format(value, f".{precision}g")


class Interactive:
    """A figure of the report drawn by plotly, and how to draw it as a PNG for :meth:`plot`."""

    def __init__(self, figure: Any, still: Any = None) -> None:
        self.figure = figure
        self.still = still  # a callable returning a matplotlib Figure, or None


def _item(item: Any, what: str, dpi: float) -> bytes | Interactive:
    """An interactive figure (plotly figure, patching result, training history) or PNG bytes."""
    from ._curves import TrainingCurves, history_records
    from ._grids import PatchingHeatmap
    from ._plotly import is_plotly_figure
    from ._result import is_result

    if is_plotly_figure(item):
        return Interactive(item)
    if is_result(item) and not isinstance(item, (str, bytes, os.PathLike)):
        viz: Any = PatchingHeatmap()
    elif history_records(item) is not None:
        viz = TrainingCurves()
    else:
        return _png(item, what, dpi)
    return Interactive(viz.interactive(item), lambda: viz.plot(item))


def _png(item: Any, what: str, dpi: float) -> bytes:
    """PNG bytes of a figure, of PNG bytes, or of a PNG file."""
    if is_figure(item):
        buffer = io.BytesIO()
        item.savefig(buffer, format="png", dpi=dpi)
        return buffer.getvalue()
    if isinstance(item, (bytes, bytearray)):
        data = bytes(item)
    elif isinstance(item, (str, os.PathLike)):
        path = pathlib.Path(item)
        if not path.is_file():
            raise DataTypeError(f"{what}: no PNG file at {str(path)!r}.")
        data = path.read_bytes()
    else:
        raise DataTypeError(
            f"{what} is a {type(item).__name__}; give a plotly figure (a visualizer's "
            "interactive()), a patching result, a training history, a matplotlib Figure (e.g. "
            "from a visualizer's plot()), PNG bytes, or the path of a PNG file."
        )
    if not data.startswith(_PNG_SIGNATURE):
        raise DataTypeError(f"{what} is not a PNG image (it lacks the PNG signature).")
    return data


def _named(items: Any, what: str) -> list[tuple[str, Any]]:
    """A dict title -> item, or a list of items / (title, item) pairs, as (title, item) pairs."""
    if isinstance(items, Mapping):
        return [(str(k), v) for k, v in items.items()]
    if is_figure(items) or isinstance(items, (str, bytes, os.PathLike)) or not isinstance(
        items, Sequence
    ):
        items = [items]
    out = []
    for i, item in enumerate(items):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            out.append(item)
        else:
            out.append((f"{what} {i + 1}", item))
    return out


class HtmlReport(Visualizer):
    """A self-contained HTML page: a title, a paragraph, figures and tables.

    ``data`` is a dict with any of the keys ``"text"`` (a paragraph), ``"figures"`` (a dict
    caption -> figure, or a list of figures or ``(caption, figure)`` pairs; a figure is a
    plotly figure, a patching result or a training history, each shown interactive, or a
    matplotlib Figure, PNG bytes or a PNG path, shown as a PNG) and ``"tables"`` (a dict name -> table; a table is
    a list of dicts, a dict of numbers, a dict of equal-length lists, or a 2-D array).

    :meth:`render` returns the HTML text, :meth:`save` writes it to an ``.html`` file, and
    :meth:`plot` draws a one-figure overview (the figures tiled, then the tables). Options:
    ``title``, ``precision`` (significant digits of the numbers in tables, default 4; None
    writes every digit, ``repr(float)``), ``dpi`` (of embedded figures), ``figsize``,
    ``plotlyjs`` (``"inline"``: plotly.js inside the page; ``"directory"``: a shared
    ``plotly.min.js`` next to it).
    """

    type_name: ClassVar[str] = "html_report"
    defaults: ClassVar[Mapping[str, Any]] = {**COMMON_OPTIONS, "title": "vene report", "precision": 4}

    def _sections(
        self, data: Any, dpi: float
    ) -> tuple[str, list[tuple[str, bytes | Interactive]], list[tuple[str, Table]]]:
        if not isinstance(data, Mapping):
            raise DataTypeError(
                f"a report's data is a dict with keys {', '.join(map(repr, _SECTIONS))}, got "
                f"{type(data).__name__}; e.g. {{'figures': {{'patching': fig}}, 'tables': "
                "{'scores': rows}}."
            )
        unknown = [k for k in data if k not in _SECTIONS]
        if unknown:
            raise VisualizationError(
                f"unknown report section {unknown[0]!r}; the sections are "
                f"{', '.join(map(repr, _SECTIONS))}."
            )
        text = data.get("text") or ""
        if not isinstance(text, str):
            raise DataTypeError(f"the report's 'text' must be a string, got {type(text).__name__}.")
        figures = [(t, _item(f, f"figure {t!r}", dpi)) for t, f in _named(data.get("figures") or [], "Figure")]
        tables_in = data.get("tables") or {}
        if not isinstance(tables_in, Mapping):
            tables_in = {"Table 1": tables_in}
        tables = [(str(name), Table.read(t, str(name))) for name, t in tables_in.items()]
        if not figures and not tables and not text:
            raise DataShapeError("the report is empty: give 'figures', 'tables' or 'text'.")
        return text, figures, tables

    def render(self, data: Any, **options: Any) -> str:
        """The report as one HTML document (a string)."""
        opts = self.resolve(options)
        precision = opts["precision"]
        if precision is not None and (isinstance(precision, bool) or not isinstance(precision, int) or precision < 1):
            raise VisualizationError(f"precision must be a positive int or None, got {precision!r}.")
        text, figures, tables = self._sections(data, opts["dpi"])
        esc = html.escape
        title = esc(str(opts["title"] or "vene report"))
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta name="generator" content="vene-viz {__version__}">',
            f"<title>{title}</title>",
            f"<style>{_STYLE}</style>",
            "</head>",
            "<body>",
            f"<h1>{title}</h1>",
        ]
        if text:
            parts += [f"<p>{esc(p)}</p>" for p in text.split("\n\n") if p.strip()]
        plotlyjs: Any = True if opts["plotlyjs"] == "inline" else "directory"
        for caption, png in figures:
            if isinstance(png, Interactive):
                # plotly.js goes into the page once, with the first interactive figure
                div = png.figure.to_html(full_html=False, include_plotlyjs=plotlyjs,
                                         config={"displaylogo": False, "responsive": True})
                plotlyjs = False
                parts += ['<section class="figure interactive">', f"<h2>{esc(caption)}</h2>",
                          f"<figure>{div}</figure>", "</section>"]
                continue
            encoded = base64.b64encode(png).decode("ascii")
            parts += [
                '<section class="figure">',
                f"<h2>{esc(caption)}</h2>",
                f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{encoded}"></figure>',
                "</section>",
            ]
        for name, table in tables:
            parts += ['<section class="table">', f"<h2>{esc(name)}</h2>", "<table>", "<thead><tr>"]
            parts += [f"<th>{esc(c)}</th>" for c in table.columns]
            parts += ["</tr></thead>", "<tbody>"]
            for row in table.rows:
                cells = [
                    f'<td class="num">{esc(_format(v, precision))}</td>'
                    if isinstance(v, (int, float)) else f"<td>{esc(_format(v, precision))}</td>"
                    for v in row
                ]
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts += ["</tbody>", "</table>", "</section>"]
        parts += [f"<footer>made with vene-viz {__version__}</footer>", "</body>", "</html>", ""]
        return "\n".join(parts)

    def save(self, path: str | os.PathLike[str], data: Any, **options: Any) -> pathlib.Path:
        """Write the HTML report to ``path`` (``.html``/``.htm``); returns the path."""
        path = pathlib.Path(path)
        if path.suffix.lower() not in (".html", ".htm"):
            raise VisualizationError(
                f"an HTML report is written to an .html file, got {str(path)!r}; to save the "
                "overview figure as an image use report.plot(data).savefig(path)."
            )
        page = self.render(data, **options)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
        if self.resolve(options)["plotlyjs"] == "directory" and 'src="plotly.min.js"' in page:
            from plotly.offline import get_plotlyjs

            (path.parent / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")
        return path

    @staticmethod
    def _still(caption: str, item: bytes | Interactive, dpi: float) -> bytes:
        if not isinstance(item, Interactive):
            return item
        if item.still is None:
            raise DataTypeError(
                f"figure {caption!r} is a plotly figure, which the overview cannot draw as an "
                "image; pass the data itself (a patching result or training history) or a "
                "matplotlib figure from the visualizer's plot()."
            )
        return _png(item.still(), f"figure {caption!r}", dpi)

    def _plot(self, data: Any, opts: dict[str, Any], ax: Any = None) -> Figure:
        import matplotlib.image as mpimg

        if ax is not None:
            raise VisualizationError("an HTML report's overview is a figure of its own; it takes no ax=.")

        text, items, tables = self._sections(data, opts["dpi"])
        figures = [(caption, self._still(caption, item, opts["dpi"])) for caption, item in items]
        precision = opts["precision"]
        cols = 2 if len(figures) > 1 else 1
        fig_rows = -(-len(figures) // cols)
        n_rows = fig_rows + len(tables)
        if n_rows == 0:
            raise DataShapeError("the report has only text; there is no figure or table to draw.")
        heights = [3.2] * fig_rows + [0.45 + 0.28 * (len(t.rows) + 1) for _, t in tables]
        fig = new_figure(opts["figsize"] or (6.0 * cols, sum(heights) + 0.6))
        grid = fig.add_gridspec(n_rows, cols, height_ratios=heights)
        for i, (caption, png) in enumerate(figures):
            ax = fig.add_subplot(grid[i // cols, i % cols])
            ax.imshow(mpimg.imread(io.BytesIO(png), format="png"))
            ax.set_title(caption, fontsize=10)
            ax.set_axis_off()
        for j, (name, table) in enumerate(tables):
            ax = fig.add_subplot(grid[fig_rows + j, :])
            ax.set_axis_off()
            ax.set_title(name, fontsize=10)
            cells = [[_format(v, precision) for v in row] for row in table.rows] or [[""] * len(table.columns)]
            drawn = ax.table(cellText=cells, colLabels=table.columns, loc="center", cellLoc="right")
            drawn.auto_set_font_size(False)
            drawn.set_fontsize(8)
        fig.suptitle(str(opts["title"] or "vene report"))
        return fig
