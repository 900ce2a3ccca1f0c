"""Local save/load: config.json with a schema version, weights in safetensors, no pickle."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TinyTransformer
from safetensors.torch import load_file

import vene as pv


def test_round_trip_reproduces_outputs(tiny, ids, registry, tmp_path):
    base, _ = ids
    vec = torch.randn(8)
    im = pv.IntervenableModel(
        [{"layer": 0, "component": "block_output", "intervention_type": pv.AdditionIntervention,
          "source_representation": vec},
         {"layer": 1, "component": "block_input", "intervention": pv.NoiseIntervention(noise_level=0.3, seed=4)},
         {"layer": 1, "component": "block_output", "intervention_type": pv.ZeroIntervention,
          "subspace_partition": [[0, 4], [4, 8]]}],
        tiny, registry=registry,
    )
    kw = dict(unit_locations={"base": [[[1]] * 3, [[2]] * 3, [[0]] * 3]}, subspaces=[None, None, 1])
    _, expected = im({"input_ids": base}, **kw)
    im.save(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["schema_version"] == 1
    assert [r["intervention_type"] for r in data["representations"]] == [
        "AdditionIntervention", "NoiseIntervention", "ZeroIntervention"]
    assert data["intervention_kwargs"][1]["noise_level"] == 0.3
    assert data["base_model"]["class"] == "TinyTransformer"
    weights = load_file(tmp_path / "interventions.safetensors")
    assert any(k.endswith("source_representation") for k in weights)
    loaded = pv.IntervenableModel.load(str(tmp_path), tiny, registry=registry)
    _, got = loaded({"input_ids": base}, **kw)
    assert torch.equal(got, expected)


def test_weights_only_round_trip(tiny, registry, tmp_path):
    im = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "intervention_type": pv.AdditionIntervention,
         "source_representation": torch.zeros(8)}, tiny, registry=registry)
    other = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "intervention_type": pv.AdditionIntervention,
         "source_representation": torch.ones(8)}, tiny, registry=registry)
    other.save_intervention(tmp_path)
    im.load_intervention(tmp_path)
    assert torch.equal(next(iter(im.interventions.values())).source_representation, torch.ones(8))


def test_functions_cannot_be_saved(tiny, registry, tmp_path):
    im = pv.IntervenableModel({"layer": 0, "component": "block_output", "intervention": lambda b, s: b},
                              tiny, registry=registry)
    with pytest.raises(pv.VeneError, match="never store code"):
        im.save(tmp_path)


def test_unregistered_type_cannot_be_saved(tiny, registry, tmp_path):
    class Mine(pv.SourcelessIntervention):
        def forward(self, base, source=None, subspaces=None, **kw):
            return base

    im = pv.IntervenableModel({"layer": 0, "component": "block_output", "intervention_type": Mine},
                              tiny, registry=registry)
    with pytest.raises(pv.ArtifactError, match="not a registered intervention type"):
        im.save(tmp_path)


def test_type_from_a_missing_plugin_names_the_package(tiny, registry, tmp_path):
    im = pv.IntervenableModel({"layer": 0, "component": "block_output",
                               "intervention_type": pv.ZeroIntervention}, tiny, registry=registry)
    im.save(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data["representations"][0]["intervention_type"] = "RotatedSpaceIntervention"
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(pv.ArtifactError, match="pip install vene-train"):
        pv.IntervenableModel.load(str(tmp_path), tiny, registry=registry)


def test_artifact_that_does_not_fit_the_model(tiny, registry, tmp_path):
    im = pv.IntervenableModel(
        {"layer": 1, "component": "block_output", "intervention_type": pv.AdditionIntervention,
         "source_representation": torch.zeros(8)}, tiny, registry=registry)
    im.save(tmp_path)
    torch.manual_seed(0)
    wider = TinyTransformer(d=12, heads=2)
    with pytest.raises(pv.ArtifactError, match="does not fit this model.*width 8.*width 12"):
        pv.IntervenableModel.load(str(tmp_path), wider, registry=registry)
    shallow = TinyTransformer(layers=1)
    with pytest.raises(pv.ArtifactError, match="does not fit this model.*out of range"):
        pv.IntervenableModel.load(str(tmp_path), shallow, registry=registry)


def test_not_an_artifact(tiny, registry, tmp_path):
    with pytest.raises(pv.ArtifactError, match="not a vene artifact"):
        pv.IntervenableModel.load(str(tmp_path), tiny, registry=registry)
    with pytest.raises(pv.ArtifactError, match="not a directory"):
        pv.IntervenableModel.load(str(tmp_path / "nope"), tiny, registry=registry)


def test_future_schema_is_refused(tiny, registry, tmp_path):
    pv.IntervenableModel({"layer": 0, "component": "block_output", "intervention_type": pv.ZeroIntervention},
                         tiny, registry=registry).save(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data["schema_version"] = 99
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(pv.ArtifactError, match="schema_version 99"):
        pv.IntervenableModel.load(str(tmp_path), tiny, registry=registry)


def test_config_json_round_trip():
    cfg = pv.IntervenableConfig(
        representations=[pv.RepresentationConfig(2, "mlp_output", "h.pos", 3, subspace_partition=[[0, 2], [2, 4]],
                                                 group_key=1, intervention_link_key="x")],
        mode="serial",
    )
    again = pv.IntervenableConfig.from_json(cfg.to_json())
    assert again == cfg
    assert pv.IntervenableConfig.coerce([{"layer": 1}, [2, "block_input"]]).representations[1].component == "block_input"


def test_save_intervention_include_model_keeps_trained_model_parameters(tiny, registry, tmp_path):
    """pyvene's include_model: the wrapped model's parameters that need gradients travel too."""
    rep = {"layer": 0, "component": "block_output", "intervention_type": pv.AdditionIntervention,
           "source_representation": torch.ones(8)}
    im = pv.IntervenableModel(rep, tiny, registry=registry)
    im.save_intervention(tmp_path / "frozen")
    assert not (tmp_path / "frozen" / "model_trainable.safetensors").exists()  # nothing trainable

    im.enable_model_gradients()
    name, param = next(iter(tiny.named_parameters()))
    with torch.no_grad():
        param.add_(1.0)
    trained = param.detach().clone()
    im.save_intervention(tmp_path / "trained")
    im.save_intervention(tmp_path / "weights-only", include_model=False)

    torch.manual_seed(0)
    fresh = TinyTransformer().eval()
    before = dict(fresh.named_parameters())[name].detach().clone()
    assert not torch.equal(before, trained)
    other = pv.IntervenableModel(rep, fresh, registry=registry)
    other.load_intervention(tmp_path / "weights-only")
    assert torch.equal(dict(fresh.named_parameters())[name], before)
    other.load_intervention(tmp_path / "trained", include_model=False)
    assert torch.equal(dict(fresh.named_parameters())[name], before)
    other.load_intervention(tmp_path / "trained")
    assert torch.equal(dict(fresh.named_parameters())[name], trained)


def test_load_intervention_refuses_model_parameters_of_another_model(tiny, registry, tmp_path):
    from safetensors.torch import save_file

    rep = {"layer": 0, "component": "block_output", "intervention_type": pv.ZeroIntervention}
    im = pv.IntervenableModel(rep, tiny, registry=registry)
    im.save_intervention(tmp_path)
    save_file({"no.such.weight": torch.zeros(2)}, str(tmp_path / "model_trainable.safetensors"))
    with pytest.raises(pv.ArtifactError, match="no.such.weight"):
        im.load_intervention(tmp_path)
