"""Callbacks and logging of a training run: when they are called, and with what."""

from __future__ import annotations

import logging

import pytest
import torch

import vene as pv
import vene_train.plugin
from vene.plugins import Registry
from vene_train.interventions import BoundlessRotatedSpaceIntervention, RotatedSpaceIntervention
from vene_train.trainers import DASTrainer, LoggingCallback, TrainerCallback, TrainerError


def _im(cls=RotatedSpaceIntervention) -> pv.IntervenableModel:
    pm = pv.get_plugin_manager(load_entrypoints=False)
    pm.register(vene_train.plugin, name="train")
    torch.manual_seed(0)
    _, _, mlp = pv.create_mlp_classifier(pv.MLPConfig(h_dim=8, n_layer=2, input_dim=4, num_classes=3))
    config = {"layer": 0, "component": "block_output", "intervention_type": cls}
    return pv.IntervenableModel(config, mlp.eval(), registry=Registry(pm))


def _batches(n: int = 16, size: int = 4) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    x, s, y = torch.randn(n, 4, generator=g), torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)
    return [
        {"input_ids": x[i : i + size], "source_input_ids": s[i : i + size, None], "labels": y[i : i + size]}
        for i in range(0, n, size)
    ]


class Recorder:
    def __init__(self) -> None:
        self.logs: list[tuple[int, dict]] = []
        self.epochs: list[tuple[int, dict]] = []

    def on_log(self, logs, step):
        self.logs.append((step, dict(logs)))

    def on_epoch_end(self, epoch, logs):
        self.epochs.append((epoch, dict(logs)))


class EpochsOnly:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_epoch_end(self, epoch, logs):
        self.seen.append(epoch)


def test_callbacks_get_every_log_and_every_epoch():
    rec, epochs_only = Recorder(), EpochsOnly()
    assert isinstance(rec, TrainerCallback) and not isinstance(epochs_only, TrainerCallback)
    trainer = DASTrainer(_im(), lr=0.1, epochs=2, warmup_steps=2, lr_scheduler="constant", progress=False)
    h = trainer.train_alignment(_batches(), log_every=3, eval_dataloader=_batches(), callbacks=[rec, epochs_only])
    # 8 optimizer steps, a log at steps 3 and 6; the learning rate of warm-up 2 then constant 0.1
    assert [s for s, _ in rec.logs] == [3, 6]
    assert [logs["learning_rate"] for _, logs in rec.logs] == pytest.approx([0.1, 0.1])
    assert [logs["loss"] for _, logs in rec.logs] == [h.losses[2], h.losses[5]]
    assert [logs["epoch"] for _, logs in rec.logs] == [0, 1]  # 4 steps per epoch
    assert all(0.0 <= logs["accuracy"] <= 1.0 for _, logs in rec.logs)
    assert [e for e, _ in rec.epochs] == [0, 1] == epochs_only.seen
    last = rec.epochs[-1][1]
    assert last["eval_accuracy"] == pytest.approx(trainer.evaluate(_batches())["accuracy"])
    assert last["train_accuracy"] == h.train_metrics[-1]["accuracy"]


def test_an_annealed_temperature_is_logged():
    rec = Recorder()
    DASTrainer(_im(BoundlessRotatedSpaceIntervention), epochs=1, temperature_start=4.0, temperature_end=1.0,
               progress=False).train_alignment(_batches(), callbacks=rec)  # one callback, not in a list
    assert [logs["temperature"] for _, logs in rec.logs] == pytest.approx([4.0, 3.0, 2.0, 1.0])


def test_logging_goes_through_the_vene_train_logger(caplog):
    with caplog.at_level(logging.INFO, logger="vene_train"):
        DASTrainer(_im(), epochs=2, progress=False).train_alignment(
            _batches(), log_every=2, eval_dataloader=_batches(), callbacks=[LoggingCallback()]
        )
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("vene_train")]
    assert sum(m.startswith("step ") for m in messages) == 4  # steps 2, 4, 6, 8
    assert any(m.startswith("step 8: loss ") for m in messages)
    assert any(m.startswith("epoch 1: eval accuracy") for m in messages)  # the loop's own line
    assert any(m.startswith("epoch 1: train_accuracy") and "eval_accuracy" in m for m in messages)


def test_bad_callbacks_say_what_a_callback_is():
    with pytest.raises(TrainerError, match="has none of the methods on_log, on_epoch_end"):
        DASTrainer(_im(), callbacks=[object()])
    with pytest.raises(TrainerError, match="callbacks must be a list"):
        DASTrainer(_im(), callbacks=5)
