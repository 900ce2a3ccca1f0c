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


def test_a_misspelled_hook_is_refused_naming_plugin_and_hook():
    import types

    typo = types.ModuleType("typo_plugin")

    @pv.hookimpl
    def vene_intervention_type():  # the real hook is vene_intervention_types
        return [pv.ZeroIntervention]

    typo.vene_intervention_type = vene_intervention_type
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(typo, name="typo")
    with pytest.raises(pv.PluginError) as err:
        Registry(pm)
    msg = str(err.value)
    assert "'typo'" in msg and "'vene_intervention_type'" in msg
    assert "Did you mean: vene_intervention_types" in msg


def run_on_path(target, code, **env):
    """Run ``code`` with ``target`` first on the path, before the vene being tested."""
    path = os.pathsep.join(p for p in (str(target), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": path, **env},
        capture_output=True, text=True,
    )


def _dist(target, name, version, entry_points="", modules=None):
    """A minimal installed distribution (a dist-info directory) under ``target``."""
    info = target / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if entry_points:
        (info / "entry_points.txt").write_text(entry_points)
    for mod, text in (modules or {}).items():
        (target / f"{mod}.py").write_text(text)


def test_a_misspelled_hook_in_an_installed_plugin_fails_when_the_manager_is_built(tmp_path):
    _dist(tmp_path, "typo-plugin", "0.1", "[vene]\ntypo = typo_plugin\n", {
        "typo_plugin": "from vene import hookimpl\n\n@hookimpl\ndef vene_resolve_sites(model, representation):\n"
                       "    return None\n",
    })
    code = "import vene as pv; pv.get_plugin_manager(); print('built')"
    res = run_on_path(tmp_path, code)
    assert res.returncode != 0
    assert "PluginError" in res.stderr and "'typo'" in res.stderr and "'vene_resolve_sites'" in res.stderr
    assert "Did you mean: vene_resolve_site" in res.stderr
    res = run_on_path(tmp_path, code, VENE_DISABLE_PLUGINS="typo")
    assert res.returncode == 0 and res.stdout.strip() == "built", res.stderr


def test_missing_name_of_an_installed_but_disabled_package_says_so(tmp_path):
    # an installed vene-train (its metadata first on the path) whose plugin is disabled
    _dist(tmp_path, "vene-train", "9.9", "[vene]\ntrain = vene_fake_train\n",
          {"vene_fake_train": '"""A stand-in for vene-train that provides nothing."""\n'})
    code = "import vene as pv; pv.default_registry().intervention_type('RotatedSpaceIntervention')"
    res = run_on_path(tmp_path, code, VENE_DISABLE_PLUGINS="train")
    assert "MissingPluginError" in res.stderr
    assert "installed but disabled by VENE_DISABLE_PLUGINS" in res.stderr
    assert "pip install vene-train" not in res.stderr


def test_resolver_hint_does_not_ask_to_install_an_installed_vene_hf(tmp_path):
    _dist(tmp_path, "vene-hf", "9.9")  # installed, but its plugin provides no resolver here
    code = (
        "import torch, vene as pv\n"
        "pv.IntervenableModel({'layer': 0, 'component': 'mlp_output'}, torch.nn.Linear(2, 2))\n"
    )
    res = run_on_path(tmp_path, code)
    assert "SiteResolutionError" in res.stderr
    assert "pip install vene-hf" not in res.stderr
    assert "vene-hf is installed" in res.stderr


def test_one_table_of_plugin_names():
    from vene.plugins import PLUGIN_PACKAGES, PROVIDED_NAMES, provided_names

    assert PLUGIN_PACKAGES["create_gpt2"] == "vene-hf"
    assert PLUGIN_PACKAGES["das"] == "vene-train"
    assert provided_names("vene-train", "trainers") == ("das", "iit")
    assert set(PLUGIN_PACKAGES) == {n for kinds in PROVIDED_NAMES.values() for ns in kinds.values() for n in ns}
    with pytest.raises(pv.PluginError, match="no package 'vene-nope'"):
        provided_names("vene-nope", "public_names")


def test_cli_command_lives_beside_the_hookspecs():
    from vene.cli import CliCommand

    assert CliCommand is vene.hookspecs.CliCommand is pv.CliCommand
