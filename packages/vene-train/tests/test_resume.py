"""Resuming from a checkpoint continues the run: the same weights, losses and schedule as a run
that was never stopped."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

import vene as pv
import vene_train.plugin
from vene.plugins import Registry
from vene_train.interventions import BoundlessRotatedSpaceIntervention
from vene_train.trainers import DASTrainer, IITTrainer, TrainerError


def _registry() -> Registry:
    pm = pv.get_plugin_manager(load_entrypoints=False)
    pm.register(vene_train.plugin, name="train")
    return Registry(pm)


def _model(cls=BoundlessRotatedSpaceIntervention) -> pv.IntervenableModel:
    torch.manual_seed(0)
    _, _, mlp = pv.create_mlp_classifier(pv.MLPConfig(h_dim=8, n_layer=2, input_dim=4, num_classes=3))
    config = {"layer": 0, "component": "block_output", "subspace_partition": [[0, 4], [4, 8]]}
    if cls is not None:
        config["intervention_type"] = cls
    return pv.IntervenableModel(config, mlp.eval(), registry=_registry())


def _loader() -> DataLoader:
    g = torch.Generator().manual_seed(1)
    x, s = torch.randn(24, 4, generator=g), torch.randn(24, 4, generator=g)
    y, by = torch.randint(0, 3, (24,), generator=g), torch.randint(0, 3, (24,), generator=g)
    data = [{"input_ids": x[i], "source_input_ids": s[i : i + 1], "labels": y[i], "base_labels": by[i]} for i in range(24)]
    return DataLoader(data, batch_size=4, shuffle=True)  # shuffled from torch's global generator


def _state(im: pv.IntervenableModel) -> dict[str, torch.Tensor]:
    out = {f"iv.{k}": v.detach().clone() for iv in im.interventions.values() for k, v in iv.state_dict().items()}
    out.update({f"model.{k}": v.detach().clone() for k, v in im.model.state_dict().items()})
    return out


OPTIONS = {"lr": 0.05, "epochs": 3, "seed": 0, "gradient_accumulation_steps": 2, "warmup_steps": 2,
           "temperature_start": 5.0, "temperature_end": 0.5, "subspaces": 0, "progress": False}


@pytest.mark.parametrize("trainer_cls", [DASTrainer, IITTrainer])
def test_a_resumed_run_ends_where_an_unbroken_run_ends(tmp_path, trainer_cls):
    options = dict(OPTIONS, task_loss_weight=0.5) if trainer_cls is IITTrainer else OPTIONS
    unbroken = _model()
    h = trainer_cls(unbroken, **options).train_alignment(_loader(), checkpoint_dir=str(tmp_path / "a"))
    assert h.checkpoints[0] == str(tmp_path / "a" / "epoch-0")

    resumed = _model()
    torch.manual_seed(123)  # whatever the random state is now, the checkpoint's comes back
    h2 = trainer_cls(resumed, **options).train_alignment(
        _loader(), resume_from_checkpoint=str(tmp_path / "a" / "epoch-0"), checkpoint_dir=str(tmp_path / "b")
    )
    assert h2.global_step == h.global_step == 9
    assert h2.losses == pytest.approx(h.losses, rel=1e-5, abs=1e-7)
    assert h2.learning_rates == pytest.approx(h.learning_rates)
    assert h2.temperatures == pytest.approx(h.temperatures)
    assert len(h2.train_metrics) == 3
    a, b = _state(unbroken), _state(resumed)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=1e-5, msg=k)
    before = _state(_model())
    moved = [k for k in a if not torch.allclose(a[k], before[k])]
    assert moved  # training did change something, which the resumed run matched
    if trainer_cls is IITTrainer:
        assert any(k.startswith("model.") for k in moved)  # the model's own weights came back too


def test_resume_errors_say_what_to_fix(tmp_path):
    with pytest.raises(TrainerError, match="is not a training checkpoint: it has no trainer_state.json"):
        DASTrainer(_model(), progress=False).train_alignment(_loader(), resume_from_checkpoint=str(tmp_path))
    DASTrainer(_model(), **dict(OPTIONS, epochs=2)).train_alignment(_loader(), checkpoint_dir=str(tmp_path))
    with pytest.raises(TrainerError, match="this run makes 6 steps per epoch"):
        DASTrainer(_model(), **dict(OPTIONS, gradient_accumulation_steps=1)).train_alignment(
            _loader(), resume_from_checkpoint=str(tmp_path / "epoch-0")
        )
