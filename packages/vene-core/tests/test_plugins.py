"""The plugin contract: the manager, the registry, entry points, a third-party plugin, the CLI."""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import os
import pathlib
import subprocess
import sys

import pytest

import vene as pv
import vene.hookspecs
from vene.plugins import Registry, get_plugin_manager

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_manager_is_built_by_a_function_with_core_registered():
    pm = get_plugin_manager(load_entrypoints=False)
    assert pm.get_plugin("core") is not None
    assert pm is not get_plugin_manager(load_entrypoints=False)
    reg = Registry(pm)
    assert reg.intervention_type("VanillaIntervention") is pv.VanillaIntervention
    assert reg.provider("intervention_types", "ZeroIntervention") == "core"


def test_core_entry_point_loads_and_version_matches():
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group="vene")}
    assert eps["core"].load() is importlib.import_module("vene._builtin")
    assert pv.__version__ == importlib.metadata.version("vene-core")


def test_duplicate_names_name_both_providers():
    class A:
        @pv.hookimpl
        def vene_intervention_types(self):
            class VanillaIntervention(pv.Intervention):
                pass

            return [VanillaIntervention]

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(A(), name="copycat")
    with pytest.raises(pv.PluginError, match="'core'.*'copycat'|'copycat'.*'core'"):
        Registry(pm)


def test_disabled_plugins_are_blocked(monkeypatch):
    monkeypatch.setenv("VENE_DISABLE_PLUGINS", "example, hf")
    pm = get_plugin_manager()
    assert pm.is_blocked("example") and pm.is_blocked("hf")
    monkeypatch.setenv("VENE_DISABLE_PLUGINS", "core")
    with pytest.raises(pv.PluginError, match="cannot be disabled"):
        get_plugin_manager()


def test_every_hook_is_documented_with_its_signature():
    doc = (ROOT / "docs" / "plugins.md").read_text()
    for name in vene.hookspecs.__all__:
        if not name.startswith("vene_"):
            continue
        sig = inspect.signature(getattr(vene.hookspecs, name))
        params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
        line = f"def {name}({params}) -> {sig.return_annotation}"
        assert line in doc, f"docs/plugins.md lacks the signature: {line}"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """Install the example plugin for real, into a private target directory."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT / "examples" / "vene-example-plugin")],
        check=True,
    )
    return target


def run_with(target, code, **env):
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(target), **env},
        capture_output=True, text=True,
    )


def test_a_third_party_plugin_adds_a_type_and_a_resolver(installed_example):
    code = r"""
import torch, vene as pv
model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
im = pv.IntervenableModel(
    {"layer": 0, "component": "step_output", "intervention_type": "scale"}, model)
x = torch.randn(5, 3)
_, out = im(x, subspaces=[1])
h = model[0](x); h[:, 1] *= 2.0
expected = model[2](model[1](h))
assert torch.allclose(out, expected), (out, expected)
print(pv.default_registry().provider("intervention_types", "scale"))
"""
    res = run_with(installed_example, code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "example"


def test_vene_plugins_lists_the_plugin_with_its_version(installed_example):
    res = run_with(installed_example, "from vene.cli import main; main(['plugins', '--json'])")
    assert res.returncode == 0, res.stderr
    info = {p["name"]: p for p in json.loads(res.stdout)}
    assert info["example"]["version"] == "0.1.0"
    assert info["example"]["provides"]["intervention_types"] == ["scale"]
    assert "site resolvers" in info["example"]["provides"]
    assert info["core"]["version"] == pv.__version__


def test_disabling_the_example_plugin(installed_example):
    code = "import vene as pv; pv.default_registry().intervention_type('scale')"
    res = run_with(installed_example, code, VENE_DISABLE_PLUGINS="example")
    assert res.returncode != 0 and "no intervention type named 'scale'" in res.stderr


def test_quickstart_runs():
    res = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "patched output equals the source's: True" in res.stdout
