"""The DAS and IIT trainers against hand-written training loops on a small MLP."""

from __future__ import annotations

import copy
import math
import os

import pytest
import torch
from safetensors import safe_open
from torch import nn
from torch.utils.data import DataLoader

import vene as pv
import vene_train.plugin
from vene.plugins import Registry
from vene_train.interventions import BoundlessRotatedSpaceIntervention, RotatedSpaceIntervention
from vene_train.trainers import (
    TRAINERS,
    DASTrainer,
    IITTrainer,
    TrainerError,
    lr_factor,
    temperature_schedule,
)


def _registry() -> Registry:
    """Core plus vene-train only, so these tests do not depend on the other plugins."""
    pm = pv.get_plugin_manager(load_entrypoints=False)
    pm.register(vene_train.plugin, name="train")
    return Registry(pm)


def _mlp(seed: int = 0) -> pv.MLPForClassification:
    torch.manual_seed(seed)
    _, _, mlp = pv.create_mlp_classifier(pv.MLPConfig(h_dim=8, n_layer=2, input_dim=4, num_classes=3))
    return mlp.eval()


def _data(n: int = 16, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "x": torch.randn(n, 4, generator=g),
        "s": torch.randn(n, 4, generator=g),
        "y": torch.randint(0, 3, (n,), generator=g),
        "by": torch.randint(0, 3, (n,), generator=g),
    }


def _batches(d: dict[str, torch.Tensor], size: int) -> list[dict[str, torch.Tensor]]:
    return [
        {
            "input_ids": d["x"][i : i + size],
            "source_input_ids": d["s"][i : i + size, None],
            "labels": d["y"][i : i + size],
            "base_labels": d["by"][i : i + size],
        }
        for i in range(0, len(d["x"]), size)
    ]


def hand_forward(mlp: pv.MLPForClassification, x: torch.Tensor, edit=None) -> torch.Tensor:
    """The MLP written out; ``edit(h)`` replaces the first hidden layer's output."""
    h = x
    for i, block in enumerate(mlp.mlp.h):
        h = torch.relu(block.ff1(h))
        if i == 0 and edit is not None:
            h = edit(h)
    return mlp.score(h)


def das_edit(rotation: torch.Tensor, source_hidden: torch.Tensor, dims: list[int]):
    """Rotate base and source, take the source's rotated ``dims``, rotate back."""
    mask = torch.zeros(rotation.shape[1])
    mask[dims] = 1.0

    def edit(h: torch.Tensor) -> torch.Tensor:
        rb, rs = h @ rotation, source_hidden @ rotation
        return (rb * (1 - mask) + rs * mask) @ rotation.T

    return edit


def _das_model(mlp, registry, cls=RotatedSpaceIntervention, **rep):
    config = {"layer": 0, "component": "block_output", "intervention_type": cls, **rep}
    return pv.IntervenableModel(config, mlp, registry=registry)


def _first(im: pv.IntervenableModel) -> nn.Module:
    return next(iter(im.interventions.values()))


# ---------------------------------------------------------------------------------------------
# the DAS loop against a hand-written one
# ---------------------------------------------------------------------------------------------
def test_das_training_matches_a_hand_written_loop_with_accumulation_and_warmup():
    reg = _registry()
    mlp = _mlp()
    d = _data(16)
    im = _das_model(mlp, reg, subspace_partition=[[0, 2], [2, 8]])
    reference = copy.deepcopy(_first(im))
    initial = reference.rotate_layer.weight.detach().clone()
    lr, epochs, warmup = 0.5, 2, 1

    def sgd(params, lr):
        # SGD, not Adam: Adam's first steps divide by |gradient| and so blow up the rounding
        # differences between a summed and a whole-batch gradient
        return torch.optim.SGD(params, lr=lr, momentum=0.9)

    history = DASTrainer(im, progress=False).train_alignment(
        _batches(d, 4),  # micro-batches of 4, two per step: steps see 8 examples
        optimizer=sgd,
        lr=lr,
        epochs=epochs,
        gradient_accumulation_steps=2,
        warmup_steps=warmup,
        subspaces=0,
    )
    total = 2 * epochs
    opt = sgd(reference.parameters(), lr)
    losses = []
    for step in range(total):
        factor = (step + 1) / warmup if step < warmup else 1 - (step - warmup) / (total - warmup)
        for group in opt.param_groups:
            group["lr"] = lr * factor
        rows = slice(8 * (step % 2), 8 * (step % 2) + 8)
        source_hidden = torch.relu(mlp.mlp.h[0].ff1(d["s"][rows]))
        edit = das_edit(reference.rotate_layer.weight, source_hidden, [0, 1])
        loss = nn.functional.cross_entropy(hand_forward(mlp, d["x"][rows], edit), d["y"][rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    trained = _first(im).rotate_layer.weight.detach()
    expected = reference.rotate_layer.weight.detach()
    assert (trained - initial).abs().max() > 1e-3
    torch.testing.assert_close(trained, expected, atol=1e-5, rtol=1e-4)
    assert history.losses == pytest.approx(losses, rel=1e-4, abs=1e-5)
    assert history.global_step == total
    assert history.learning_rates == pytest.approx([lr * 1.0, lr * 1.0, lr * 2 / 3, lr * 1 / 3])
    # the wrapped model stays frozen and the trainer leaves everything in eval mode
    assert all(not p.requires_grad for p in mlp.parameters())
    assert not im.training


def test_das_changes_the_rotation_and_eval_matches_a_hand_computed_iia():
    reg = _registry()
    mlp = _mlp()
    d = _data(32)
    im = _das_model(mlp, reg, subspace_partition=[[0, 2], [2, 8]])
    before = _first(im).rotate_layer.weight.detach().clone()
    trainer = DASTrainer(im, lr=0.05, epochs=3, subspaces=0, progress=False)
    trainer.train_alignment(_batches(d, 8))
    rotation = _first(im).rotate_layer.weight.detach()
    assert (rotation - before).abs().max() > 1e-3
    # orthonormal after training (the parametrization holds through optimizer steps)
    torch.testing.assert_close(rotation.T @ rotation, torch.eye(8), atol=1e-5, rtol=0)
    with torch.no_grad():
        edit = das_edit(rotation, torch.relu(mlp.mlp.h[0].ff1(d["s"])), [0, 1])
        expected = (hand_forward(mlp, d["x"], edit).argmax(-1) == d["y"]).float().mean().item()
    metrics = trainer.evaluate(_batches(d, 8))
    assert metrics["accuracy"] == pytest.approx(expected)
    assert trainer.eval_alignment(_batches(d, 5)) == pytest.approx(expected)  # uneven batches


def test_warmup_honours_its_argument():
    reg = _registry()
    d = _data(16)
    for options, warmup in (
        ({"warmup_steps": 3}, 3),
        ({"warmup_ratio": 0.5}, 4),
        ({"warm_up_steps": 2}, 2),  # pyvene's name, as steps
        ({"warm_up_steps": 0.25}, 2),  # pyvene's default form, a ratio
        ({}, 0),  # default ratio 0.1 of 8 steps
    ):
        im = _das_model(_mlp(), reg)
        h = DASTrainer(im, lr=0.1, epochs=2, progress=False).train_alignment(_batches(d, 4), **options)
        total = 8
        expected = [
            0.1 * ((s + 1) / warmup if s < warmup else 1 - (s - warmup) / (total - warmup)) for s in range(total)
        ]
        assert h.learning_rates == pytest.approx(expected), options
    im = _das_model(_mlp(), reg)
    h = DASTrainer(im, lr=0.1, epochs=2, warmup_steps=2, lr_scheduler="constant", progress=False).train_alignment(
        _batches(d, 4)
    )
    assert h.learning_rates == pytest.approx([0.05] + [0.1] * 7)
    assert lr_factor(5, 2, 10, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 3 / 8)))


def test_seed_makes_shuffled_training_reproducible():
    reg = _registry()
    d = _data(32)
    dataset = _batches(d, 1)
    for b in dataset:
        b["source_input_ids"] = b["source_input_ids"][0]
        b["input_ids"], b["labels"] = b["input_ids"][0], b["labels"][0]
    results = []
    for seed in (0, 0, 1):
        im = _das_model(_mlp(), reg)
        loader = DataLoader(dataset, batch_size=4, shuffle=True)
        h = DASTrainer(im, lr=0.05, epochs=2, seed=seed, progress=False).train_alignment(loader)
        results.append((h.losses, _first(im).rotate_layer.weight.detach().clone()))
    assert results[0][0] == results[1][0]
    assert torch.equal(results[0][1], results[1][1])
    assert results[0][0] != results[2][0]


def test_several_sources_per_example_reach_their_own_groups():
    reg = _registry()
    mlp = _mlp()
    d = _data(8)
    s2 = torch.randn(8, 4, generator=torch.Generator().manual_seed(5))
    config = [
        {"layer": 0, "component": "block_output", "subspace_partition": [[0, 4], [4, 8]]},
        {"layer": 1, "component": "block_output", "subspace_partition": [[0, 4], [4, 8]]},
    ]
    im = pv.IntervenableModel(config, mlp, registry=reg)
    batch = {
        "input_ids": d["x"],
        "source_input_ids": torch.stack([d["s"], s2], 1),
        "labels": d["y"],
        "subspaces": [[[0]] * 8, [[1]] * 8],
    }
    trainer = DASTrainer(im, progress=False)
    with torch.no_grad():
        got = trainer.intervened_logits(batch)
        h0 = torch.relu(mlp.mlp.h[0].ff1(d["x"]))
        h0 = torch.cat([torch.relu(mlp.mlp.h[0].ff1(d["s"]))[:, :4], h0[:, 4:]], 1)
        h1 = torch.relu(mlp.mlp.h[1].ff1(h0))
        src1 = torch.relu(mlp.mlp.h[1].ff1(torch.relu(mlp.mlp.h[0].ff1(s2))))
        h1 = torch.cat([h1[:, :4], src1[:, 4:]], 1)
        expected = mlp.score(h1)
    torch.testing.assert_close(got, expected)
    # the same through explicit 'base' / 'sources' keys
    explicit = {
        "base": {"inputs_embeds": d["x"]},
        "sources": [{"inputs_embeds": d["s"]}, {"inputs_embeds": s2}],
        "labels": d["y"],
        "subspaces": batch["subspaces"],
    }
    with torch.no_grad():
        torch.testing.assert_close(trainer.intervened_logits(explicit), expected)
    acc = (expected.argmax(-1) == d["y"]).float().mean().item()
    assert trainer.eval_alignment([batch]) == pytest.approx(acc)


# ---------------------------------------------------------------------------------------------
# Boundless DAS: the temperature schedule and the boundary loss
# ---------------------------------------------------------------------------------------------
def test_schedules():
    assert temperature_schedule(50.0, 0.1, 5, "linear") == pytest.approx([50, 37.525, 25.05, 12.575, 0.1])
    geo = temperature_schedule(8.0, 1.0, 4, "geometric")
    assert geo == pytest.approx([8, 4, 2, 1])
    with pytest.raises(TrainerError, match="linear' or 'geometric"):
        temperature_schedule(1.0, 1.0, 3, "cubic")


@pytest.mark.parametrize("kind", ["linear", "geometric"])
def test_boundless_das_follows_the_temperature_schedule(kind):
    reg = _registry()
    d = _data(16)
    im = _das_model(_mlp(), reg, cls=BoundlessRotatedSpaceIntervention)
    iv = _first(im)
    seen = []
    original = iv.forward

    def spy(*args, **kwargs):
        seen.append(float(iv.temperature))
        return original(*args, **kwargs)

    iv.forward = spy
    h = DASTrainer(
        im, lr=0.01, epochs=2, temperature_start=10.0, temperature_end=0.5, temperature_schedule=kind,
        progress=False,
    ).train_alignment(_batches(d, 4))
    expected = temperature_schedule(10.0, 0.5, 8, kind)
    assert h.temperatures == pytest.approx(expected)
    assert seen == pytest.approx(expected, rel=1e-3)  # each step ran at its temperature
    assert float(iv.temperature) == pytest.approx(0.5)


def test_boundary_loss_weight_adds_the_boundaries():
    reg = _registry()
    d = _data(8)
    first_losses = []
    for weight in (0.0, 2.0):
        im = _das_model(_mlp(), reg, cls=BoundlessRotatedSpaceIntervention)
        boundary = float(_first(im).intervention_boundaries.detach().sum())
        h = DASTrainer(im, lr=0.01, epochs=1, boundary_loss_weight=weight, progress=False).train_alignment(
            _batches(d, 8)
        )
        first_losses.append(h.losses[0])
    assert first_losses[1] - first_losses[0] == pytest.approx(2.0 * boundary, abs=1e-5)


# ---------------------------------------------------------------------------------------------
# IIT
# ---------------------------------------------------------------------------------------------
def test_iit_matches_a_hand_written_loop_and_turns_gradients_back_off():
    reg = _registry()
    mlp = _mlp()
    reference = copy.deepcopy(mlp).train()
    for p in reference.parameters():
        p.requires_grad_(True)
    d = _data(16)
    config = {"layer": 0, "component": "block_output", "subspace_partition": [[0, 4], [4, 8]]}
    im = pv.IntervenableModel(config, mlp, registry=reg)
    h = IITTrainer(im, progress=False).train_alignment(
        _batches(d, 8), lr=0.1, epochs=2, optimizer="sgd", lr_scheduler="constant", warmup_steps=0,
        subspaces=0, task_loss_weight=0.5,
    )
    opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    losses = []
    for step in range(4):
        rows = slice(8 * (step % 2), 8 * (step % 2) + 8)
        src = torch.relu(reference.mlp.h[0].ff1(d["s"][rows]))

        def edit(hb, src=src):
            return torch.cat([src[:, :4], hb[:, 4:]], 1)

        cf = hand_forward(reference, d["x"][rows], edit)
        task = hand_forward(reference, d["x"][rows])
        loss = nn.functional.cross_entropy(cf, d["y"][rows]) + 0.5 * nn.functional.cross_entropy(
            task, d["by"][rows]
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert h.losses == pytest.approx(losses, rel=1e-4, abs=1e-6)
    for got, want in zip(mlp.parameters(), reference.parameters()):
        torch.testing.assert_close(got.detach(), want.detach(), atol=1e-6, rtol=1e-5)
    assert not torch.allclose(mlp.mlp.h[0].ff1.weight, _mlp().mlp.h[0].ff1.weight)
    assert all(not p.requires_grad for p in mlp.parameters())  # back off, as before training
    assert not mlp.training


def test_iit_reports_task_accuracy_and_needs_base_labels(tmp_path):
    reg = _registry()
    mlp = _mlp()
    d = _data(16)
    config = {"layer": 0, "component": "block_output", "subspace_partition": [[0, 4], [4, 8]]}
    im = pv.IntervenableModel(config, mlp, registry=reg)
    trainer = IITTrainer(im, subspaces=0, progress=False)
    metrics = trainer.evaluate(_batches(d, 8))
    with torch.no_grad():
        task = (hand_forward(mlp, d["x"]).argmax(-1) == d["by"]).float().mean().item()
    assert metrics["task_accuracy"] == pytest.approx(task)
    batches = _batches(d, 8)
    for b in batches:
        del b["base_labels"]
    with pytest.raises(TrainerError, match="base_labels"):
        trainer.train_alignment(batches, epochs=1)
    h = trainer.train_alignment(batches, epochs=1, task_loss_weight=0, checkpoint_dir=str(tmp_path))
    assert h.checkpoints == [str(tmp_path / "final")]
    assert os.path.exists(tmp_path / "final" / "model.safetensors")  # IIT changes the model


# ---------------------------------------------------------------------------------------------
# evaluation each epoch, checkpoints, progress
# ---------------------------------------------------------------------------------------------
def test_eval_each_epoch_and_safetensors_checkpoints(tmp_path, capsys):
    reg = _registry()
    mlp = _mlp()
    d = _data(16)
    im = _das_model(mlp, reg, subspace_partition=[[0, 2], [2, 8]])
    trainer = DASTrainer(im, lr=0.05, epochs=2, subspaces=0, progress=True)
    h = trainer.train_alignment(_batches(d, 8), eval_dataloader=_batches(d, 8), checkpoint_dir=str(tmp_path))
    captured = capsys.readouterr()
    assert "das training" in captured.err  # the tqdm bar
    assert "epoch 1: eval accuracy" in captured.out
    assert len(h.eval_metrics) == 2 and len(h.train_metrics) == 2
    assert h.final_eval == trainer.evaluate(_batches(d, 8))
    assert h.checkpoints == [str(tmp_path / "epoch-0"), str(tmp_path / "final")]
    path = tmp_path / "final" / "interventions.safetensors"
    with safe_open(str(path), framework="pt") as f:
        assert any(k.endswith("rotate_layer.parametrizations.weight.original") for k in f.keys())
    loaded = pv.IntervenableModel.load(str(tmp_path / "final"), _mlp(), registry=reg)
    base, src = {"inputs_embeds": d["x"]}, [{"inputs_embeds": d["s"]}]
    with torch.no_grad():
        _, want = im(base, src, subspaces=0)
        _, got = loaded(base, src, subspaces=0)
    torch.testing.assert_close(got["logits"], want["logits"])
    # the epoch-0 checkpoint holds the weights of that moment, not the final ones
    first = pv.IntervenableModel.load(str(tmp_path / "epoch-0"), _mlp(), registry=reg)
    assert not torch.allclose(_first(first).rotate_layer.weight, _first(im).rotate_layer.weight)


def test_intervenable_model_train_and_eval_alignment_use_the_das_trainer():
    reg = _registry()
    assert reg.trainer("das") is DASTrainer and reg.trainer("iit") is IITTrainer
    assert set(TRAINERS) == {DASTrainer, IITTrainer}
    d = _data(16)
    im = _das_model(_mlp(), reg, subspace_partition=[[0, 2], [2, 8]])

    def compute_metrics(eval_preds, eval_labels):  # pyvene tutorials' form
        correct = total = 0
        for pred, label in zip(eval_preds, eval_labels):
            correct += (pred.argmax(-1) == label).sum().item()
            total += len(label)
        return {"accuracy": correct / total}

    def collate(batch):
        return {**batch, "subspaces": [[[0]] * len(batch["labels"])]}

    before = _first(im).rotate_layer.weight.detach().clone()
    history = im.train_alignment(
        _batches(d, 8), nn.functional.cross_entropy, compute_metrics, collate, lr=0.05, epochs=2, progress=False
    )
    assert history.global_step == 4
    assert not torch.allclose(before, _first(im).rotate_layer.weight)
    iia = im.eval_alignment(_batches(d, 8), compute_metrics, collate, progress=False)
    with torch.no_grad():
        edit = das_edit(_first(im).rotate_layer.weight, torch.relu(im.model.mlp.h[0].ff1(d["s"])), [0, 1])
        expected = (hand_forward(im.model, d["x"], edit).argmax(-1) == d["y"]).float().mean().item()
    assert iia == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def test_trainer_errors_say_what_to_fix():
    reg = _registry()
    d = _data(8)
    with pytest.raises(TrainerError, match="wrap the model first") as e:
        DASTrainer(_mlp())
    assert isinstance(e.value, pv.ConfigError)
    im = _das_model(_mlp(), reg)
    with pytest.raises(TrainerError, match="Did you mean: lr"):
        DASTrainer(im, lrr=0.1)
    with pytest.raises(TrainerError, match="not both"):
        DASTrainer(im).train_alignment(_batches(d, 4), warmup_steps=1, warmup_ratio=0.1)
    with pytest.raises(TrainerError, match="gradient_accumulation_steps must be a positive int"):
        DASTrainer(im).train_alignment(_batches(d, 4), gradient_accumulation_steps=0)
    with pytest.raises(TrainerError, match="lr_scheduler"):
        DASTrainer(im).train_alignment(_batches(d, 4), lr_scheduler="step")
    with pytest.raises(TrainerError, match="optimizer must be one of"):
        DASTrainer(im, progress=False).train_alignment(_batches(d, 4), optimizer="lion")
    with pytest.raises(TrainerError, match="no 'labels'"):
        DASTrainer(im, progress=False).train_alignment([{"input_ids": d["x"], "source_input_ids": d["s"][:, None]}])
    with pytest.raises(TrainerError, match="no base inputs"):
        DASTrainer(im, progress=False).train_alignment([{"labels": d["y"]}])
    with pytest.raises(TrainerError, match="no torch.distributed process group"):
        DASTrainer(im, progress=False).train_alignment(_batches(d, 4), distributed=True)
    vanilla = pv.IntervenableModel({"layer": 0, "component": "block_output"}, _mlp(), registry=reg)
    with pytest.raises(TrainerError, match="nothing to train.*'iit' trainer"):
        DASTrainer(vanilla, progress=False).train_alignment(_batches(d, 4))
    two = pv.IntervenableModel(
        [{"layer": 0, "component": "block_output"}, {"layer": 1, "component": "block_output"}],
        _mlp(),
        registry=reg,
    )
    with pytest.raises(TrainerError, match="2 intervention groups"):
        IITTrainer(two, progress=False).train_alignment(_batches(d, 4))
