"""Models dispatched by accelerate (``device_map`` with CPU and disk offload).

A tiny model is saved and loaded twice: once plainly, once with a ``device_map`` that keeps
layer 0 in memory (on the GPU when there is one) and offloads layer 1 to disk
(``offload_folder`` in a temporary directory). Every component, on both layers, collects and
interchanges exactly as on the plain model, and accelerate's own hooks (``_hf_hook`` and the
wrapped ``forward`` of each module) are the same objects after the calls.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import transformers as tf
from conftest import CASES, first_output, selected_families
from torch import nn

import vene as pv
from vene_hf.architectures import FAMILIES

pytest.importorskip("accelerate")

DEVICE_MAPS = {
    "llama": ("model", ["embed_tokens", "rotary_emb", "norm"], "lm_head"),
    "gpt_neox": (
        "gpt_neox",
        ["embed_in", "emb_dropout", "rotary_emb", "final_layer_norm"],
        "lm_head" if int(tf.__version__.split(".")[0]) >= 5 else "embed_out",  # 4.x's name
    ),
    "gpt2": ("transformer", ["wte", "wpe", "drop", "ln_f"], "lm_head"),
}
FAMS = [f for f in DEVICE_MAPS if f in selected_families()]
FAST = "cuda:0" if torch.cuda.is_available() else "cpu"


def _device_map(family: str) -> dict[str, Any]:
    base, others, head = DEVICE_MAPS[family]
    layers = "h" if family == "gpt2" else "layers"
    out: dict[str, Any] = {f"{base}.{m}": "cpu" for m in others}
    out[f"{base}.{layers}.0"] = FAST
    out[f"{base}.{layers}.1"] = "disk"
    out[head] = "cpu"
    return out


_loaded: dict[str, tuple[nn.Module, nn.Module]] = {}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Any:
    def get(family: str) -> tuple[nn.Module, nn.Module]:
        if family not in _loaded:
            root = tmp_path_factory.mktemp(family)
            CASES[family].build("lm").save_pretrained(root / "model")
            plain = tf.AutoModelForCausalLM.from_pretrained(root / "model").eval()
            dispatched = tf.AutoModelForCausalLM.from_pretrained(
                root / "model", device_map=_device_map(family), offload_folder=str(root / "offload")
            ).eval()
            _loaded[family] = plain, dispatched
        return _loaded[family]

    return get


def accelerate_state(model: nn.Module) -> dict[str, tuple[int, Any, int, int]]:
    return {
        name: (id(m._hf_hook), m.__dict__.get("forward"), len(m._forward_hooks), len(m._forward_pre_hooks))
        for name, m in model.named_modules()
        if hasattr(m, "_hf_hook")
    }


def _cases() -> list[Any]:
    out = []
    for fam in FAMS:
        for comp in sorted(FAMILIES[fam].components):
            for layer in (0, 1):
                out.append(pytest.param(fam, comp, layer, id=f"{fam}-{comp}-L{layer}"))
    return out


@pytest.mark.parametrize(("family", "component", "layer"), _cases())
def test_component_on_dispatched_model(
    family: str, component: str, layer: int, models: Any, registry: Any
) -> None:
    plain, dispatched = models(family)
    assert any(hasattr(m, "_hf_hook") for m in dispatched.modules())
    before = accelerate_state(dispatched)
    base, source = CASES[family].inputs(0), CASES[family].inputs(1)
    unit = "h.pos" if component.startswith("head_") else "pos"
    if unit == "h.pos":
        locs = ([[[[1], [0]], [[3], [1]]]], [[[[1], [0]], [[2], [4]]]])
    else:
        locs = ([[[3], [1]]], [[[2], [4]]])
    results = []
    for model in (plain, dispatched):
        collect = pv.IntervenableModel(
            {
                "layer": layer,
                "component": component,
                "unit": unit,
                "intervention_type": pv.CollectIntervention,
            },
            model,
            registry=registry,
        )
        (_, collected), _ = collect(base, unit_locations={"base": locs[1]})
        swap = pv.IntervenableModel(
            {"layer": layer, "component": component, "unit": unit}, model, registry=registry
        )
        _, out = swap(base, [source], unit_locations={"sources->base": locs})
        results.append((collected[0].cpu(), first_output(out).cpu()))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-5, atol=1e-5)
    assert accelerate_state(dispatched) == before
    with torch.no_grad():
        torch.testing.assert_close(first_output(dispatched(**base)).cpu(), first_output(plain(**base)))


@pytest.mark.skipif(
    int(tf.__version__.split(".")[0]) < 5, reason="transformers 4.x: Mixtral's expert_output is refused outright"
)
def test_offloaded_experts_are_a_clear_error(tmp_path: Any, registry: Any) -> None:
    if "mixtral" not in selected_families():
        pytest.skip("mixtral not selected")
    CASES["mixtral"].build("lm").save_pretrained(tmp_path / "model")
    device_map = {
        "model.embed_tokens": "cpu",
        "model.rotary_emb": "cpu",
        "model.norm": "cpu",
        "model.layers.0": "cpu",
        "model.layers.1": "disk",
        "lm_head": "cpu",
    }
    model = tf.AutoModelForCausalLM.from_pretrained(
        tmp_path / "model", device_map=device_map, offload_folder=str(tmp_path / "offload")
    )
    im = pv.IntervenableModel(
        {"layer": 1, "component": "expert_output", "moe_key": 0, "intervention_type": pv.ZeroIntervention},
        model,
        registry=registry,
    )
    with pytest.raises(pv.VeneError, match="offloaded"):
        im(CASES["mixtral"].inputs(0), unit_locations=None)
    assert [n for n, _ in model.named_modules() if "vene" in n] == []
