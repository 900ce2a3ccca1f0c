"""HtmlReport writes one self-contained page: figures as base64 PNGs and tables of numbers."""

from __future__ import annotations

import base64
import html.parser
import io

import matplotlib.image as mpimg
import numpy as np
import pytest

from vene_viz import (
    DataShapeError,
    DataTypeError,
    HeadMap,
    HtmlReport,
    PatchingHeatmap,
    TrainingCurves,
    VisualizationError,
)

PNG = b"\x89PNG\r\n\x1a\n"


class Page(html.parser.HTMLParser):
    """Reads back the images, table cells and external references of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.tables: list[list[list[str]]] = []
        self.links: list[tuple[str, str]] = []
        self.tags: set[str] = set()
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "img":
            self.images.append(attrs)
        for name in ("src", "href"):
            if name in attrs and not attrs[name].startswith("data:"):
                self.links.append((tag, attrs[name]))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def read(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    return parser


def decode(img: dict[str, str]) -> bytes:
    prefix = "data:image/png;base64,"
    assert img["src"].startswith(prefix)
    return base64.b64decode(img["src"][len(prefix):])


@pytest.fixture(scope="module")
def report_data(patching, head_patching, das_training):
    scores, tokens = patching["vene"], patching["tokens"]
    rows = [
        {"layer": layer, **{f"{p}:{tok}": scores[layer, p].item() for p, tok in enumerate(tokens)}}
        for layer in range(scores.shape[0])
    ]
    return {
        "text": "Activation patching of a tiny model <clean → corrupt>.\n\nSecond paragraph.",
        "figures": {
            "Block outputs": PatchingHeatmap(tokens=tokens, figsize=(5, 3)).plot(scores),
            "Heads": HeadMap(figsize=(4, 3)).plot(head_patching["vene"]),
            "Training": TrainingCurves(figsize=(4, 4)).plot(das_training["boundless_records"]),
        },
        "tables": {
            "Restored fraction": rows,
            "Summary": {"final loss": das_training["boundless_records"][-1]["loss"], "steps": 40},
        },
    }


def test_the_page_embeds_every_figure_and_every_number(report_data, patching, tmp_path):
    report = HtmlReport(title="Patching <tiny>", precision=None, dpi=40)
    path = report.save(tmp_path / "report.html", report_data)
    page = path.read_text(encoding="utf-8")
    assert path.stat().st_size > 0 and page.startswith("<!DOCTYPE html>")
    parsed = read(page)

    # self-contained: nothing is fetched from elsewhere, and nothing runs
    assert parsed.links == []
    assert "script" not in parsed.tags and "link" not in parsed.tags

    # the figures, in order, as PNGs of the size each figure asked for (figsize × dpi)
    assert [img["alt"] for img in parsed.images] == ["Block outputs", "Heads", "Training"]
    for img, (w, h) in zip(parsed.images, [(5, 3), (4, 3), (4, 4)]):
        png = decode(img)
        assert png.startswith(PNG)
        assert mpimg.imread(io.BytesIO(png), format="png").shape[:2] == (h * 40, w * 40)

    # the numbers, read back from the table cells, are the sweep's values exactly
    restored, summary = parsed.tables
    header, *rows = restored
    assert header == ["layer"] + [f"{p}:{t}" for p, t in enumerate(patching["tokens"])]
    got = np.array([[float(c) for c in row[1:]] for row in rows])
    np.testing.assert_array_equal(got, patching["vene"].double().numpy())
    assert [row[0] for row in rows] == ["0", "1", "2"]
    assert summary[0] == ["name", "value"]
    assert summary[1][0] == "final loss" and float(summary[1][1]) == report_data["tables"]["Summary"]["final loss"]
    assert summary[2] == ["steps", "40"]

    # text and titles are escaped, not interpreted
    assert "<title>Patching &lt;tiny&gt;</title>" in page
    assert "&lt;clean → corrupt&gt;" in page and "<p>Second paragraph.</p>" in page


def test_numbers_are_rounded_to_the_precision(report_data, patching):
    page = HtmlReport(precision=3).render(report_data)
    for v in patching["vene"].flatten().tolist():
        assert f">{v:.3g}<" in page
    default = HtmlReport().render(report_data)
    for v in patching["vene"].flatten().tolist():
        assert f">{v:.4g}<" in default


def test_tables_from_arrays_and_column_dicts(head_patching):
    grid = head_patching["vene"]
    page = read(HtmlReport(precision=None).render({
        "tables": {"heads": grid, "columns": {"head": [0, 1], "effect": [0.5, 0.25]}},
    }))
    heads, columns = page.tables
    assert heads[0] == ["", "0", "1", "2", "3"]
    np.testing.assert_array_equal([[float(c) for c in r[1:]] for r in heads[1:]], grid.double().numpy())
    assert columns == [["head", "effect"], ["0", "0.5"], ["1", "0.25"]]


def test_plot_draws_an_overview_of_the_figures_and_tables(report_data):
    # PNG bytes go in, so each tile can be compared with the exact image it shows
    pngs = {}
    for caption, figure in report_data["figures"].items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=30)
        pngs[caption] = buffer.getvalue()
    fig = HtmlReport().plot({**report_data, "figures": pngs})
    image_axes = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in image_axes] == ["Block outputs", "Heads", "Training"]
    for ax, png in zip(image_axes, pngs.values()):
        expected = mpimg.imread(io.BytesIO(png), format="png")
        np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), expected)
    tables = [ax for ax in fig.axes if ax.tables]
    assert [ax.get_title() for ax in tables] == ["Restored fraction", "Summary"]
    cells = tables[1].tables[0].get_celld()
    assert cells[(2, 0)].get_text().get_text() == "steps" and cells[(2, 1)].get_text().get_text() == "40"
    assert fig.get_suptitle() == "vene report"


def test_pngs_from_files_and_bytes(report_data, tmp_path):
    path = PatchingHeatmap().save(tmp_path / "p.png", np.eye(3))
    png = path.read_bytes()
    page = read(HtmlReport().render({"figures": [path, ("raw bytes", png)]}))
    assert [img["alt"] for img in page.images] == ["Figure 1", "raw bytes"]
    assert all(decode(img) == png for img in page.images)


def test_bad_reports_say_what_is_wrong(report_data, tmp_path):
    with pytest.raises(DataTypeError, match="a report's data is a dict"):
        HtmlReport().render([1, 2])
    with pytest.raises(VisualizationError, match="unknown report section 'figure'"):
        HtmlReport().render({"figure": {}})
    with pytest.raises(DataShapeError, match="the report is empty"):
        HtmlReport().render({})
    with pytest.raises(DataTypeError, match="figure 'x' is a ndarray"):
        HtmlReport().render({"figures": {"x": np.eye(2)}})
    with pytest.raises(DataTypeError, match="not a PNG"):
        HtmlReport().render({"figures": {"x": b"GIF89a"}})
    with pytest.raises(DataTypeError, match="no PNG file"):
        HtmlReport().render({"figures": {"x": tmp_path / "missing.png"}})
    with pytest.raises(DataShapeError, match="must be 2-D"):
        HtmlReport().render({"tables": {"t": np.zeros((2, 2, 2))}})
    with pytest.raises(DataShapeError, match="different lengths"):
        HtmlReport().render({"tables": {"t": {"a": [1, 2], "b": [1]}}})
    with pytest.raises(VisualizationError, match="precision"):
        HtmlReport(precision=0).render(report_data)
    with pytest.raises(VisualizationError, match=r"\.html file"):
        HtmlReport().save(tmp_path / "report.png", report_data)
