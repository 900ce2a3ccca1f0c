"""House rules: no pyplot, no windows, documented modules, public names in __all__."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import vene_viz

SRC = pathlib.Path(vene_viz.__file__).parent


def test_drawing_never_imports_pyplot_or_switches_the_backend(tmp_path):
    code = f"""
import sys, torch, numpy as np
import matplotlib
backend = matplotlib.rcParams._get_backend_or_none()
import vene_viz as vv
out = {str(tmp_path)!r}
vv.PatchingHeatmap(tokens=list("abc")).save(out + "/p.png", torch.rand(2, 3))
vv.HeadMap().save(out + "/h.png", torch.rand(2, 4))
vv.DasMask().save(out + "/d.png", torch.rand(8))
vv.TrainingCurves().save(out + "/c.png", [{{"step": 0, "loss": 1.0}}, {{"step": 1, "loss": 0.5}}])
vv.AttentionMap().save(out + "/a.png", torch.rand(1, 2, 3, 3).softmax(-1), head=0)
vv.HtmlReport().save(out + "/r.html", {{"figures": [vv.HeadMap().plot(np.eye(2))], "tables": {{"t": {{"a": 1.5}}}}}})
vv.HtmlReport().plot({{"figures": [out + "/p.png"]}})
vv.PatchingHeatmap().save(out + "/p.html", torch.rand(2, 3))
vv.TrainingCurves().save(out + "/c.html", [{{"step": 0, "loss": 1.0}}, {{"step": 1, "loss": 0.5}}])
assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
assert matplotlib.rcParams._get_backend_or_none() == backend, "the backend was changed"
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "c.html", "c.png", "d.png", "h.png", "p.html", "p.png", "r.html"]


def test_every_module_starts_with_a_docstring_and_declares_all():
    # _version.py is the one-line static version file that the build reads; it is exempt
    for path in sorted(p for p in SRC.glob("*.py") if p.name != "_version.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{path.name} has no module docstring"
        assert isinstance(tree.body[0], ast.Expr), f"{path.name}: the docstring is not first"
        names = {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                 for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                 if isinstance(t, ast.Name)}
        assert "__all__" in names, f"{path.name} has no __all__"


def test_public_names_are_exported():
    for name in vene_viz.__all__:
        assert hasattr(vene_viz, name)
    assert (SRC / "py.typed").exists()


def test_every_error_is_a_vene_error():
    import vene

    for name in ("VisualizationError", "DataShapeError", "LabelMismatchError", "DataTypeError",
                 "DataValueError", "MissingMetricError"):
        assert issubclass(getattr(vene_viz, name), vene.VeneError)
