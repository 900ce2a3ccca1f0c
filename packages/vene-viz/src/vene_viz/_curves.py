"""Training curves: loss, interchange-intervention accuracy (IIA) and other metrics over time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ._base import COMMON_OPTIONS, Visualizer, target_axes
from ._data import as_number
from ._errors import DataShapeError, DataTypeError, DataValueError, MissingMetricError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["TrainingCurves", "curves", "history_records"]

_X_KEYS = ("step", "epoch")


def history_records(history: Any) -> list[dict[str, Any]] | None:
    """The records of a training history read by its public attributes, or None if it is not one.

    vene-train's ``TrainingHistory`` (what its trainers' ``train()`` returns) has per-step
    ``losses``, ``learning_rates`` and ``temperatures`` and per-epoch ``train_metrics`` and
    ``eval_metrics``; a transformers ``TrainerState`` has ``log_history`` (a list of dicts with
    ``step``). Per-epoch metrics are placed at the step that ended their epoch, named
    ``train_<metric>`` and ``eval_<metric>`` (``eval_accuracy`` is the IIA).
    """
    log = getattr(history, "log_history", None)
    if isinstance(log, Sequence) and not isinstance(log, (str, bytes)):
        return [dict(r) for r in log]
    losses = getattr(history, "losses", None)
    if not isinstance(losses, Sequence) or isinstance(losses, (str, bytes)) or isinstance(history, Mapping):
        return None
    records: list[dict[str, Any]] = [{"step": i + 1, "loss": v} for i, v in enumerate(losses)]
    for name, key in (("learning_rates", "learning_rate"), ("temperatures", "temperature")):
        values = getattr(history, name, None) or []
        for record, value in zip(records, values):
            record[key] = value
    for prefix in ("train", "eval"):
        per_epoch = list(getattr(history, f"{prefix}_metrics", None) or [])
        if not per_epoch:
            continue
        every = max(1, len(records) // len(per_epoch)) if records else 1
        for epoch, metrics in enumerate(per_epoch):
            step = min((epoch + 1) * every, len(records)) if records else epoch + 1
            if not records or step > len(records):
                records.append({"step": step})
            records[step - 1].setdefault("epoch", epoch)
            for k, v in dict(metrics).items():
                records[step - 1][f"{prefix}_{k}"] = v
    return records


def _records(data: Any) -> list[Mapping[str, Any]]:
    """A list of dicts, a dict of equal-length lists, or a training history, as a list of dicts."""
    from_history = history_records(data)
    if from_history is not None:
        return list(from_history)
    if isinstance(data, Mapping):
        lengths = {}
        for key, values in data.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                if hasattr(values, "tolist"):
                    values = values.tolist()
                else:
                    raise DataTypeError(
                        f"a dict of curves needs a list of values per metric; {key!r} holds "
                        f"{type(values).__name__}. Pass a list of dicts ({{'step': 0, 'loss': ...}}) "
                        "or a dict of lists."
                    )
            lengths[key] = list(values)
        if len({len(v) for v in lengths.values()}) > 1:
            sizes = ", ".join(f"{k!r}: {len(v)}" for k, v in lengths.items())
            raise DataShapeError(
                f"the lists of a dict of curves must have equal lengths, got {sizes}; pass a list "
                "of dicts instead when metrics are logged at different steps."
            )
        n = len(next(iter(lengths.values()), []))
        return [{k: v[i] for k, v in lengths.items()} for i in range(n)]
    if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
        raise DataTypeError(
            f"training curves need a list of dicts (one per step or epoch, e.g. "
            f"{{'step': 10, 'loss': 0.4, 'iia': 0.9}}), got {type(data).__name__}."
        )
    for i, record in enumerate(data):
        if not isinstance(record, Mapping):
            raise DataTypeError(
                f"record {i} is a {type(record).__name__}, not a dict; each record maps names "
                "such as 'step', 'loss', 'iia' to numbers."
            )
    return list(data)


def _numeric(value: Any) -> bool:
    try:
        as_number(value, "value")
    except (DataTypeError, DataValueError):
        return False
    return True


def curves(
    data: Any, *, x: str | None = None, metrics: Sequence[str] | str | None = None
) -> tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The x-axis name and, per metric, the ``(x, y)`` points that :class:`TrainingCurves` draws.

    A record that lacks a metric (or holds None for it) contributes no point to that metric, so
    evaluation metrics logged once per epoch can share records with a per-step loss.
    """
    records = _records(data)
    if not records:
        raise DataShapeError("there are no records; log at least one {'step': ..., 'loss': ...}.")
    if x is None:
        x = next((k for k in _X_KEYS if all(k in r for r in records)), None)
    if x is not None:
        for i, record in enumerate(records):
            if x not in record:
                raise MissingMetricError(
                    f"record {i} has no {x!r}; every record needs the x-axis key, or pass "
                    "x=None to plot against the record index."
                )
        xs = np.array([as_number(r[x], f"record {i} {x!r}") for i, r in enumerate(records)])
    else:
        xs = np.arange(len(records), dtype=np.float64)
    seen: dict[str, None] = {}
    for record in records:
        seen.update(dict.fromkeys(k for k in record if k != x))
    if metrics is None:
        names = [
            k for k in seen
            if any(r.get(k) is not None for r in records)
            and all(_numeric(r[k]) for r in records if r.get(k) is not None)
        ]
        if not names:
            raise MissingMetricError(
                f"the records hold no numeric metric besides {x!r}; keys seen: "
                f"{', '.join(map(repr, seen)) or 'none'}."
            )
    else:
        names = [metrics] if isinstance(metrics, str) else list(metrics)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in names:
        rows = [i for i, r in enumerate(records) if r.get(name) is not None]
        if not rows:
            raise MissingMetricError(
                f"no record has the metric {name!r}; metrics in the records: "
                f"{', '.join(map(repr, seen)) or 'none'}."
            )
        ys = np.array([as_number(records[i][name], f"record {i} {name!r}") for i in rows])
        out[name] = (xs[rows], ys)
    return (x or "record"), out


class TrainingCurves(Visualizer):
    """Loss, IIA and other metrics per step or epoch, one panel per metric on a shared x-axis.

    ``data`` is a list of dicts such as ``[{"step": 0, "loss": 1.2, "iia": 0.4}, ...]``, a
    dict of equal-length lists, or what a trainer returns: vene-train's ``TrainingHistory``
    (read by its public attributes, see :func:`history_records`) or a transformers
    ``TrainerState`` (its ``log_history``). The x-axis is ``x`` (default: ``"step"``, else ``"epoch"``,
    else the record index); ``metrics`` chooses and orders the panels (default: every numeric
    key). Options: ``x``, ``metrics``, ``logy`` (metrics drawn on a log scale), ``markers``
    (default: when there are at most 40 points), ``xlabel``, ``title``, ``figsize``, ``dpi``.
    """

    type_name: ClassVar[str] = "training_curves"
    defaults: ClassVar[Mapping[str, Any]] = {
        **COMMON_OPTIONS,
        "x": None,
        "metrics": None,
        "logy": (),
        "markers": None,
        "xlabel": None,
    }

    def _plot(self, data: Any, opts: dict[str, Any], ax: Any = None) -> Figure:
        from matplotlib.ticker import MaxNLocator

        x, series = curves(data, x=opts["x"], metrics=opts["metrics"])
        logy = {opts["logy"]} if isinstance(opts["logy"], str) else set(opts["logy"] or ())
        n = len(series)
        fig, axes = target_axes(ax, n, opts["figsize"] or (6.4, 1.0 + 2.0 * n), sharex=True, vertical=True)
        colors = [f"C{i}" for i in range(10)]
        for i, (a, (name, (xs, ys))) in enumerate(zip(axes, series.items())):
            markers = opts["markers"] if opts["markers"] is not None else len(xs) <= 40
            a.plot(xs, ys, color=colors[i % 10], marker="o" if markers else None,
                   markersize=3.5, linewidth=1.4)
            a.set_ylabel(name)
            if name in logy:
                a.set_yscale("log")
            if _integral(xs):
                a.xaxis.set_major_locator(MaxNLocator(integer=True))
            a.grid(alpha=0.3)
        axes[-1].set_xlabel(opts["xlabel"] or x)
        if opts["title"]:
            if ax is None:
                fig.suptitle(opts["title"])
            else:
                axes[0].set_title(opts["title"])
        return fig

    def _interactive(self, data: Any, opts: dict[str, Any]) -> Any:
        from ._plotly import integer_axis, line_figure

        x, series = curves(data, x=opts["x"], metrics=opts["metrics"])
        logy = {opts["logy"]} if isinstance(opts["logy"], str) else set(opts["logy"] or ())
        every_x = np.concatenate([xs for xs, _ in series.values()])
        lines = [
            (name, xs, ys, [f"{x} {_num(a)}<br>{name} = {b:.4g}" for a, b in zip(xs, ys)])
            for name, (xs, ys) in series.items()
        ]
        w, h = opts["figsize"] or (6.4, 1.0 + 2.0 * len(series))
        return line_figure(
            lines, title=opts["title"], xlabel=opts["xlabel"] or x, ylabels=list(series),
            xaxis=integer_axis(every_x) if _integral(every_x) else {}, stacked=True,
            logy=[name in logy for name in series], size=(int(max(w * 100, 480)), int(max(h * 100, 300))),
        )


def _integral(xs: np.ndarray) -> bool:
    return bool(xs.size) and bool(np.all(np.isfinite(xs)) and np.all(xs == np.round(xs)))


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"
