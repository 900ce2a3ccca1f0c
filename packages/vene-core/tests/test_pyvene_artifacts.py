"""Folders in pyvene 0.1.8's format are read without importing or unpickling anything."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from torch import nn

import vene as pv
from vene._pyvene_artifacts import is_pyvene_artifact, load_pyvene_artifact


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


def _write(tmp_path, type_string: str, weights: object, *, raw: bytes | None = None) -> str:
    key = "layer_0_comp_a.output_unit_pos_nunit_1#0"
    config = {
        "intervention_types": [type_string],
        "representations": [[0, "a.output", "pos", 1, None, None, None, None, None, None, None, True, None, None]],
        "sorted_keys": [key],
        "mode": "parallel",
        "intervention_dimensions": [4],
        "intervention_constant_sources": [True],
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    path = tmp_path / f"intkey_{key}.bin"
    if raw is not None:
        path.write_bytes(raw)
    else:
        torch.save(weights, path)
    return str(tmp_path)


ADD = "<class 'pyvene.models.interventions.AdditionIntervention'>"


def test_constant_addition_artifact_loads(tmp_path) -> None:
    steer = torch.tensor([1.0, -2.0, 0.5, 3.0])
    d = _write(tmp_path, ADD, {"embed_dim": torch.tensor(4), "source_representation": steer})
    assert is_pyvene_artifact(d)
    torch.manual_seed(0)
    model = Tiny()
    im = load_pyvene_artifact(d, model)
    x = torch.randn(2, 3, 4)
    _, out = im({"x": x}, unit_locations={"base": 1})
    with torch.no_grad():  # by hand: add the vector at position 1 after layer a
        h = model.a(x)
        h[:, 1] += steer
        want = model.b(torch.relu(h))
    torch.testing.assert_close(out, want)


def test_class_outside_the_allow_list_is_refused(tmp_path) -> None:
    d = _write(tmp_path, "<class 'os.system'>", {"embed_dim": torch.tensor(4)})
    with pytest.raises(pv.ArtifactError, match="is ever imported"):
        load_pyvene_artifact(d, Tiny())


class _Payload:
    def __reduce__(self):
        return (os.getcwd, ())  # harmless, and refused before it could run


def test_pickled_code_is_refused(tmp_path) -> None:
    d = _write(tmp_path, ADD, None, raw=pickle.dumps({"x": _Payload()}, protocol=2))
    with pytest.raises(pv.ArtifactError, match="weights_only"):
        load_pyvene_artifact(d, Tiny())


def test_width_mismatch_is_refused(tmp_path) -> None:
    d = _write(tmp_path, ADD, {"embed_dim": torch.tensor(8), "source_representation": torch.zeros(8)})
    with pytest.raises(pv.ArtifactError, match="width 8"):
        load_pyvene_artifact(d, Tiny())


def test_vene_artifacts_are_not_taken_for_pyvene(tmp_path) -> None:
    im = pv.IntervenableModel({"component": "a.output"}, model=Tiny())
    im.save(str(tmp_path))
    assert not is_pyvene_artifact(str(tmp_path))
