"""TrainingCurves draws the loss and IIA logged while training interventions with vene."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch

from vene_viz import (
    DataShapeError,
    DataTypeError,
    MissingMetricError,
    TrainingCurves,
    VisualizationError,
)


def line(ax):
    (only,) = ax.lines
    return np.asarray(only.get_xdata(), dtype=float), np.asarray(only.get_ydata(), dtype=float)


def test_loss_and_iia_per_step_are_drawn_as_logged(das_training, tmp_path):
    records = das_training["boundless_records"]
    assert records[-1]["loss"] < records[0]["loss"]
    fig = TrainingCurves(title="Boundless DAS").plot(records)
    loss_ax, iia_ax = fig.axes
    x, y = line(loss_ax)
    np.testing.assert_array_equal(x, [r["step"] for r in records])
    np.testing.assert_array_equal(y, [r["loss"] for r in records])
    # IIA was logged every fifth step: only those steps are points of its curve
    x, y = line(iia_ax)
    np.testing.assert_array_equal(x, [r["step"] for r in records if "iia" in r])
    np.testing.assert_array_equal(y, [r["iia"] for r in records if "iia" in r])
    assert len(x) == 8 and all(0.0 <= v <= 1.0 for v in y)
    assert loss_ax.get_ylabel() == "loss" and iia_ax.get_ylabel() == "iia"
    assert iia_ax.get_xlabel() == "step"
    assert fig.get_suptitle() == "Boundless DAS"
    path = TrainingCurves().save(tmp_path / "curves.png", records)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_two_runs_compared_through_metric_names(das_training):
    a, b = das_training["boundless_records"], das_training["sigmoid_records"]
    merged = [{"step": r["step"], "boundless": r["loss"], "sigmoid": s["loss"]} for r, s in zip(a, b)]
    fig = TrainingCurves(metrics=["sigmoid", "boundless"], logy="sigmoid").plot(merged)
    assert [ax.get_ylabel() for ax in fig.axes] == ["sigmoid", "boundless"]
    np.testing.assert_array_equal(line(fig.axes[0])[1], [r["loss"] for r in b])
    assert fig.axes[0].get_yscale() == "log" and fig.axes[1].get_yscale() == "linear"


def test_epochs_dicts_of_lists_and_tensor_values():
    records = [{"epoch": e, "loss": torch.tensor(1.0 / (e + 1)), "split": "train"} for e in range(3)]
    fig = TrainingCurves().plot(records)
    assert len(fig.axes) == 1  # "split" holds text, not a metric
    x, y = line(fig.axes[0])
    np.testing.assert_array_equal(x, [0, 1, 2])
    np.testing.assert_allclose(y, [1.0, 0.5, 1.0 / 3], rtol=1e-6)
    assert fig.axes[0].get_xlabel() == "epoch"

    fig = TrainingCurves().plot({"loss": [3.0, 2.0, 1.5], "iia": np.array([0.2, 0.5, 0.9])})
    np.testing.assert_array_equal(line(fig.axes[0])[0], [0, 1, 2])  # no step: the record index
    assert fig.axes[1].get_xlabel() == "record"
    np.testing.assert_array_equal(line(fig.axes[1])[1], [0.2, 0.5, 0.9])


def test_bad_records_say_what_is_wrong():
    with pytest.raises(DataShapeError, match="no records"):
        TrainingCurves().plot([])
    with pytest.raises(DataTypeError, match="record 1 is a float"):
        TrainingCurves().plot([{"loss": 1.0}, 0.5])
    with pytest.raises(DataTypeError, match="list of dicts"):
        TrainingCurves().plot(torch.tensor([1.0, 2.0]))
    with pytest.raises(MissingMetricError, match="no record has the metric 'iia'.*'loss'"):
        TrainingCurves(metrics=["loss", "iia"]).plot([{"step": 0, "loss": 1.0}])
    with pytest.raises(KeyError):  # also a KeyError, for generic handlers
        TrainingCurves(metrics="acc").plot([{"step": 0, "loss": 1.0}])
    with pytest.raises(MissingMetricError, match="record 1 has no 'step'"):
        TrainingCurves(x="step").plot([{"step": 0, "loss": 1.0}, {"loss": 0.5}])
    with pytest.raises(DataTypeError, match="record 0 'split' must be a number"):
        TrainingCurves(metrics="split").plot([{"step": 0, "split": "train"}])
    with pytest.raises(MissingMetricError, match="no numeric metric"):
        TrainingCurves().plot([{"step": 0, "split": "train"}])
    with pytest.raises(DataShapeError, match="equal lengths"):
        TrainingCurves().plot({"loss": [1.0, 0.5], "iia": [0.3]})


@attrs.define
class History:
    """The public fields of vene-train's TrainingHistory (what its trainers' train() returns)."""

    losses: list = attrs.field(factory=list)
    learning_rates: list = attrs.field(factory=list)
    temperatures: list = attrs.field(factory=list)
    train_metrics: list = attrs.field(factory=list)
    eval_metrics: list = attrs.field(factory=list)
    checkpoints: list = attrs.field(factory=list)
    global_step: int = 0


def _history(records) -> History:
    losses = [r["loss"] for r in records]
    # two epochs of 20 steps; eval accuracy (the IIA) once per epoch
    evals = [{"accuracy": records[19].get("iia", 0.5)}, {"accuracy": records[39].get("iia", 0.5)}]
    return History(losses=losses, learning_rates=[0.1] * len(losses), eval_metrics=evals,
                   global_step=len(losses))


def test_a_training_history_is_read_by_its_public_fields(das_training):
    records = das_training["boundless_records"]
    history = _history(records)
    fig = TrainingCurves(metrics=["loss", "eval_accuracy"]).plot(history)
    loss_ax, iia_ax = fig.axes
    x, y = line(loss_ax)
    np.testing.assert_array_equal(x, np.arange(1, 41))  # optimizer steps, counted from 1
    np.testing.assert_array_equal(y, [r["loss"] for r in records])
    x, y = line(iia_ax)
    np.testing.assert_array_equal(x, [20, 40])  # each evaluation at the step that ended its epoch
    np.testing.assert_array_equal(y, [e["accuracy"] for e in history.eval_metrics])
    # the class vene-train's trainers return, built through its public name
    trainers = pytest.importorskip("vene_train.trainers")
    real = trainers.TrainingHistory(losses=history.losses, eval_metrics=history.eval_metrics)
    x, y = line(TrainingCurves(metrics="loss").plot(real).axes[0])
    np.testing.assert_array_equal(y, [r["loss"] for r in records])
    assert len(x) == 40
    # a transformers TrainerState: its log_history
    state = type("TrainerState", (), {"log_history": [{"step": 5, "loss": 0.9, "epoch": 0.5}, {"step": 10, "loss": 0.7, "epoch": 1.0}]})()
    np.testing.assert_array_equal(line(TrainingCurves(metrics="loss").plot(state).axes[0])[0], [5, 10])


def test_curves_go_into_given_axes_and_steps_tick_at_integers():
    import matplotlib.figure

    paper = matplotlib.figure.Figure(figsize=(8, 3))
    left, right = paper.subplots(1, 2)
    records = [{"step": s, "loss": 1.0 / (s + 1)} for s in range(4)]
    assert TrainingCurves().plot(records, ax=left) is paper
    np.testing.assert_array_equal(line(left)[1], [1.0, 0.5, 1 / 3, 0.25])
    paper.canvas.draw()
    labels = [t.get_text().replace("−", "-") for t in left.get_xticklabels() if t.get_text()]
    assert labels and all(float(t).is_integer() for t in labels)  # no 0.5 steps
    with pytest.raises(VisualizationError, match="sequence of 2 matplotlib Axes"):
        TrainingCurves().plot([{"step": 0, "loss": 1.0, "iia": 0.5}], ax=right)
    fig = TrainingCurves().interactive(records)
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tickformat == "d"
    np.testing.assert_array_equal(fig.data[0].y, [1.0, 0.5, 1 / 3, 0.25])
