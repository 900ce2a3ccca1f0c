"""vene-hf's ``vene`` entry point loads into a fresh plugin manager and resolves sites."""

from __future__ import annotations

import importlib.metadata

import torch
from conftest import CASES

import vene as pv
import vene_hf


def _entry_point() -> importlib.metadata.EntryPoint:
    (ep,) = [ep for ep in importlib.metadata.entry_points(group="vene") if ep.name == "hf"]
    return ep


def test_entry_point_loads_into_a_fresh_manager() -> None:
    ep = _entry_point()
    assert ep.value == "vene_hf.plugin"
    assert ep.dist is not None and ep.dist.name == "vene-hf"
    module = ep.load()
    pm = pv.get_plugin_manager(load_entrypoints=False)
    pm.register(module, name=ep.name)
    assert pm.get_plugin("hf") is module
    hooks = {h.name for h in pm.get_hookcallers(module)}
    assert "vene_resolve_site" in hooks
    torch.manual_seed(0)
    model = CASES["gpt2"].build("lm")
    rep = pv.RepresentationConfig(layer=1, component="head_value_output", unit="h.pos")
    site = pm.hook.vene_resolve_site(model=model, representation=rep)
    assert (site.module, site.chunk, site.heads, site.dim) == ("transformer.h.1.attn.c_attn", (2, 3), 4, 4)


def test_version_matches_the_installed_distribution() -> None:
    assert vene_hf.__version__ == importlib.metadata.version("vene-hf")
    assert _entry_point().dist.version == vene_hf.__version__
