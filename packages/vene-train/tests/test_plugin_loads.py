"""vene-train's entry point loads into a fresh plugin manager, and its names resolve on ``vene``."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap

import vene as pv
import vene_train
from vene.plugins import Registry
from vene_train.interventions import TRAINABLE_INTERVENTIONS, RotatedSpaceIntervention

NAMES = {
    "RotatedSpaceIntervention",
    "LowRankRotatedSpaceIntervention",
    "BoundlessRotatedSpaceIntervention",
    "SigmoidMaskRotatedSpaceIntervention",
    "SigmoidMaskIntervention",
    "PCARotatedSpaceIntervention",
    "AutoencoderIntervention",
    "JumpReLUAutoencoderIntervention",
    "LoreftIntervention",
    "NoreftIntervention",
    "DireftIntervention",
    "ConsreftIntervention",
}


def _entry_point() -> importlib.metadata.EntryPoint:
    (ep,) = [e for e in importlib.metadata.entry_points(group="vene") if e.name == "train"]
    return ep


def test_version_matches_the_installed_distribution():
    assert vene_train.__version__ == importlib.metadata.version("vene-train")
    assert _entry_point().value == "vene_train.plugin"


def test_entry_point_registers_the_interventions_in_a_fresh_manager():
    pm = pv.get_plugin_manager(load_entrypoints=False)
    plugin = _entry_point().load()
    pm.register(plugin, name="train")
    provided = [
        cls
        for impl in pm.hook.vene_intervention_types.get_hookimpls()
        if impl.plugin is plugin
        for cls in impl.function()
    ]
    assert tuple(provided) == TRAINABLE_INTERVENTIONS
    assert {cls.__name__ for cls in provided} == NAMES
    assert all(issubclass(cls, pv.Intervention) for cls in provided)
    # the names the core reserves for vene-train are exactly the ones it provides
    from vene.plugins import PLUGIN_PACKAGES

    reserved = {n for n, pkg in PLUGIN_PACKAGES.items() if pkg == "vene-train" and n.endswith("Intervention")}
    assert reserved == NAMES


def test_full_registry_and_vene_attributes_resolve():
    pm = pv.get_plugin_manager(load_entrypoints=False)
    pm.register(_entry_point().load(), name="train")
    registry = Registry(pm)
    for cls in TRAINABLE_INTERVENTIONS:
        assert registry.intervention_type(cls.__name__) is cls
        assert registry.provider("intervention_types", cls.__name__) == "train"
    assert pv.RotatedSpaceIntervention is RotatedSpaceIntervention
    for name in NAMES:
        assert getattr(pv, name).__name__ == name


def test_disabled_plugin_names_the_package_to_install():
    code = textwrap.dedent(
        """
        import vene
        try:
            vene.RotatedSpaceIntervention
        except vene.MissingPluginError as e:
            print("MissingPluginError:", e)
        else:
            print("resolved")
        """
    )
    env = {**os.environ, "VENE_DISABLE_PLUGINS": "train"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("MissingPluginError:"), done.stdout + done.stderr
    assert "vene-train" in done.stdout
