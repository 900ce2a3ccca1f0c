"""The trainers' options record: defaults, pyvene's names, per-call overrides, and the errors."""

from __future__ import annotations

from typing import ClassVar

import attrs
import pytest
import torch

import vene as pv
import vene_train.plugin
from vene.plugins import Registry
from vene_train.interventions import RotatedSpaceIntervention
from vene_train.trainers import DASTrainer, IITOptions, IITTrainer, TrainerError, TrainerOptions


def _im() -> pv.IntervenableModel:
    pm = pv.get_plugin_manager(load_entrypoints=False)
    pm.register(vene_train.plugin, name="train")
    torch.manual_seed(0)
    _, _, mlp = pv.create_mlp_classifier(pv.MLPConfig(h_dim=8, n_layer=2, input_dim=4, num_classes=3))
    config = {"layer": 0, "component": "block_output", "intervention_type": RotatedSpaceIntervention}
    return pv.IntervenableModel(config, mlp, registry=Registry(pm))


def test_every_option_is_documented_and_frozen():
    for cls in (TrainerOptions, IITOptions):
        for a in attrs.fields(cls):
            assert a.metadata.get("help"), a.name
    o = TrainerOptions()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        o.lr = 1.0  # type: ignore[misc]  # the point: assignment is refused
    assert set(TrainerOptions.names()) < set(IITOptions.names())
    assert {"iit_loss_weight", "task_loss_weight", "train_interventions"} == set(IITOptions.names()) - set(
        TrainerOptions.names()
    )


def test_pyvene_names_and_per_call_overrides():
    o = TrainerOptions.from_kwargs(learning_rate=0.5, num_epochs=3, warm_up_steps=2)
    assert (o.lr, o.epochs, o.warmup_steps, o.warmup_ratio) == (0.5, 3, 2, None)
    assert TrainerOptions.from_kwargs(warm_up_steps=0.1).warmup_ratio == 0.1  # a float below 1: a ratio
    call = o.updated(lr=0.1)
    assert (call.lr, call.epochs, o.lr) == (0.1, 3, 0.5)  # the trainer's own options stay
    assert o.warmup(100) == 2 and TrainerOptions().warmup(100) == 10 and TrainerOptions(warmup_steps=9).warmup(4) == 4
    trainer = IITTrainer(_im(), task_loss_weight=0.5, progress=False)
    assert isinstance(trainer.options, IITOptions) and trainer.options.task_loss_weight == 0.5
    with pytest.raises(TrainerError, match="unknown DASTrainer option 'task_loss_weight'"):
        DASTrainer(_im(), task_loss_weight=0.5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lr": 0}, "lr must be positive, got 0"),
        ({"lr": "fast"}, "lr must be positive"),
        ({"epochs": -1}, "epochs must be an int >= 0"),
        ({"epochs": 2.0}, "epochs must be an int >= 0"),
        ({"gradient_accumulation_steps": True}, "gradient_accumulation_steps must be a positive int"),
        ({"log_every": 0}, "log_every must be a positive int"),
        ({"warmup_steps": -2}, "warmup_steps must be an int >= 0"),
        ({"warmup_ratio": 1.5}, r"warmup_ratio must be within \[0, 1\]"),
        ({"warmup_steps": 1, "warmup_ratio": 0.1}, "not both"),
        ({"lr_scheduler": "step"}, "lr_scheduler must be 'linear', 'cosine' or 'constant'"),
        ({"temperature_schedule": "cubic"}, "temperature_schedule must be 'linear' or 'geometric'"),
        ({"temperature_schedule": "geometric", "temperature_end": 0.0}, "positive temperature_start"),
        ({"optimizer": "lion"}, "optimizer must be one of"),
        ({"max_grad_norm": -1.0}, "max_grad_norm must be positive"),
        ({"weight_decay": -0.1}, "weight_decay must be a number >= 0"),
        ({"seed": 1.5}, "seed must be an int or None"),
        ({"progress": "yes"}, "progress must be True or False"),
        ({"distributed": 1}, "distributed must be True, False or None"),
        ({"logits_fn": "logits"}, "logits_fn must be a function or None"),
        ({"lrr": 1.0}, "Did you mean: lr"),
    ],
)
def test_bad_options_raise_a_trainer_error_that_names_them(options, message):
    with pytest.raises(TrainerError, match=message) as e:
        TrainerOptions.from_kwargs(**options)
    assert isinstance(e.value, pv.ConfigError)
    with pytest.raises(TrainerError, match=message):  # also when they come with one call
        DASTrainer(_im(), progress=False).train_alignment([], **options)


def test_iit_options_are_checked_too():
    with pytest.raises(TrainerError, match="train_interventions must be True or False"):
        IITOptions(train_interventions="no")  # type: ignore[arg-type]  # the point: a wrong type


def test_a_subclass_adds_options_through_extra_options():
    class Scaled(DASTrainer):
        type_name: ClassVar[str] = "scaled"
        extra_options: ClassVar[dict[str, object]] = {"scale": 2.0}

    t = Scaled(_im(), scale=3.0, progress=False)
    assert isinstance(t.options, TrainerOptions) and t.options.scale == 3.0  # type: ignore[attr-defined]
    assert Scaled(_im()).options.scale == 2.0  # type: ignore[attr-defined]  # made by extra_options
    with pytest.raises(TrainerError, match="Did you mean: scale"):
        Scaled(_im(), scal=1.0)
