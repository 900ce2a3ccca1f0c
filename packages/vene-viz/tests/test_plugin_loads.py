"""vene-viz proves it loads: its ``vene`` entry point, its version, and its registered names."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys

import vene
import vene_viz
from vene.plugins import Registry

NAMES = {
    "patching_heatmap": vene_viz.PatchingHeatmap,
    "head_map": vene_viz.HeadMap,
    "das_mask": vene_viz.DasMask,
    "training_curves": vene_viz.TrainingCurves,
    "attention": vene_viz.AttentionMap,
    "html_report": vene_viz.HtmlReport,
}


def _entry_point() -> importlib.metadata.EntryPoint:
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group="vene")}
    assert "viz" in eps, "the vene-viz distribution does not declare the 'viz' entry point"
    return eps["viz"]


def test_entry_point_loads_into_a_fresh_manager():
    ep = _entry_point()
    assert ep.value == "vene_viz.plugin"
    assert ep.dist is not None and ep.dist.name == "vene-viz"
    module = ep.load()
    assert module is importlib.import_module("vene_viz.plugin")

    pm = vene.get_plugin_manager(load_entrypoints=False)
    pm.register(module, name="viz")
    registry = Registry(pm)
    assert registry.visualizer("patching_heatmap") is vene_viz.PatchingHeatmap
    for name, cls in NAMES.items():
        assert registry.visualizer(name) is cls
        assert registry.provider("visualizers", name) == "viz"
    assert registry.names("visualizers") == sorted(NAMES)


def test_version_matches_the_installed_distribution():
    assert vene_viz.__version__ == importlib.metadata.version("vene-viz")
    assert vene_viz.__version__ == _entry_point().dist.version


def test_each_class_declares_its_own_type_name():
    # The registry reads type_name from the class's own __dict__; an inherited one would not count.
    for name, cls in NAMES.items():
        assert cls.__dict__["type_name"] == name


def test_an_unknown_visualizer_names_the_registered_ones():
    pm = vene.get_plugin_manager(load_entrypoints=False)
    pm.register(_entry_point().load(), name="viz")
    try:
        Registry(pm).visualizer("patching_heatmaps")
    except vene.MissingPluginError as exc:
        assert "patching_heatmap" in str(exc)
    else:
        raise AssertionError("an unknown visualizer name did not raise")


def test_registering_the_plugin_imports_no_matplotlib():
    code = (
        "import sys, importlib.metadata, vene\n"
        "from vene.plugins import Registry\n"
        "ep = [e for e in importlib.metadata.entry_points(group='vene') if e.name == 'viz'][0]\n"
        "pm = vene.get_plugin_manager(load_entrypoints=False)\n"
        "pm.register(ep.load(), name='viz')\n"
        "assert Registry(pm).visualizer('das_mask').__name__ == 'DasMask'\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib')\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
